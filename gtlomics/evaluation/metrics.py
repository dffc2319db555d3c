"""Scores of one set of predictions: AUROC, balanced accuracy, accuracy, log-loss of classes;
R², mean absolute error, Spearman of continuous targets.

Undefined scores are NaN rather than warnings: AUROC needs both classes in the test set (a
leave-one-out fold has one sample; pool the folds instead), log-loss needs probabilities, R² two
different targets, Spearman two distinct values on both sides (a constant prediction has no rank
order, which is itself worth seeing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import log_loss, roc_auc_score

__all__ = ["METRICS", "REGRESSION_METRICS", "Predictions", "score_predictions", "score_regression"]

METRICS: tuple[str, ...] = ("auroc", "balanced_accuracy", "accuracy", "log_loss")
REGRESSION_METRICS: tuple[str, ...] = ("r2", "mae", "spearman")
HIGHER_IS_BETTER = {"auroc": True, "balanced_accuracy": True, "accuracy": True, "log_loss": False}


@dataclass(frozen=True)
class Predictions:
    """What a fitted classifier said about a set of samples.

    Parameters
    ----------
    y_true, y_pred
        True and predicted labels, shape ``(n,)``.
    proba
        Class probabilities ``(n, n_classes)`` in the order of ``classes``, or None.
    decision
        Scores for the positive class ``(n,)`` (binary) when there are no probabilities, or None.
    classes
        The classifier's ``classes_``.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None
    decision: np.ndarray | None
    classes: np.ndarray

    def positive_score(self) -> np.ndarray | None:
        """Score of the last class (the positive one in a binary task), or None."""
        if self.proba is not None:
            return self.proba[:, -1]
        return self.decision


def score_predictions(predictions: Predictions) -> dict[str, float]:
    """Compute every metric in :data:`METRICS` (NaN where undefined)."""
    y_true, y_pred = predictions.y_true, predictions.y_pred
    return {
        "auroc": _auroc(predictions),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
        "accuracy": float(np.mean(y_true == y_pred)),
        "log_loss": _log_loss(predictions),
    }


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    recalls = [np.mean(y_pred[y_true == label] == label) for label in np.unique(y_true)]
    return float(np.mean(recalls))


def _auroc(predictions: Predictions) -> float:
    y_true, classes = predictions.y_true, predictions.classes
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if len(classes) == 2:
        score = predictions.positive_score()
        if score is None:
            return float("nan")
        return float(roc_auc_score(y_true == classes[-1], score))
    if predictions.proba is None or len(np.unique(y_true)) < len(classes):
        return float("nan")
    return float(roc_auc_score(y_true, predictions.proba, multi_class="ovr", labels=classes))


def _log_loss(predictions: Predictions) -> float:
    if predictions.proba is None:
        return float("nan")
    proba = np.clip(predictions.proba, 1e-15, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return float(log_loss(predictions.y_true, proba, labels=predictions.classes))


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
