"""Scores of continuous predictions: R², mean absolute error, Spearman correlation.

Undefined scores are NaN rather than warnings: R² needs at least two test samples with different
targets and Spearman needs two distinct values on both sides (a constant prediction has no rank
order, which is itself worth seeing: pool the folds, or look at the prediction spread).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

__all__ = ["REGRESSION_METRICS", "score_regression"]

REGRESSION_METRICS: tuple[str, ...] = ("r2", "mae", "spearman")


def score_regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`REGRESSION_METRICS` (NaN where undefined).

    Examples
    --------
    >>> scores = score_regression(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    >>> round(scores["r2"], 3), round(scores["mae"], 3), scores["spearman"]
    (0.5, 0.333, 1.0)
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    return {
        "r2": _r2(y_true, y_pred),
        "mae": float(np.mean(np.abs(y_true - y_pred))) if y_true.size else float("nan"),
        "spearman": _spearman(y_true, y_pred),
    }


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    total = np.sum((y_true - y_true.mean()) ** 2) if y_true.size else 0.0
    if y_true.size < 2 or total == 0:
        return float("nan")
    return float(1.0 - np.sum((y_true - y_pred) ** 2) / total)


def _spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if len(np.unique(y_true)) < 2 or len(np.unique(y_pred)) < 2:
        return float("nan")
    return float(spearmanr(y_true, y_pred).statistic)
