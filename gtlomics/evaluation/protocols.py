"""Evaluation protocols: how samples are split into training and test folds.

A protocol is a frozen dataclass with ``splits(y, groups, seed) -> list[Split]``. Deterministic
protocols (leave-one-out, leave-one-group-out, cross-dataset) give the same folds for every seed;
repeated seeds then vary only the models' own randomness.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

__all__ = [
    "CrossDataset",
    "KFoldCV",
    "LeaveOneGroupOut",
    "LeaveOneOut",
    "Protocol",
    "Split",
    "StratifiedGroupKFoldCV",
    "StratifiedKFoldCV",
    "make_protocol",
]


@dataclass(frozen=True)
class Split:
    """One train/test split.

    Parameters
    ----------
    fold
        Index of the split within its repeat.
    train, test
        Row indices of the training and test samples.
    held_out
        Name of the held-out group or dataset ("" when not grouped).
    """

    fold: int
    train: np.ndarray
    test: np.ndarray
    held_out: str = ""


@dataclass(frozen=True)
class _ShuffledKFold:
    """Base of the k-fold protocols; each checks its inputs and splits (reshuffled) in _pairs."""

    n_splits: int = 5
    _title = "{}-fold CV"

    @property
    def name(self) -> str:
        return self._title.format(self.n_splits)

    def splits(self, y: np.ndarray, groups: np.ndarray | None, seed: int) -> list[Split]:
        """Return the folds of one repeat."""
        pairs = self._pairs(y, groups, seed)
        return [Split(i, train, test) for i, (train, test) in enumerate(pairs)]


@dataclass(frozen=True)
class StratifiedKFoldCV(_ShuffledKFold):
    """Stratified k-fold, reshuffled for every seed (repeat).

    Parameters
    ----------
    n_splits
        Number of folds; must not exceed the smallest class count.
    """

    _title = "stratified {}-fold CV"

    def _pairs(self, y: np.ndarray, groups: np.ndarray | None, seed: int) -> Iterator:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() < self.n_splits:
            raise ValueError(
                f"{self.n_splits}-fold CV needs at least {self.n_splits} samples per class; the "
                f"smallest class has {counts.min()}. Lower n_splits or use leave-one-out."
            )
        cv = StratifiedKFold(self.n_splits, shuffle=True, random_state=seed)
        return cv.split(np.zeros(len(y)), y)


@dataclass(frozen=True)
class KFoldCV(_ShuffledKFold):
    """Plain (unstratified) k-fold, reshuffled for every seed: for continuous targets.

    Parameters
    ----------
    n_splits
        Number of folds; must not exceed the number of samples.
    """

    def _pairs(self, y: np.ndarray, groups: np.ndarray | None, seed: int) -> Iterator:
        if len(y) < self.n_splits:
            raise ValueError(
                f"{self.n_splits}-fold CV needs at least {self.n_splits} samples, got {len(y)}. "
                "Lower n_splits or use leave-one-out."
            )
        return KFold(self.n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)))


@dataclass(frozen=True)
class StratifiedGroupKFoldCV(_ShuffledKFold):
    """Stratified k-fold that never splits a group (an animal sequenced twice, a cohort).

    No group has samples on both sides of a split.

    Parameters
    ----------
    n_splits
        Number of folds; every fold must be able to hold a group of each class.
    """

    n_splits: int = 4
    _title = "stratified group {}-fold CV"

    def _pairs(self, y: np.ndarray, groups: np.ndarray | None, seed: int) -> Iterator:
        groups = _require_groups(groups, self.name)
        cv = StratifiedGroupKFold(self.n_splits, shuffle=True, random_state=seed)
        return cv.split(np.zeros(len(y)), y, groups)


@dataclass(frozen=True)
class LeaveOneOut:
    """Each sample is the test set once; metrics are pooled over the out-of-fold predictions."""

    @property
    def name(self) -> str:
        return "leave-one-out"

    def splits(self, y: np.ndarray, groups: np.ndarray | None, seed: int) -> list[Split]:
        """Return one split per sample."""
        everyone = np.arange(len(y))
        return [Split(i, np.delete(everyone, i), np.array([i])) for i in everyone]


@dataclass(frozen=True)
class LeaveOneGroupOut:
    """Each group (study, mission, batch) is held out once.

    Groups whose held-out samples are all of one class are still evaluated (accuracy is defined,
    AUROC is not); the training set must contain every class unless ``every_class_in_train`` is
    False (continuous targets, where "every class" would mean every distinct value).

    Parameters
    ----------
    every_class_in_train
        Skip groups whose removal leaves a class without training samples.
    """

    every_class_in_train: bool = True

    @property
    def name(self) -> str:
        return "leave-one-group-out"

    def splits(self, y: np.ndarray, groups: np.ndarray | None, seed: int) -> list[Split]:
        """Return one split per group (with a training set that holds every class, if asked)."""
        groups = _require_groups(groups, self.name)
        n_classes = len(np.unique(y))
        splits = []
        for name in _ordered_unique(groups):
            test = np.flatnonzero(groups == name)
            train = np.flatnonzero(groups != name)
            if not self.every_class_in_train or len(np.unique(y[train])) == n_classes:
                splits.append(Split(len(splits), train, test, str(name)))
        if not splits:
            raise ValueError("No group can be held out with every class left in training.")
        return splits


@dataclass(frozen=True)
class CrossDataset:
    """Fit on one dataset, test on another (the OSD-105 → OSD-104 shape).

    Parameters
    ----------
    train, test
        Values of ``groups`` naming the training and the test dataset.
    """

    train: str
    test: str

    @property
    def name(self) -> str:
        return f"cross-dataset {self.train} → {self.test}"

    def splits(self, y: np.ndarray, groups: np.ndarray | None, seed: int) -> list[Split]:
        """Return the single train-on-A, test-on-B split."""
        groups = _require_groups(groups, self.name).astype(str)
        train = np.flatnonzero(groups == self.train)
        test = np.flatnonzero(groups == self.test)
        for role, name, rows in (("train", self.train, train), ("test", self.test, test)):
            if rows.size == 0:
                raise ValueError(
                    f"No sample has group {name!r} ({role}); groups are {_ordered_unique(groups)}."
                )
        return [Split(0, train, test, self.test)]


Protocol = (
    StratifiedKFoldCV
    | KFoldCV
    | StratifiedGroupKFoldCV
    | LeaveOneOut
    | LeaveOneGroupOut
    | CrossDataset
)


def make_protocol(
    name: str,
    *,
    n_splits: int = 5,
    train: str | None = None,
    test: str | None = None,
    task: str = "classification",
) -> Protocol:
    """Build a protocol from its command-line name.

    Parameters
    ----------
    name
        ``"kfold"``, ``"group_kfold"``, ``"loo"``, ``"logo"`` or ``"cross"``.
    n_splits
        Folds of ``"kfold"`` and ``"group_kfold"``.
    train, test
        Group values for ``"cross"``.
    task
        ``"classification"`` or ``"regression"``: for continuous targets ``"kfold"`` is plain
        k-fold and ``"logo"`` holds out every group; ``"group_kfold"`` (stratified) is refused.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}.")
    regression = task == "regression"
    if name == "kfold":
        return KFoldCV(n_splits) if regression else StratifiedKFoldCV(n_splits)
    if name == "group_kfold":
        if regression:
            raise ValueError("group_kfold is stratified by class; for regression use logo.")
        return StratifiedGroupKFoldCV(n_splits)
    if name == "loo":
        return LeaveOneOut()
    if name == "logo":
        return LeaveOneGroupOut(every_class_in_train=not regression)
    if name == "cross":
        if train is None or test is None:
            raise ValueError("The cross protocol needs train= and test= group names.")
        return CrossDataset(train, test)
    raise ValueError(f"Unknown protocol {name!r}; choose kfold, group_kfold, loo, logo or cross.")


def _require_groups(groups: np.ndarray | None, protocol: str) -> np.ndarray:
    if groups is None:
        raise ValueError(f"The {protocol} protocol needs groups=...; pass one label per sample.")
    return np.asarray(groups)


def _ordered_unique(values: np.ndarray) -> list:
    _, first = np.unique(values, return_index=True)
    return [values[i] for i in sorted(first)]
