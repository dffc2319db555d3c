"""Evaluate regressors on continuous targets: the classifier runner's fold loop, other metrics.

:func:`evaluate_regression` runs :func:`~gtlomics.evaluation.runner.run_folds` like
:func:`gtlomics.evaluation.evaluate` (same folds and per-fold seeds, nothing tuned on a test fold)
and scores R², MAE and Spearman per fold and pooled. Its summary and report are separate: the
classification ones are built around classes, probabilities and AUROC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gtlomics.evaluation.arms import Arm
from gtlomics.evaluation.metrics import REGRESSION_METRICS, score_regression
from gtlomics.evaluation.protocols import Protocol
from gtlomics.evaluation.report import format_table, mean_sd_table
from gtlomics.evaluation.runner import SELECTION_NOTE, TaskKind, run_folds

__all__ = [
    "RegressionResult",
    "evaluate_regression",
    "pooled_regression_scores",
    "regression_summary",
    "regression_summary_markdown",
    "write_regression_report",
]


@dataclass(frozen=True)
class RegressionResult:
    """Everything one regression evaluation produced.

    Attributes
    ----------
    scores
        One row per (repeat, fold, arm) as in :class:`~gtlomics.evaluation.EvaluationResult`,
        with the metrics ``r2``, ``mae`` and ``spearman``.
    predictions
        One row per (repeat, fold, arm, test sample): ``sample``, ``y_true``, ``y_pred``.
    protocol, arms, random_state
        As in :class:`~gtlomics.evaluation.EvaluationResult`.
    """

    scores: pd.DataFrame
    predictions: pd.DataFrame
    protocol: str
    arms: tuple[tuple[str, str, str], ...]
    random_state: int


def evaluate_regression(
    arms: Sequence[Arm],
    X,
    y,
    *,
    protocol: Protocol,
    groups=None,
    n_repeats: int = 1,
    random_state: int = 0,
    progress: bool = True,
) -> RegressionResult:
    """Fit and score every regression arm on the same folds, repeated over seeds.

    Parameters
    ----------
    arms
        The arms to compare (unique names), e.g. from
        :func:`~gtlomics.evaluation.arms.regression_arms`.
    X
        AnnData, DataFrame or array, samples in rows.
    y
        One finite number per sample.
    protocol
        A protocol for continuous targets: ``KFoldCV``, ``LeaveOneOut``,
        ``LeaveOneGroupOut(every_class_in_train=False)`` or ``CrossDataset``
        (``make_protocol(..., task="regression")``).
    groups
        One group per sample, for grouped protocols.
    n_repeats, random_state, progress
        As for :func:`gtlomics.evaluation.evaluate`.

    Returns
    -------
    RegressionResult

    Examples
    --------
    >>> from gtlomics.evaluation import KFoldCV, regression_arms
    >>> X = np.random.default_rng(0).poisson(20, size=(12, 30))
    >>> result = evaluate_regression(regression_arms(["ridge"]), X, np.arange(12.0),
    ...                              protocol=KFoldCV(3), progress=False)
    >>> list(result.scores.columns[-4:])
    ['r2', 'mae', 'spearman', 'fit_seconds']
    """
    try:
        y = np.asarray(y, dtype=float)
    except (TypeError, ValueError) as error:
        message = "Regression targets must be numbers; for class labels use evaluate()."
        raise ValueError(message) from error
    if not np.isfinite(y).all():
        raise ValueError("Regression targets must be finite; drop or impute NaN and inf first.")
    task = TaskKind(REGRESSION_METRICS, _regress)
    scores, predictions, _ = run_folds(
        task, arms, X, y, groups, protocol, n_repeats, random_state, progress
    )
    return RegressionResult(
        scores=scores,
        predictions=predictions,
        protocol=protocol.name,
        arms=tuple((arm.name, arm.kind, arm.description) for arm in arms),
        random_state=int(random_state),
    )


def _regress(estimator, X_test, y_test: np.ndarray) -> tuple[dict[str, float], pd.DataFrame]:
    y_pred = np.asarray(estimator.predict(X_test), dtype=float)
    return score_regression(y_test, y_pred), pd.DataFrame({"y_true": y_test, "y_pred": y_pred})


def pooled_regression_scores(result: RegressionResult) -> pd.DataFrame:
    """R², MAE and Spearman over all out-of-fold predictions of each (arm, repeat)."""
    rows = []
    for (arm, repeat), frame in result.predictions.groupby(["arm", "repeat"], sort=False):
        scores = score_regression(frame["y_true"].to_numpy(), frame["y_pred"].to_numpy())
        rows.append({"arm": arm, "repeat": repeat, **scores})
    return pd.DataFrame(rows)


def regression_summary(result: RegressionResult) -> pd.DataFrame:
    """Per arm: mean and sd of per-fold metrics, pooled metrics (mean over repeats)."""
    per_fold = result.scores.groupby("arm", sort=False)[list(REGRESSION_METRICS)]
    pooled = pooled_regression_scores(result).groupby("arm", sort=False)
    summary = pd.concat(
        [
            per_fold.mean().add_suffix("_per_fold"),
            per_fold.std().add_suffix("_per_fold_sd"),
            pooled[list(REGRESSION_METRICS)].mean().add_suffix("_pooled"),
        ],
        axis=1,
    )
    return summary.reset_index()


def regression_summary_markdown(result: RegressionResult) -> str:
    """Markdown: the protocol and selection note, then per-fold and pooled ``mean ± sd`` tables
    (the classification report's layout)."""
    n_repeats = result.scores["repeat"].nunique()
    return "\n".join(
        [
            f"Protocol: {result.protocol}; {n_repeats} repeat(s); root seed "
            f"{result.random_state}. {SELECTION_NOTE.format('alpha')}",
            "",
            "Scores per fold (mean ± sd over folds × repeats):",
            "",
            format_table(mean_sd_table(result.scores, REGRESSION_METRICS)),
            "",
            "Pooled out-of-fold scores (mean ± sd over repeats):",
            "",
            format_table(mean_sd_table(pooled_regression_scores(result), REGRESSION_METRICS)),
        ]
    )


def write_regression_report(result: RegressionResult, out: str | Path) -> Path:
    """Write ``scores.csv``, ``predictions.csv``, ``summary.csv`` and ``summary.md`` to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result.scores.to_csv(out / "scores.csv", index=False)
    result.predictions.to_csv(out / "predictions.csv", index=False)
    regression_summary(result).to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(regression_summary_markdown(result) + "\n", encoding="utf-8")
    return out
