"""Write an evaluation to a report directory: CSV tables, a markdown summary and plots.

Layout::

    DIR/results.csv       one row per (repeat, fold, arm)
    DIR/pooled.csv        pooled out-of-fold scores per (repeat, arm)
    DIR/predictions.csv   one row per test prediction
    DIR/histories.csv     per-epoch training history of the neural arms (diagnostic)
    DIR/run.json          protocol, classes, arms, seed (what :func:`read_result` needs)
    DIR/summary.md        mean ± sd per arm, paired comparison, notes
    DIR/plots/*.png       scores per arm, learning curves, guide values, cousin-task map
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gtlomics.evaluation.compare import PairedComparison, paired_comparison, pooled_scores
from gtlomics.evaluation.history import TrainingHistory
from gtlomics.evaluation.metrics import METRICS
from gtlomics.evaluation.runner import EvaluationResult

__all__ = [
    "Report",
    "format_table",
    "mean_sd_table",
    "pooled_table",
    "read_result",
    "summary_markdown",
    "summary_table",
    "verdict",
    "write_report",
]

_HEADERS = {
    "auroc": "AUROC",
    "balanced_accuracy": "balanced acc.",
    "accuracy": "accuracy",
    "log_loss": "log-loss",
    "fit_seconds": "fit s",
    "r2": "R²",
    "mae": "MAE",
    "spearman": "Spearman",
}


@dataclass(frozen=True)
class Report:
    """Paths of a written report."""

    directory: Path
    results_csv: Path
    pooled_csv: Path
    predictions_csv: Path
    summary_md: Path
    plots: tuple[Path, ...]


def write_report(
    result: EvaluationResult,
    directory: str | Path,
    *,
    title: str = "gtlomics evaluation",
    data_note: str = "",
    challenger: str = "gtl",
    guides=None,
    extra_plots: Sequence[tuple[str, Callable]] = (),
) -> Report:
    """Write tables, ``summary.md`` and plots of ``result`` into ``directory``.

    Parameters
    ----------
    result
        What :func:`~gtlomics.evaluation.evaluate` returned.
    directory
        Created if needed; existing files of the same names are replaced.
    title
        First heading of the summary.
    data_note
        A paragraph about the data (say SYNTHETIC when it is).
    challenger
        Arm compared against the best baseline.
    guides
        Optional ``GuideValues`` (or mapping) of the foundation, for the guide-value plot.
    extra_plots
        ``(file stem, callable returning a Figure)`` pairs, e.g. the cousin-task map.
    """
    directory = Path(directory)
    (directory / "plots").mkdir(parents=True, exist_ok=True)
    pooled = pooled_scores(result)
    paths = {
        "results_csv": directory / "results.csv",
        "pooled_csv": directory / "pooled.csv",
        "predictions_csv": directory / "predictions.csv",
        "summary_md": directory / "summary.md",
    }
    result.scores.to_csv(paths["results_csv"], index=False)
    pooled.to_csv(paths["pooled_csv"], index=False)
    result.predictions.to_csv(paths["predictions_csv"], index=False)
    _write_run_record(result, directory)
    plots = _write_plots(result, pooled, directory / "plots", guides, extra_plots)
    text = summary_markdown(result, title=title, data_note=data_note, challenger=challenger)
    text += _plots_section(plots, directory)
    paths["summary_md"].write_text(text, encoding="utf-8")
    return Report(directory=directory, plots=tuple(plots), **paths)


def _write_run_record(result: EvaluationResult, directory: Path) -> None:
    record = {
        "protocol": result.protocol,
        "classes": [str(label) for label in result.classes],
        "arms": [list(arm) for arm in result.arms],
        "random_state": result.random_state,
        "notes": list(result.notes),
    }
    (directory / "run.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    frames = [h.frame.assign(arm=h.arm, repeat=h.repeat, fold=h.fold) for h in result.histories]
    if frames:
        pd.concat(frames, ignore_index=True).to_csv(directory / "histories.csv", index=False)


def read_result(directory: str | Path) -> EvaluationResult:
    """Rebuild an :class:`EvaluationResult` from a report directory (labels come back as str).

    Lets a finished run be summarised or plotted again without refitting anything.
    """
    directory = Path(directory)
    record = json.loads((directory / "run.json").read_text(encoding="utf-8"))
    labels = {"y_true": str, "y_pred": str, "sample": str}
    scores = pd.read_csv(directory / "results.csv", dtype={"held_out": str})
    scores["held_out"] = scores["held_out"].fillna("")
    histories = []
    if (directory / "histories.csv").is_file():
        table = pd.read_csv(directory / "histories.csv")
        for (arm, repeat, fold), frame in table.groupby(["arm", "repeat", "fold"], sort=False):
            frame = frame.drop(columns=["arm", "repeat", "fold"]).reset_index(drop=True)
            histories.append(TrainingHistory(arm, int(repeat), int(fold), frame))
    return EvaluationResult(
        scores=scores,
        predictions=pd.read_csv(directory / "predictions.csv", dtype=labels),
        histories=histories,
        classes=np.asarray(record["classes"], dtype=object),
        protocol=record["protocol"],
        arms=tuple(tuple(arm) for arm in record["arms"]),
        random_state=int(record["random_state"]),
        notes=tuple(record["notes"]),
    )


def summary_markdown(
    result: EvaluationResult, *, title: str, data_note: str = "", challenger: str = "gtl"
) -> str:
    """The markdown summary: setup, per-fold and pooled tables, the paired comparison, notes."""
    n_units = result.scores.groupby(["repeat", "fold"]).ngroups
    lines = [f"# {title}", ""]
    if data_note:
        lines += [data_note, ""]
    lines += [
        f"Protocol: {result.protocol}; {result.scores['repeat'].nunique()} repeat(s), "
        f"{n_units} fold fits per arm; root seed {result.random_state}; positive class "
        f"`{result.classes[-1]}`.",
        "",
        "## Scores per fold (mean ± sd over folds × repeats)",
        "",
        format_table(summary_table(result)),
        "",
        "## Pooled out-of-fold scores (mean ± sd over repeats)",
        "",
        format_table(pooled_table(result)),
        "",
        "## Paired comparison against the best baseline",
        "",
        *_comparison_lines(result, challenger),
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in result.notes],
        "- log-loss is blank for arms without probabilities (linear SVM); their AUROC uses the "
        "decision function.",
        "- Pooled AUROC ranks scores of models fitted on different folds together: an arm whose "
        "outputs are nearly constant and follow each training fold's class balance can score far "
        "below 0.5 pooled while its per-fold AUROC is fine. Read both.",
        "",
        "",
    ]
    return "\n".join(lines)


def summary_table(result: EvaluationResult) -> pd.DataFrame:
    """Per-arm ``mean ± sd`` strings of the per-fold metrics and fit time."""
    table = mean_sd_table(result.scores, [*METRICS, "fit_seconds"])
    table.insert(1, "kind", table["arm"].map(result.arm_kinds()))
    return table


def pooled_table(result: EvaluationResult) -> pd.DataFrame:
    """Per-arm ``mean ± sd`` over repeats of the pooled out-of-fold metrics."""
    return mean_sd_table(pooled_scores(result), METRICS)


def mean_sd_table(scores: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """One row per arm (first-seen order): ``mean ± sd`` of each column, headed for people.

    A column with no value for an arm shows "–"; one value (no sd) shows the mean alone.
    """
    grouped = scores.groupby("arm", sort=False)[list(columns)]
    means, sds = grouped.mean(), grouped.std(ddof=1)
    cells = {
        _HEADERS[c]: [_mean_sd(m, sd) for m, sd in zip(means[c], sds[c], strict=True)]
        for c in columns
    }
    return pd.DataFrame({"arm": list(means.index), **cells})


def format_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no extra dependency)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _mean_sd(mean: float, sd: float) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" if pd.isna(sd) else f"{mean:.3f} ± {sd:.3f}"


def _comparison_lines(result: EvaluationResult, challenger: str) -> list[str]:
    lines = []
    for metric in ("auroc", "accuracy", "log_loss"):
        comparison = paired_comparison(result, arm=challenger, metric=metric)
        if comparison is not None:
            lines.append(_describe(comparison))
    if not lines:
        lines.append(f"No `{challenger}` arm or no baseline in this evaluation: nothing to pair.")
    lines.append(
        "\nThe best baseline is the one with the best mean score on these same units; choosing it "
        "after the fact favours the baseline."
    )
    neural = [
        comparison
        for other in ("pretrained", "scratch")
        if (comparison := paired_comparison(result, arm=challenger, against=other)) is not None
    ]
    if neural:
        lines += ["", f"`{challenger}` against the other neural arms (AUROC):", ""]
        lines += [_describe(comparison) for comparison in neural]
    return lines


def _describe(c: PairedComparison) -> str:
    better = "lower" if c.metric == "log_loss" else "higher"
    return (
        f"- **{c.arm} vs {c.baseline}** ({_HEADERS[c.metric]}, {better} is better; "
        f"{c.n_pairs} paired units, unit: {c.unit}): mean difference {c.mean_difference:+.3f}"
        f" (sd {c.sd_difference:.3f}); wins/ties/losses {c.wins}/{c.ties}/{c.losses}; "
        f"sign test p = {c.sign_test_p:.3g}; Wilcoxon p = {c.wilcoxon_p:.3g}. "
        f"Verdict: **{verdict(c)}**."
    )


def verdict(comparison: PairedComparison, alpha: float = 0.05) -> str:
    """``"win"``, ``"loss"`` or ``"tie (no significant difference)"`` from the sign test."""
    significant = comparison.sign_test_p < alpha
    if significant and comparison.wins > comparison.losses:
        return f"{comparison.arm} wins"
    if significant and comparison.losses > comparison.wins:
        return f"{comparison.arm} loses"
    return "tie (no significant difference)"


def _write_plots(result, pooled, folder: Path, guides, extra_plots) -> list[Path]:
    from gtlomics.plotting.evaluation import plot_learning_curves, plot_scores
    from gtlomics.plotting.guides import plot_guide_distributions

    arms = [name for name, _, _ in result.arms]
    figures: list[tuple[str, Callable]] = []
    if result.scores["auroc"].notna().any():
        figures.append(("scores_auroc", lambda: plot_scores(result.scores, "auroc", arms=arms)))
    title = "pooled out-of-fold AUROC per arm (dots: repeats)"
    figures.append(("pooled_auroc", lambda: plot_scores(pooled, "auroc", arms=arms, title=title)))
    figures.append(("scores_accuracy", lambda: plot_scores(result.scores, "accuracy", arms=arms)))
    if result.histories:
        figures.append(("learning_curves", lambda: plot_learning_curves(result.histories)))
    if guides is not None:
        figures.append(("guide_values", lambda: plot_guide_distributions(guides)))
    figures.extend(extra_plots)
    paths = []
    for stem, make in figures:
        path = folder / f"{stem}.png"
        make().savefig(path, dpi=110)
        paths.append(path)
    return paths


def _plots_section(plots: Sequence[Path], directory: Path) -> str:
    if not plots:
        return ""
    lines = ["## Plots", ""]
    lines += [f"![{path.stem}]({path.relative_to(directory).as_posix()})" for path in plots]
    return "\n".join(lines) + "\n"
