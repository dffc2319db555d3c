"""Feature steps of the baseline pipelines: counts → log-CPM → most-variable genes.

Both steps are scikit-learn transformers, so the gene selection is refitted on every training fold
inside a :class:`~sklearn.pipeline.Pipeline` and never sees a test sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["LogCPM", "MostVariableGenes", "count_matrix"]


def count_matrix(X, *, layer: str | None = None) -> np.ndarray:
    """Return a dense float64 ``(n_samples, n_genes)`` matrix from AnnData, DataFrame or array.

    Parameters
    ----------
    X
        AnnData (``.X`` or ``.layers[layer]``), pandas DataFrame or array-like (dense or sparse).
    layer
        AnnData layer to read; None reads ``.X``. Ignored for other inputs.
    """
    if hasattr(X, "obs") and hasattr(X, "layers"):
        if layer is not None and layer not in X.layers:
            raise KeyError(
                f"layer={layer!r} not in adata.layers ({list(X.layers)}); pass one of them or None."
            )
        X = X.X if layer is None else X.layers[layer]
    elif isinstance(X, pd.DataFrame):
        X = X.to_numpy()
    if sp.issparse(X):
        X = X.toarray()
    return np.asarray(X, dtype=np.float64)


class _CountTransformer(TransformerMixin, BaseEstimator):
    """Reads counts with :func:`count_matrix`; remembers the number of genes it was fitted on."""

    def fit(self, X, y=None) -> _CountTransformer:
        self.n_features_in_ = count_matrix(X, layer=self.layer).shape[1]
        return self

    def _counts(self, X) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        counts = count_matrix(X, layer=self.layer)
        if counts.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{type(self).__name__} was fitted on {self.n_features_in_} genes but got "
                f"{counts.shape[1]}; pass the same genes in the same order."
            )
        return counts


class LogCPM(_CountTransformer):
    """Library-size normalise raw counts to counts per million, then ``log1p``.

    Stateless apart from remembering the number of input genes.

    Parameters
    ----------
    layer
        AnnData layer holding raw counts (None: ``.X``).
    target_sum
        Scale of the normalised library (1e6 gives CPM).

    Examples
    --------
    >>> LogCPM().fit_transform(np.array([[1.0, 3.0]])).round(2)
    array([[12.43, 13.53]])
    """

    def __init__(self, *, layer: str | None = None, target_sum: float = 1e6):
        self.layer = layer
        self.target_sum = target_sum

    def transform(self, X) -> np.ndarray:
        counts = self._counts(X)
        if np.any(counts < 0) or not np.all(np.isfinite(counts)):
            raise ValueError("LogCPM expects raw, non-negative, finite counts.")
        library = counts.sum(axis=1, keepdims=True)
        library[library == 0] = 1.0
        return np.log1p(counts / library * self.target_sum)


class RankNormalScores(_CountTransformer):
    """Each sample's counts as normal scores of their ranks among its genes (no fitted state).

    The encoding of a rank foundation (``PreprocessingConfig(value_encoding="rank")``) given to a
    classical model, so a benchmark can tell the encoding's gain from pre-training's.

    Examples
    --------
    >>> RankNormalScores().fit_transform(np.array([[0.0, 5.0, 1.0]])).round(2)
    array([[-0.97,  0.97,  0.  ]])
    """

    def __init__(self, *, layer: str | None = None):
        self.layer = layer

    def transform(self, X) -> np.ndarray:
        from gtlomics.expression.scale import rank_normal_scores

        return rank_normal_scores(self._counts(X)).astype(np.float64)


class MostVariableGenes(TransformerMixin, BaseEstimator):
    """Keep the ``n_genes`` columns with the largest variance on the training samples.

    Parameters
    ----------
    n_genes
        Number of columns to keep (all are kept when the input has fewer).

    Attributes
    ----------
    selected_ : numpy.ndarray
        Column indices kept, in descending order of training variance (ties: lower index first).
    """

    def __init__(self, *, n_genes: int = 2000):
        self.n_genes = n_genes

    def fit(self, X, y=None) -> MostVariableGenes:
        values = np.asarray(X, dtype=np.float64)
        if self.n_genes < 1:
            raise ValueError(f"n_genes must be >= 1, got {self.n_genes}.")
        variance = values.var(axis=0)
        order = np.lexsort((np.arange(values.shape[1]), -variance))
        self.selected_ = order[: min(self.n_genes, values.shape[1])]
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "selected_")
        return np.asarray(X, dtype=np.float64)[:, self.selected_]
