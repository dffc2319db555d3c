"""Scores of one set of predictions: AUROC, balanced accuracy, accuracy, log-loss.

Undefined scores are NaN rather than warnings: AUROC needs both classes in the test set (a
leave-one-out fold has one sample; pool the folds instead) and log-loss needs probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

__all__ = ["METRICS", "Predictions", "score_predictions"]

METRICS: tuple[str, ...] = ("auroc", "balanced_accuracy", "accuracy", "log_loss")
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
