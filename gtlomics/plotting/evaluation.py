"""Plots of an evaluation: scores per arm and (diagnostic) learning curves of neural arms.

Figures are built with :class:`matplotlib.figure.Figure` directly, so no pyplot state or GUI
backend is touched; save them with ``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["LEARNING_CURVE_LABEL", "plot_learning_curves", "plot_scores"]

LEARNING_CURVE_LABEL = "diagnostic: not used for selection"
_METRIC_LABELS = {
    "auroc": "AUROC",
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
    "log_loss": "log-loss",
}


def plot_scores(
    scores: pd.DataFrame,
    metric: str = "auroc",
    *,
    arms: Sequence[str] | None = None,
    title: str | None = None,
    seed: int = 0,
) -> Figure:
    """Dot plot of one metric per arm: every fold/repeat as a dot, mean ± sd as a bar.

    Parameters
    ----------
    scores
        A table with an ``arm`` column and a ``metric`` column (per fold, or pooled per repeat).
    metric
        Column to plot.
    arms
        Arms in display order (default: order of first appearance).
    title
        Figure title.
    seed
        Seed of the horizontal jitter.

    Returns
    -------
    matplotlib.figure.Figure
    """
    arms = list(dict.fromkeys(scores["arm"])) if arms is None else list(arms)
    fig = Figure(figsize=(max(4.0, 0.9 * len(arms) + 1.5), 3.6), layout="constrained")
    ax = fig.add_subplot()
    rng = np.random.default_rng(seed)
    for x, arm in enumerate(arms):
        values = scores.loc[scores["arm"] == arm, metric].dropna().to_numpy(float)
        if values.size == 0:
            continue
        jitter = rng.uniform(-0.12, 0.12, size=values.size)
        ax.scatter(x + jitter, values, s=14, alpha=0.6, color=f"C{x % 10}")
        sd = values.std(ddof=1) if values.size > 1 else 0.0
        ax.errorbar(x + 0.3, values.mean(), yerr=sd, fmt="o", color="black", capsize=3)
    ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
    ax.set_title(title or f"{_METRIC_LABELS.get(metric, metric)} per arm (dots: folds × repeats)")
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_learning_curves(histories: Sequence, column: str | None = None) -> Figure:
    """Per-epoch training curves of neural arms, one thin line per fit, one colour per arm.

    The plot is labelled "diagnostic: not used for selection": epochs are fixed in advance, and
    these curves are never used to choose one.

    Parameters
    ----------
    histories
        :class:`~gtlomics.evaluation.history.TrainingHistory` records.
    column
        History column to draw (default: ``loss`` if present, else the first numeric column).
    """
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    arms = list(dict.fromkeys(history.arm for history in histories))
    for history in histories:
        name = column or _default_column(history.frame)
        if name is None or name not in history.frame:
            continue
        colour = f"C{arms.index(history.arm) % 10}"
        ax.plot(history.frame["epoch"], history.frame[name], color=colour, alpha=0.4, lw=1)
    for i, arm in enumerate(arms):
        ax.plot([], [], color=f"C{i % 10}", label=arm)
    if arms:
        ax.legend(frameon=False)
    ax.set_xlabel("epoch")
    ax.set_ylabel(column or "training loss")
    ax.set_title(f"Learning curves ({LEARNING_CURVE_LABEL})")
    return fig


def _default_column(frame: pd.DataFrame) -> str | None:
    numeric = [c for c in frame.columns if c != "epoch" and pd.api.types.is_numeric_dtype(frame[c])]
    if "loss" in numeric:
        return "loss"
    return numeric[0] if numeric else None
