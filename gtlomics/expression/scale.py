"""Checks on expression values and the library-size + log1p normalisation."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp

from gtlomics.expression.config import LOG_SCALE_MAX, InputScale, PreprocessingConfig

if TYPE_CHECKING:
    from gtlomics.expression.table import ExpressionTable

__all__ = [
    "DuplicateGeneWarning",
    "aligned_log1p",
    "check_values",
    "checked_scale",
    "library_sizes",
    "looks_log_scaled",
    "rank_normal_scores",
    "resolve_input_scale",
    "warn_repeated_genes",
]

Scale = Literal["counts", "log1p", "real"]


class DuplicateGeneWarning(UserWarning):
    """Several input columns map to one gene id; their values were summed."""


def checked_scale(table: ExpressionTable, requested: InputScale) -> Scale:
    """:func:`check_values` on ``table``, then :func:`resolve_input_scale`."""
    check_values(table.values, table.sample_ids, table.gene_ids, allow_negative=requested == "real")
    return resolve_input_scale(table.values, requested)


def warn_repeated_genes(targets: np.ndarray, genes: Sequence[str], stacklevel: int = 3) -> None:
    """A :class:`DuplicateGeneWarning` when several columns share a target position in ``genes``."""
    positions, counts = np.unique(targets[targets >= 0], return_counts=True)
    repeated = positions[counts > 1]
    if repeated.size:
        examples = [genes[i] for i in repeated[:3]]
        warnings.warn(
            f"{repeated.size} gene ids occur in several input columns (e.g. {examples}), e.g. "
            "versions of one Ensembl id; their values are summed on the linear scale.",
            DuplicateGeneWarning,
            stacklevel=stacklevel,
        )


def aligned_log1p(
    table: ExpressionTable,
    targets: np.ndarray,
    n_genes: int,
    config: PreprocessingConfig,
    scale: Scale,
) -> np.ndarray:
    """``float32 (n_samples, n_genes)``: column ``j`` of ``table`` lands at ``targets[j]``.

    Counts are scaled to ``config.target_sum`` per sample (library size over all columns) then
    log1p-transformed; ``value_encoding="rank"`` takes each sample's rank normal scores first.
    Columns with ``targets < 0`` are dropped. Columns mapping to one gene are summed on the
    linear scale; for ``"real"`` values (which have no linear scale) they are averaged.
    """
    linear_factor = None
    if scale == "counts" and config.value_encoding == "log":
        linear_factor = config.target_sum / library_sizes(table.values, table.sample_ids)
    values = table.values
    if config.value_encoding == "rank":
        values, scale = rank_normal_scores(values), "real"
    columns = np.flatnonzero(targets >= 0)
    block = values[:, columns]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    block = block.astype(np.float32)
    if linear_factor is not None:
        block *= linear_factor.astype(np.float32)[:, None]
    out = np.zeros((values.shape[0], n_genes), dtype=np.float32)
    positions, first, counts = np.unique(targets[columns], return_index=True, return_counts=True)
    single = counts == 1
    kept = block[:, first[single]]
    out[:, positions[single]] = np.log1p(kept) if linear_factor is not None else kept
    for position in positions[~single]:
        group = block[:, targets[columns] == position]
        if scale == "real":
            out[:, position] = group.mean(axis=1)
            continue
        linear = group if linear_factor is not None else np.expm1(group)
        out[:, position] = np.log1p(linear.sum(axis=1))
    return out


def check_values(
    values: np.ndarray | sp.csr_matrix, sample_ids, gene_ids, *, allow_negative: bool = False
) -> None:
    """Refuse NaN, infinite and (unless allowed) negative values, naming the first offender.

    Raises
    ------
    ValueError
        With the number of bad entries and the first one as ``sample``/``gene`` ids.
    """
    data = values.data if sp.issparse(values) else values
    for bad, what, fix in (
        (~np.isfinite(data), "NaN or infinite", "impute or drop them"),
        (
            np.zeros_like(data, dtype=bool) if allow_negative else data < 0,
            "negative",
            "pass raw counts or log-scale values, or input_scale='real' for values that may be "
            "negative (z-scores, VST, pathway scores)",
        ),
    ):
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            row, col = _first_entry(values, bad)
            raise ValueError(
                f"{n_bad} {what} expression values, first at sample {sample_ids[row]!r}, gene "
                f"{gene_ids[col]!r} (value {float(values[row, col])!r}); {fix}."
            )


def looks_log_scaled(values: np.ndarray | sp.csr_matrix) -> bool:
    """True when values are non-integer and at most :data:`LOG_SCALE_MAX` (log-like)."""
    data = values.data if sp.issparse(values) else values
    if data.size == 0:
        return False
    integral = data.dtype.kind in "iu" or bool(np.all(data == np.round(data)))
    return not integral and float(data.max()) <= LOG_SCALE_MAX


def resolve_input_scale(values: np.ndarray | sp.csr_matrix, requested: InputScale) -> Scale:
    """Decide whether ``values`` are counts or log1p values, refusing contradictions.

    ``"auto"`` returns ``"log1p"`` for log-looking input (see :func:`looks_log_scaled`) and
    ``"counts"`` otherwise. An explicit choice that contradicts the data is a ``ValueError``.
    """
    log_like = looks_log_scaled(values)
    data = values.data if sp.issparse(values) else values
    peak = float(data.max()) if data.size else 0.0
    if requested == "auto":
        return "log1p" if log_like else "counts"
    if requested == "real":
        return "real"
    if requested == "counts" and log_like:
        raise ValueError(
            f"input_scale='counts' but the values look already log-transformed (non-integer, "
            f"max {peak:.3g} <= {LOG_SCALE_MAX:g}). Pass raw counts (e.g. layer='counts'), or "
            "input_scale='log1p' if they are log1p of library-size normalised counts."
        )
    if requested == "log1p" and peak > LOG_SCALE_MAX:
        raise ValueError(
            f"input_scale='log1p' but the values reach {peak:.3g} (> {LOG_SCALE_MAX:g}), which "
            "looks like counts, not log values. Pass input_scale='counts' to normalise them."
        )
    return requested


def library_sizes(values: np.ndarray | sp.csr_matrix, sample_ids) -> np.ndarray:
    """Total counts per sample in float64; a sample with no counts is an error."""
    totals = np.asarray(values.sum(axis=1, dtype=np.float64)).ravel()
    empty = np.flatnonzero(totals <= 0)
    if empty.size:
        raise ValueError(
            f"{empty.size} samples have no counts (library size 0), e.g. "
            f"{sample_ids[empty[0]]!r}; library-size normalisation needs counts: drop them."
        )
    return totals


def rank_normal_scores(values: np.ndarray | sp.csr_matrix) -> np.ndarray:
    """Each row's values as normal scores of their ranks: ``Φ⁻¹((rank − 0.5) / n_genes)``.

    Ties (e.g. the many zero counts) share their mean rank. The result depends only on each
    sample's ordering of its genes, so library size, CPM or log scaling and any other monotone
    per-sample normalisation leave it unchanged.

    Examples
    --------
    >>> rank_normal_scores(np.array([[0.0, 5.0, 1.0]])).astype(float).round(2).tolist()
    [[-0.97, 0.97, 0.0]]
    """
    from scipy.special import ndtri
    from scipy.stats import rankdata

    dense = values.toarray() if sp.issparse(values) else np.asarray(values, dtype=np.float64)
    ranks = rankdata(dense, axis=1)
    return ndtri((ranks - 0.5) / dense.shape[1]).astype(np.float32)


def _first_entry(values, bad: np.ndarray) -> tuple[int, int]:
    if sp.issparse(values):
        position = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(values.indptr, position, side="right") - 1)
        return row, int(values.indices[position])
    row, col = np.argwhere(bad)[0]
    return int(row), int(col)
