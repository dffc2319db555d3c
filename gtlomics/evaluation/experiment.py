"""One labelled dataset → arms → protocol → report, described by a frozen spec.

This is what ``gtlomics evaluate`` and the example scripts call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gtlomics.evaluation.arms import BASELINE_NAMES, GTL_ARM_NAMES, build_arms
from gtlomics.evaluation.baselines import BaselineConfig
from gtlomics.evaluation.cousin_map import cousin_task_map
from gtlomics.evaluation.data import labelled_samples
from gtlomics.evaluation.protocols import make_protocol
from gtlomics.evaluation.report import Report, write_report
from gtlomics.evaluation.runner import EvaluationResult, evaluate

__all__ = ["ExperimentOutcome", "ExperimentSpec", "resolve_foundation", "run_experiment"]


@dataclass(frozen=True)
class ExperimentSpec:
    """What to evaluate and how.

    Parameters
    ----------
    label_key
        ``obs`` column with the labels.
    arms
        Arm names (see :func:`~gtlomics.evaluation.arms.build_arms`).
    classes
        Classes to keep (e.g. ``("0", "3")``); None keeps every labelled sample.
    protocol
        ``"kfold"``, ``"loo"``, ``"logo"`` or ``"cross"``.
    n_splits
        Folds of ``"kfold"``.
    group_key
        ``obs`` column of groups for ``"logo"`` and ``"cross"``.
    train_group, test_group
        Groups of ``"cross"``.
    n_repeats, random_state
        Seeds.
    baseline
        Baseline settings.
    gtl_params
        Extra ``GTLClassifier`` parameters (e.g. ``{"epochs": 30}``) as ``(name, value)`` pairs.
    title, data_note
        Report heading and data paragraph.
    """

    label_key: str
    arms: tuple[str, ...] = (*BASELINE_NAMES, *GTL_ARM_NAMES)
    classes: tuple[str, ...] | None = None
    protocol: str = "kfold"
    n_splits: int = 5
    group_key: str | None = None
    train_group: str | None = None
    test_group: str | None = None
    n_repeats: int = 3
    random_state: int = 0
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    gtl_params: tuple[tuple[str, Any], ...] = ()
    title: str = "gtlomics evaluation"
    data_note: str = ""


@dataclass(frozen=True)
class ExperimentOutcome:
    """The evaluation and its written report."""

    result: EvaluationResult
    report: Report


def run_experiment(
    spec: ExperimentSpec,
    adata,
    out_dir: str | Path,
    *,
    foundation: Any = None,
    corpus: Any = None,
    progress: bool = True,
) -> ExperimentOutcome:
    """Evaluate ``spec.arms`` on ``adata`` and write the report to ``out_dir``.

    Parameters
    ----------
    spec
        The experiment.
    adata
        AnnData with raw counts and ``obs[spec.label_key]`` (and ``obs[spec.group_key]``).
    out_dir
        Report directory.
    foundation
        ``Foundation`` or directory for the pre-trained arms.
    corpus
        The foundation's unlabelled corpus; when given, the report includes the cousin-task map.
    progress
        Progress bar over folds.
    """
    subset, y = labelled_samples(adata, spec.label_key, classes=spec.classes)
    groups = None
    if spec.group_key is not None:
        if spec.group_key not in subset.obs:
            raise KeyError(f"adata.obs has no group column {spec.group_key!r}.")
        groups = subset.obs[spec.group_key].astype(str).to_numpy()
    protocol = make_protocol(
        spec.protocol, n_splits=spec.n_splits, train=spec.train_group, test=spec.test_group
    )
    if hasattr(foundation, "__fspath__") or isinstance(foundation, str):
        foundation = resolve_foundation(foundation)
    arms = build_arms(
        spec.arms, foundation=foundation, baseline=spec.baseline, gtl_params=dict(spec.gtl_params)
    )
    result = evaluate(
        arms,
        subset,
        y,
        protocol=protocol,
        groups=groups,
        n_repeats=spec.n_repeats,
        random_state=spec.random_state,
        progress=progress,
    )
    extra_plots = []
    if corpus is not None and foundation is not None:
        seed = spec.random_state
        extra_plots.append(("cousin_tasks", lambda: cousin_task_map(foundation, corpus, seed=seed)))
    report = write_report(
        result,
        out_dir,
        title=spec.title,
        data_note=spec.data_note,
        guides=getattr(foundation, "guides", None),
        extra_plots=extra_plots,
    )
    return ExperimentOutcome(result, report)


def resolve_foundation(path: str | Path | None):
    """Load the foundation at ``path``, or the user's default one when ``path`` is None.

    Returns None when ``path`` is None and there is no default foundation.
    """
    from gtlomics.foundation import Foundation, find_default_foundation

    if path is None:
        path = find_default_foundation()
        if path is None:
            return None
    return Foundation.load(path)
