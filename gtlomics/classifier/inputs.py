"""Input handling of the GTL estimators: the validated input table, gene ids, checks, seeds.

Functions here know nothing about the estimator's parameters beyond what they are passed.
Values are validated by scikit-learn (``check_array`` / ``validate_data``: the estimator's
input contract, with its error messages), not by :func:`gtlomics.expression.read_expression`,
which keeps its own (``KeyError`` for a missing layer or gene column, Ensembl versions stripped
from the ids, where ``feature_names_in_`` must keep the user's ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "Table",
    "anndata_gene_ids",
    "check_non_negative",
    "child_seeds",
]


@dataclass(frozen=True)
class Table:
    """Validated input: a non-negative numeric matrix, its gene ids and (for AnnData) its obs.

    ``named`` is False for arrays whose columns carry no gene ids (placeholders ``x0, x1, ...``).
    """

    matrix: np.ndarray | sp.spmatrix  # (n_samples, n_features)
    gene_ids: tuple[str, ...]
    obs: pd.DataFrame | None
    named: bool = True


def anndata_gene_ids(adata: Any, gene_column: str | None) -> tuple[str, ...]:
    if gene_column is None:
        return tuple(str(name) for name in adata.var_names)
    if gene_column not in adata.var.columns:
        raise ValueError(
            f"gene_column={gene_column!r} is not a column of adata.var (columns: "
            f"{list(adata.var.columns)}); pass one of those, or gene_column=None for var_names."
        )
    return tuple(str(name) for name in adata.var[gene_column])


def check_non_negative(matrix: np.ndarray | sp.spmatrix, where: str) -> None:
    data = matrix.data if sp.issparse(matrix) else matrix
    if data.size and data.min() < 0:
        raise ValueError(
            f"Negative values in data passed to {where}: expression must be counts or "
            "log-scale values (>= 0). Did you pass z-scored, VST or log-ratio data? Pass "
            "input_scale='real' to use such values as given, or pass the raw counts (e.g. "
            "layer='counts')."
        )


def child_seeds(random_state: Any, n: int) -> list[int]:
    if isinstance(random_state, np.random.RandomState):
        random_state = int(random_state.randint(np.iinfo(np.int32).max))
    children = np.random.SeedSequence(random_state).spawn(n)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in children]
