"""Run every arm on the same folds and collect a tidy table of scores and predictions.

Seeds: ``random_state`` → ``SeedSequence.spawn(n_repeats)``; each repeat spawns one seed for its
folds and one per fold for the models, so every arm sees the same split and the same model seed.
Nothing about a test fold is used to fit or tune anything: arms tune themselves on their training
fold only (inner CV), and neural arms train on a schedule fixed in advance.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from gtlomics.evaluation.arms import Arm
from gtlomics.evaluation.history import TrainingHistory, history_frame
from gtlomics.evaluation.metrics import METRICS, Predictions, score_predictions
from gtlomics.evaluation.protocols import Protocol, Split

__all__ = ["EvaluationResult", "TaskKind", "evaluate", "run_folds", "sample_ids", "take_rows"]

SELECTION_NOTE = (
    "No epoch, hyper-parameter or gene set was chosen on a test fold: baselines select genes and "
    "tune {} on their training fold (inner CV); neural arms train for a fixed schedule."
)


@dataclass(frozen=True)
class EvaluationResult:
    """Everything one evaluation produced.

    Attributes
    ----------
    scores
        One row per (repeat, fold, arm): ``arm``, ``kind``, ``repeat``, ``fold``, ``held_out``,
        ``seed``, ``n_train``, ``n_test``, the :data:`~gtlomics.evaluation.metrics.METRICS` and
        ``fit_seconds``.
    predictions
        One row per (repeat, fold, arm, test sample): ``sample``, ``y_true``, ``y_pred``, ``score``
        (positive-class probability or decision value) and ``proba:<class>`` columns.
    histories
        Training histories of the neural arms (diagnostic only).
    classes
        Sorted class labels; the last one is the positive class of AUROC.
    protocol
        Human-readable protocol name.
    arms
        ``(name, kind, description)`` of each arm, in evaluation order.
    random_state
        Seed the whole evaluation was derived from.
    """

    scores: pd.DataFrame
    predictions: pd.DataFrame
    histories: list[TrainingHistory]
    classes: np.ndarray
    protocol: str
    arms: tuple[tuple[str, str, str], ...]
    random_state: int
    notes: tuple[str, ...] = field(default=(SELECTION_NOTE.format("C"),))

    def arm_kinds(self) -> dict[str, str]:
        """Map arm name → ``"baseline"`` or ``"neural"``."""
        return {name: kind for name, kind, _ in self.arms}


def evaluate(
    arms: Sequence[Arm],
    X,
    y,
    *,
    protocol: Protocol,
    groups=None,
    n_repeats: int = 3,
    random_state: int = 0,
    progress: bool = True,
) -> EvaluationResult:
    """Fit and score every arm on the same folds, repeated over seeds.

    Parameters
    ----------
    arms
        The arms to compare (unique names).
    X
        AnnData, DataFrame or array, samples in rows; passed to every arm as it is (subset).
    y
        One label per sample.
    protocol
        A protocol from :mod:`gtlomics.evaluation.protocols`.
    groups
        One group per sample (study, dataset), for grouped protocols.
    n_repeats
        Number of seeds; each repeat reshuffles the folds (where the protocol is random) and
        reseeds every model.
    random_state
        Root seed.
    progress
        Show a progress bar over folds.

    Returns
    -------
    EvaluationResult

    Examples
    --------
    >>> from gtlomics.evaluation import StratifiedKFoldCV, baseline_arms
    >>> X = np.random.default_rng(0).poisson(20, size=(20, 30))
    >>> y = np.repeat(["a", "b"], 10)
    >>> result = evaluate(baseline_arms(["knn"]), X, y, protocol=StratifiedKFoldCV(2),
    ...                   n_repeats=1, progress=False)
    >>> len(result.scores)
    2
    """
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        raise ValueError("y has a single class; a classifier needs at least two.")
    task = TaskKind(METRICS, _classify)
    scores, predictions, histories = run_folds(
        task, arms, X, y, groups, protocol, n_repeats, random_state, progress
    )
    return EvaluationResult(
        scores=scores,
        predictions=predictions.drop(columns="held_out"),
        histories=histories,
        classes=np.unique(y),
        protocol=protocol.name,
        arms=tuple((arm.name, arm.kind, arm.description) for arm in arms),
        random_state=int(random_state),
    )


@dataclass(frozen=True)
class TaskKind:
    """What a kind of task (classification, regression) changes in the fold loop.

    Attributes
    ----------
    metrics
        Metric columns of the scores table, in order.
    predict
        ``predict(fitted, X_test, y_test) -> (metrics, frame)``: the fold's scores and one row per
        test sample (``y_true``, ``y_pred``, ...).
    """

    metrics: tuple[str, ...]
    predict: Callable[[Any, Any, np.ndarray], tuple[dict[str, float], pd.DataFrame]]


def run_folds(
    task: TaskKind,
    arms: Sequence[Arm],
    X,
    y: np.ndarray,
    groups,
    protocol: Protocol,
    n_repeats: int,
    random_state: int,
    progress: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, list[TrainingHistory]]:
    """The one fold loop: check the inputs, fit and score every arm on every (repeat, fold).

    Parameters are those of :func:`evaluate`. Returns the scores, the predictions (with
    ``held_out``) and the training histories.
    """
    _check_inputs(arms, X, y, groups)
    groups = None if groups is None else np.asarray(groups)
    ids = sample_ids(X)
    scores, predictions, histories = [], [], []
    plan = fold_plan(protocol, y, groups, n_repeats, random_state)
    for repeat, seed, split in tqdm(plan, desc="folds", disable=not progress, unit="fold"):
        X_train, X_test = take_rows(X, split.train), take_rows(X, split.test)
        for arm in arms:
            record, frame, history = _run_arm(
                task, arm, X_train, y[split.train], X_test, y[split.test], seed
            )
            keys = {"arm": arm.name, "repeat": repeat, "fold": split.fold}
            scores.append({**keys, "kind": arm.kind, "held_out": split.held_out, **record})
            predictions.append(
                frame.assign(**keys, held_out=split.held_out, sample=ids[split.test])
            )
            if history is not None:
                histories.append(TrainingHistory(arm.name, repeat, split.fold, history))
    front = ["arm", "kind", "repeat", "fold", "held_out", "seed", "n_train", "n_test"]
    scores = pd.DataFrame(scores)[front + list(task.metrics) + ["fit_seconds"]]
    return scores, pd.concat(predictions, ignore_index=True), histories


def fold_plan(
    protocol, y, groups, n_repeats: int, random_state: int
) -> list[tuple[int, int, Split]]:
    """Every (repeat, model seed, split) to run, in order."""
    plan = []
    for repeat, child in enumerate(np.random.SeedSequence(random_state).spawn(n_repeats)):
        split_seq, model_seq = child.spawn(2)
        splits = protocol.splits(y, groups, _int_seed(split_seq))
        for split, fold_seq in zip(splits, model_seq.spawn(len(splits)), strict=True):
            plan.append((repeat, _int_seed(fold_seq), split))
    return plan


def _run_arm(task: TaskKind, arm: Arm, X_train, y_train, X_test, y_test, seed: int):
    estimator = arm.build(seed)
    with limited_threads(arm.threads):
        start = time.perf_counter()
        estimator.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - start
        metrics, frame = task.predict(estimator, X_test, y_test)
    sizes = {"seed": seed, "n_train": len(y_train), "n_test": len(y_test)}
    record = {**sizes, **metrics, "fit_seconds": fit_seconds}
    return record, frame, history_frame(getattr(estimator, "history_", None))


@contextlib.contextmanager
def limited_threads(n_threads: int | None):
    """Limit BLAS/OpenMP pools and torch's intra-op threads to ``n_threads``, then restore them.

    Torch is only touched when it is already imported (a neural arm's factory imports it).
    """
    if n_threads is None:
        yield
        return
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n_threads):
        if torch is not None:
            torch.set_num_threads(n_threads)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(previous)


def _classify(estimator, X_test, y_test: np.ndarray) -> tuple[dict[str, float], pd.DataFrame]:
    classes = np.asarray(estimator.classes_)
    proba = estimator.predict_proba(X_test) if hasattr(estimator, "predict_proba") else None
    decision = None
    if proba is None and hasattr(estimator, "decision_function") and len(classes) == 2:
        decision = np.asarray(estimator.decision_function(X_test), dtype=float)
    y_pred = np.asarray(estimator.predict(X_test))
    predictions = Predictions(np.asarray(y_test), y_pred, proba, decision, classes)
    return score_predictions(predictions), _prediction_frame(predictions)


def _prediction_frame(predictions: Predictions) -> pd.DataFrame:
    score = predictions.positive_score()
    frame = pd.DataFrame(
        {
            "y_true": predictions.y_true,
            "y_pred": predictions.y_pred,
            "score": np.full(len(predictions.y_true), np.nan) if score is None else score,
        }
    )
    if predictions.proba is not None:
        for j, label in enumerate(predictions.classes):
            frame[f"proba:{label}"] = predictions.proba[:, j]
    return frame


def _check_inputs(arms: Sequence[Arm], X, y: np.ndarray, groups) -> None:
    names = [arm.name for arm in arms]
    if not names:
        raise ValueError("No arms to evaluate; pass at least one Arm.")
    if len(set(names)) != len(names):
        raise ValueError(f"Arm names must be unique, got {names}.")
    if len(y) != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} samples but y has {len(y)} labels.")
    if groups is not None and len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} entries for {len(y)} samples.")


def _int_seed(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1)[0])


def take_rows(X, rows: np.ndarray):
    """Rows ``rows`` of an AnnData (copied), DataFrame or array-like."""
    if hasattr(X, "obs") and hasattr(X, "layers"):
        return X[rows].copy()
    if isinstance(X, pd.DataFrame):
        return X.iloc[rows]
    return X[rows]


def sample_ids(X) -> np.ndarray:
    """Sample names of an AnnData or DataFrame, or ``0..n-1`` as strings."""
    if hasattr(X, "obs_names"):
        return np.asarray(X.obs_names, dtype=object)
    if isinstance(X, pd.DataFrame):
        return np.asarray(X.index.astype(str), dtype=object)
    return np.asarray([str(i) for i in range(X.shape[0])], dtype=object)
