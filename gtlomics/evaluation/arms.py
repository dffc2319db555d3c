"""Arms of a comparison: a name plus a factory that builds a fresh, seeded estimator.

Every arm of one evaluation is fitted on the same folds with the same per-fold seed. Baselines are
the pipelines of :mod:`gtlomics.evaluation.baselines`; neural arms are ``GTLClassifier`` (or, for
continuous targets, ``GTLRegressor``) configurations one parameter apart (scratch, pre-trained
only, GTL) plus optional ablations. :func:`regression_arms` builds the regression comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from sklearn.base import BaseEstimator

from gtlomics.evaluation.baselines import (
    DEFAULT_BASELINE,
    REGRESSION_BASELINE_NAMES,
    BaselineConfig,
    make_baseline,
    make_regression_baseline,
)

__all__ = [
    "ABLATION_NAMES",
    "BASELINE_NAMES",
    "CONTROL_ARM_NAMES",
    "ENCODING_BASELINE_NAMES",
    "GTL_ARM_NAMES",
    "Arm",
    "baseline_arms",
    "build_arms",
    "gtl_arms",
    "guide_mode_arms",
    "regression_arms",
    "scout_count_arms",
    "scratch_shape",
    "select_arms",
]

BASELINE_NAMES: tuple[str, ...] = ("logreg", "linear_svm", "random_forest", "knn")
ENCODING_BASELINE_NAMES: tuple[str, ...] = ("logreg_rank",)
"""Baselines that tell an input encoding's gain from pre-training's (not run by default)."""
GTL_ARM_NAMES: tuple[str, ...] = ("scratch", "pretrained", "gtl")
CONTROL_ARM_NAMES: tuple[str, ...] = ("probe", "gtl_shuffled", "gtl_constant")
"""The linear probe alone and GTL with shuffled or constant guides (the guides' controls)."""

ArmKind = Literal["baseline", "neural"]
Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Arm:
    """One arm of a comparison.

    Parameters
    ----------
    name
        Short unique label used in tables and plots.
    factory
        ``factory(seed) -> estimator``: a fresh, unfitted scikit-learn classifier.
    kind
        ``"baseline"`` or ``"neural"`` (neural arms expose ``history_`` after fit).
    description
        One line for the report.
    threads
        Limit BLAS, OpenMP and torch intra-op threads to this many while the arm fits and
        predicts (None: no limit). Built-in arms use 1: few-shot fits are too small for threads
        to pay (one GTL fit of 18 × 256 on 2 cores: 13.9 s with 2 torch threads, 3.2 s with 1).

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> arm = Arm("prior", lambda seed: DummyClassifier(strategy="prior"))
    >>> arm.build(0).strategy
    'prior'
    """

    name: str
    factory: Callable[[int], BaseEstimator] = field(repr=False)
    kind: ArmKind = "baseline"
    description: str = ""
    threads: int | None = None

    def build(self, seed: int) -> BaseEstimator:
        """Return a fresh estimator seeded with ``seed``."""
        return self.factory(int(seed))


def baseline_arms(
    names: Sequence[str] = BASELINE_NAMES,
    config: BaselineConfig = DEFAULT_BASELINE,
    *,
    task: Task = "classification",
) -> list[Arm]:
    """The classical baselines on log-CPM of the ``config.n_genes`` most variable genes.

    Parameters
    ----------
    names
        :data:`BASELINE_NAMES` and :data:`ENCODING_BASELINE_NAMES`, or for ``task="regression"``
        :data:`~gtlomics.evaluation.baselines.REGRESSION_BASELINE_NAMES`.
    config
        Settings of the pipelines.
    task
        ``"classification"`` (:func:`make_baseline`) or ``"regression"``
        (:func:`make_regression_baseline`).
    """
    forest = f"random forest, {config.n_trees} trees"
    descriptions = {
        "logreg": "logistic regression, C by inner CV",
        "linear_svm": "linear SVM, C=1",
        "random_forest": forest,
        "knn": f"k-NN, k={config.n_neighbors}",
        "logreg_rank": "logistic regression, C by inner CV",
    }
    make = make_baseline
    if task == "regression":
        descriptions = {"ridge": "ridge regression, alpha by inner CV", "random_forest": forest}
        make = make_regression_baseline
    arms = []
    for name in names:
        if name not in descriptions:
            raise ValueError(f"Unknown baseline {name!r}; choose from {list(descriptions)}.")
        inputs = "rank normal scores" if name == "logreg_rank" else "log-CPM"
        description = f"{descriptions[name]} on {inputs}, top {config.n_genes} variable genes"
        arms.append(Arm(name, partial(make, name, config), "baseline", description, threads=1))
    return arms


def _build_gtl(
    params: Mapping[str, Any], seed: int, task: Task = "classification"
) -> BaseEstimator:
    from gtlomics.classifier import GTLClassifier, GTLRegressor  # lazy: torch is heavy

    model = GTLRegressor if task == "regression" else GTLClassifier
    return model(**dict(params), random_state=seed)


_PROBE_MODELS = {
    "classification": "logistic regression (C by inner CV)",
    "regression": "ridge regression (alpha by inner CV)",
}


def gtl_arms(
    foundation: Any,
    *,
    names: Sequence[str] = GTL_ARM_NAMES,
    params: Mapping[str, Any] | None = None,
    task: Task = "classification",
) -> list[Arm]:
    """The three ``GTLClassifier`` arms of the reference experiment.

    Parameters
    ----------
    foundation
        A ``Foundation`` or a saved foundation directory (used by ``pretrained`` and ``gtl``).
    names
        Subset of :data:`GTL_ARM_NAMES` and :data:`CONTROL_ARM_NAMES`.
    params
        Extra ``GTLClassifier`` parameters shared by all three (e.g. ``max_epochs``).
    task
        ``"classification"`` (``GTLClassifier`` arms) or ``"regression"`` (``GTLRegressor``).

    Returns
    -------
    list of Arm
        ``scratch`` (``foundation=None``, the foundation's encoder shape), ``pretrained``
        (``guidance="none"``), ``gtl`` (default guidance from the foundation's scouts).
    """
    if task not in _PROBE_MODELS:
        raise ValueError(f"task must be one of {list(_PROBE_MODELS)}, got {task!r}.")
    shared = dict(params or {})
    settings = {
        "scratch": (
            {"foundation": None, **(scratch_shape(foundation) if "scratch" in names else {})},
            "same transformer from scratch (no pre-training)",
        ),
        "pretrained": (
            {"foundation": foundation, "guidance": "none"},
            "pre-trained encoder, unguided fine-tuning",
        ),
        "gtl": ({"foundation": foundation}, "pre-trained encoder, guided fine-tuning (GTL)"),
        "probe": (
            {"foundation": foundation, "head": "pooled", "epochs": 0},
            f"linear probe: {_PROBE_MODELS[task]} on frozen pooled embeddings",
        ),
        "gtl_shuffled": (
            {"foundation": foundation, "guidance": "shuffled"},
            "control: GTL with guides permuted within each tensor",
        ),
        "gtl_constant": (
            {"foundation": foundation, "guidance": "constant"},
            "control: GTL with every guide set to the mean guide",
        ),
    }
    arms = []
    for name in names:
        if name not in settings:
            raise ValueError(f"Unknown GTL arm {name!r}; choose from {list(settings)}.")
        own, description = settings[name]
        factory = partial(_build_gtl, {**shared, **own}, task=task)
        arms.append(Arm(name, factory, "neural", description, threads=1))
    return arms


def scratch_shape(foundation: Any) -> dict[str, int]:
    """``GTLClassifier`` size parameters that give a from-scratch model the foundation's shape.

    Parameters
    ----------
    foundation
        A ``Foundation``, a saved foundation directory, or None (no constraint: empty dict).
    """
    if foundation is None:
        return {}
    if not hasattr(foundation, "encoder_config"):
        from gtlomics.foundation import Foundation  # lazy: torch is heavy

        foundation = Foundation.load(foundation)
    config = foundation.encoder_config
    return {
        "n_genes": foundation.n_genes,
        "d_model": config.d_model,
        "n_layers": config.n_layers,
        "n_heads": config.n_heads,
    }


def guide_mode_arms(
    foundation: Any, *, params: Mapping[str, Any] | None = None, parameter: str = "guide_normalize"
) -> list[Arm]:
    """Ablation: GTL with globally vs per-tensor normalised guides.

    Parameters
    ----------
    foundation
        The foundation whose guides are used.
    params
        Extra ``GTLClassifier`` parameters.
    parameter
        Name of the ``GTLClassifier`` parameter that picks the normalisation.
    """
    arms = []
    for mode in ("global", "per_tensor"):
        settings = {**dict(params or {}), "foundation": foundation, parameter: mode}
        factory = partial(_build_gtl, settings)
        description = f"GTL, guides normalised {mode}"
        arms.append(Arm(f"gtl_{mode}", factory, "neural", description, threads=1))
    return arms


def scout_count_arms(
    foundations: Mapping[int, Any], *, params: Mapping[str, Any] | None = None
) -> list[Arm]:
    """Ablation: GTL with guides from different numbers of scouts.

    Parameters
    ----------
    foundations
        Number of scouts → a foundation built with that many (same corpus and seed otherwise, so
        that only scouting differs: ``build_foundation(corpus, n_scouts=n, random_state=s)``).
    params
        Extra ``GTLClassifier`` parameters.

    Returns
    -------
    list of Arm
        ``gtl_scouts_<n>``, in increasing ``n``.
    """
    arms = []
    for n_scouts in sorted(foundations):
        settings = {**dict(params or {}), "foundation": foundations[n_scouts]}
        factory = partial(_build_gtl, settings)
        description = f"GTL, guides from {n_scouts} scouts"
        arms.append(Arm(f"gtl_scouts_{n_scouts}", factory, "neural", description, threads=1))
    return arms


def select_arms(arms: Sequence[Arm], names: Sequence[str]) -> list[Arm]:
    """Keep the arms named in ``names`` (in that order); unknown names are an error."""
    by_name = {arm.name: arm for arm in arms}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ValueError(f"Unknown arms {missing}; available: {sorted(by_name)}.")
    return [by_name[name] for name in names]


ABLATION_NAMES: tuple[str, ...] = ("gtl_global", "gtl_per_tensor")


def build_arms(
    names: Sequence[str],
    *,
    foundation: Any = None,
    baseline: BaselineConfig = DEFAULT_BASELINE,
    gtl_params: Mapping[str, Any] | None = None,
    task: Task = "classification",
) -> list[Arm]:
    """Arms by name, in the order given: baselines, GTL arms and guide-normalisation ablations.

    Parameters
    ----------
    names
        Any of :data:`BASELINE_NAMES`, :data:`ENCODING_BASELINE_NAMES`, :data:`GTL_ARM_NAMES`,
        :data:`CONTROL_ARM_NAMES` and :data:`ABLATION_NAMES`; for ``task="regression"``,
        :data:`~gtlomics.evaluation.baselines.REGRESSION_BASELINE_NAMES`, :data:`GTL_ARM_NAMES`
        and :data:`CONTROL_ARM_NAMES` (as ``GTLRegressor`` arms).
    foundation
        ``Foundation`` or directory; required by every neural arm but ``scratch``.
    baseline
        Settings of the baseline pipelines.
    gtl_params
        Extra ``GTLClassifier`` (``GTLRegressor``) parameters of the neural arms.
    task
        ``"classification"`` or ``"regression"``.
    """
    regression = task == "regression"
    classical = (
        REGRESSION_BASELINE_NAMES if regression else BASELINE_NAMES + ENCODING_BASELINE_NAMES
    )
    neural = (*GTL_ARM_NAMES, *CONTROL_ARM_NAMES)
    ablations = () if regression else ABLATION_NAMES
    known = (*classical, *neural, *ablations)
    unknown = [name for name in names if name not in known]
    if unknown:
        kind = "regression arms" if regression else "arms"
        raise ValueError(f"Unknown {kind} {unknown}; choose from {list(known)}.")
    needs_foundation = [n for n in names if n not in classical and n != "scratch"]
    if needs_foundation and foundation is None:
        raise ValueError(
            f"Arms {needs_foundation} need a foundation; pass one (build it with "
            "`gtlomics foundation build`) or drop those arms."
        )
    pool = baseline_arms([n for n in names if n in classical], baseline, task=task)
    wanted = [n for n in names if n in neural]
    pool += gtl_arms(foundation, names=wanted, params=gtl_params, task=task)
    if any(name in ablations for name in names):
        pool += guide_mode_arms(foundation, params=gtl_params)
    return select_arms(pool, names)


def regression_arms(
    names: Sequence[str],
    *,
    foundation: Any = None,
    baseline: BaselineConfig = DEFAULT_BASELINE,
    gtl_params: Mapping[str, Any] | None = None,
) -> list[Arm]:
    """Arms of a regression comparison by name: :func:`build_arms` with ``task="regression"``.

    Examples
    --------
    >>> [arm.name for arm in regression_arms(["ridge", "random_forest"])]
    ['ridge', 'random_forest']
    """
    options = {"foundation": foundation, "baseline": baseline, "gtl_params": gtl_params}
    return build_arms(names, **options, task="regression")
