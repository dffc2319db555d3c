"""Summaries of an evaluation: per-arm mean ± sd, pooled scores, and paired comparisons.

The paired comparison sets one arm against the best baseline *on the same units* (a unit is a
(repeat, fold) pair, or a repeat with pooled out-of-fold predictions when per-fold scores are
undefined, as in leave-one-out). Picking the best baseline after seeing its scores favours the
baseline, which makes the comparison conservative for the challenger.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from gtlomics.evaluation.metrics import HIGHER_IS_BETTER, METRICS, Predictions, score_predictions
from gtlomics.evaluation.runner import EvaluationResult

__all__ = ["PairedComparison", "paired_comparison", "pooled_scores", "summarize"]

TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PairedComparison:
    """An arm against a baseline over the same units.

    Attributes
    ----------
    arm, baseline, metric
        What was compared.
    unit
        ``"fold"`` (one pair per repeat and fold), ``"fold with both classes"`` (only folds whose
        test set holds every class) or ``"repeat"`` (pooled predictions per repeat).
    n_pairs
        Number of paired units.
    mean_difference, sd_difference
        Of ``arm − baseline`` (for log-loss, lower is better, so a negative difference is a win).
    wins, ties, losses
        Units where the arm was better, equal (within 1e-9), worse.
    sign_test_p, wilcoxon_p
        Two-sided p-values (NaN when undefined, e.g. all ties).
    """

    arm: str
    baseline: str
    metric: str
    unit: str
    n_pairs: int
    mean_difference: float
    sd_difference: float
    wins: int
    ties: int
    losses: int
    sign_test_p: float
    wilcoxon_p: float


def summarize(result: EvaluationResult) -> pd.DataFrame:
    """Mean and sd of each per-fold metric and fit time per arm, over all repeats and folds.

    Returns
    -------
    pandas.DataFrame
        Indexed by arm (evaluation order); columns ``(metric, "mean"|"sd"|"n")``.
    """
    columns = [*METRICS, "fit_seconds"]
    grouped = result.scores.groupby("arm", sort=False)[columns]
    summary = grouped.agg(["mean", "std", "count"])
    return summary.rename(columns={"std": "sd", "count": "n"}, level=1)


def pooled_scores(result: EvaluationResult) -> pd.DataFrame:
    """Metrics of the out-of-fold predictions pooled per (arm, repeat).

    Pooling is the meaningful view for leave-one-out (each fold has one sample). Samples predicted
    in several folds of one repeat (cross-dataset has one fold) are all kept.
    """
    rows = []
    for (arm, repeat), frame in result.predictions.groupby(["arm", "repeat"], sort=False):
        scores = score_predictions(_pooled_predictions(frame, result.classes))
        rows.append({"arm": arm, "repeat": repeat, "n_samples": len(frame), **scores})
    return pd.DataFrame(rows)


def _pooled_predictions(frame: pd.DataFrame, classes: np.ndarray) -> Predictions:
    proba_columns = [f"proba:{label}" for label in classes]
    has_proba = all(column in frame for column in proba_columns)
    has_proba = has_proba and not frame[proba_columns].isna().to_numpy().any()
    proba = frame[proba_columns].to_numpy(float) if has_proba else None
    decision = None if has_proba else frame["score"].to_numpy(float)
    return Predictions(
        frame["y_true"].to_numpy(), frame["y_pred"].to_numpy(), proba, decision, classes
    )


def paired_comparison(
    result: EvaluationResult, *, arm: str = "gtl", metric: str = "auroc", against: str | None = None
) -> PairedComparison | None:
    """Compare ``arm`` with the best baseline (by mean ``metric``) over the same units.

    Per-fold scores are paired when the metric is defined on every fold; otherwise (e.g. AUROC
    under leave-one-out) the pooled score of each repeat is the unit. ``against`` names one arm
    to compare with instead of the best baseline (e.g. ``"pretrained"``). Returns None when the
    result lacks either arm.
    """
    kinds = result.arm_kinds()
    table, unit = _paired_table(result, metric)
    if against is not None:
        kinds = {against: "baseline"} if against in kinds else {}
    baselines = [
        name for name, kind in kinds.items() if kind == "baseline" and name in table and name != arm
    ]
    baseline_means = table[baselines].mean().dropna()
    if arm not in table or baseline_means.empty:
        return None
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    best = str((sign * baseline_means).idxmax())
    pairs = table[[arm, best]].dropna()
    difference = (pairs[arm] - pairs[best]).to_numpy()
    return _compare(arm, best, metric, unit, difference, sign)


def _paired_table(result: EvaluationResult, metric: str) -> tuple[pd.DataFrame, str]:
    """Units × arms table of ``metric`` and its unit: per fold if defined on every fold; else the
    folds where it is (at least two; held-out one-class studies drop out of AUROC); else pooled
    per repeat (leave-one-out). Arms where it is never defined (SVM log-loss) are dropped.
    """
    per_fold = result.scores.pivot(index=["repeat", "fold"], columns="arm", values=metric)
    per_fold = per_fold.dropna(axis="columns", how="all")
    if not per_fold.isna().to_numpy().any():
        return per_fold, "fold"
    defined = per_fold.dropna(axis="index", how="any")
    if len(defined) >= 2:
        return defined, "fold with both classes"
    pooled = pooled_scores(result).pivot(index="repeat", columns="arm", values=metric)
    return pooled.dropna(axis="columns", how="all"), "repeat"


def _compare(arm, best, metric, unit, difference: np.ndarray, sign: float) -> PairedComparison:
    better = sign * difference
    wins = int(np.sum(better > TIE_TOLERANCE))
    losses = int(np.sum(better < -TIE_TOLERANCE))
    return PairedComparison(
        arm=arm,
        baseline=best,
        metric=metric,
        unit=unit,
        n_pairs=len(difference),
        mean_difference=float(np.mean(difference)) if len(difference) else float("nan"),
        sd_difference=float(np.std(difference, ddof=1)) if len(difference) > 1 else float("nan"),
        wins=wins,
        ties=len(difference) - wins - losses,
        losses=losses,
        sign_test_p=_sign_test(wins, losses),
        wilcoxon_p=_wilcoxon(difference),
    )


def _sign_test(wins: int, losses: int) -> float:
    if wins + losses == 0:
        return float("nan")
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


def _wilcoxon(difference: np.ndarray) -> float:
    nonzero = difference[np.abs(difference) > TIE_TOLERANCE]
    if len(nonzero) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample / ties notes; the p-value is still defined
        return float(stats.wilcoxon(nonzero).pvalue)
