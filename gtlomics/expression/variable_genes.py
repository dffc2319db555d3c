"""Rank a corpus's genes by variability: variance of log1p values, or scanpy's ``seurat``."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd

from gtlomics.expression.config import PreprocessingConfig, ReadSettings
from gtlomics.expression.scale import aligned_log1p, checked_scale, warn_repeated_genes
from gtlomics.expression.table import read_expression

__all__ = ["Flavor", "dispersion_scores", "most_variable_genes", "variance_scores"]

Flavor = Literal["variance", "seurat"]


def most_variable_genes(
    X: Any,
    n_genes: int,
    config: PreprocessingConfig,
    gene_ids: Any = None,
    flavor: Flavor = "variance",
    batches: Any = None,
    reading: ReadSettings | None = None,
) -> tuple[str, ...]:
    """Ids of the ``n_genes`` most variable genes, most variable first.

    See :meth:`GeneVocab.from_most_variable`. Every distinct gene id of the corpus is
    normalised as :func:`~gtlomics.expression.prepare_expression` would (duplicates summed).
    """
    reading = reading or ReadSettings()
    table = read_expression(
        X, layer=reading.layer, gene_column=reading.gene_column, gene_ids=gene_ids
    )
    resolved = checked_scale(table, config.input_scale)
    targets, distinct = pd.factorize(table.gene_ids)
    genes = tuple(distinct.tolist())
    warn_repeated_genes(targets, genes, stacklevel=4)  # the caller of from_most_variable
    values = aligned_log1p(table, targets, len(genes), config, resolved)
    if n_genes > len(genes):
        warnings.warn(
            f"n_genes={n_genes} but the corpus has only {len(genes)} distinct genes; "
            "the vocabulary keeps all of them.",
            UserWarning,
            stacklevel=3,
        )
    if flavor == "variance":
        scores = variance_scores(values, batches)
    elif flavor == "seurat":
        scores = dispersion_scores(values, genes)
    else:
        raise ValueError(f"flavor must be 'variance' or 'seurat', got {flavor!r}.")
    order = np.argsort(-scores, kind="stable")
    return tuple(genes[i] for i in order[:n_genes])


def variance_scores(log_values: np.ndarray, batches: Any = None) -> np.ndarray:
    """Variance of each gene's log1p values; ``-inf`` for constant genes.

    With ``batches`` (one label per row) it is the size-weighted mean of within-batch variances.
    """
    if batches is None:
        variance = np.var(log_values, axis=0, dtype=np.float64)
    else:
        batches = np.asarray(batches)
        variance = np.zeros(log_values.shape[1])
        for batch in np.unique(batches):
            rows = batches == batch
            variance += rows.sum() * np.var(log_values[rows], axis=0, dtype=np.float64)
        variance /= len(batches)
    return np.where(variance > 0, variance, -np.inf)


def dispersion_scores(log_values: np.ndarray, gene_ids: tuple[str, ...]) -> np.ndarray:
    """scanpy ``seurat`` normalised dispersion per gene; ``-inf`` where undefined (constant)."""
    import anndata as ad
    import scanpy as sc

    adata = ad.AnnData(X=np.asarray(log_values, dtype=np.float32), var=pd.DataFrame(index=gene_ids))
    stats = sc.pp.highly_variable_genes(adata, flavor="seurat", inplace=False)
    scores = stats["dispersions_norm"].to_numpy(dtype=np.float64)
    return np.where(np.isfinite(scores), scores, -np.inf)
