"""Classical baselines on log-CPM of the most variable genes, as scikit-learn Pipelines.

Every pipeline is ``LogCPM → MostVariableGenes → StandardScaler → classifier``: the genes are chosen
and the scaler fitted on the training fold only (as in the reference numbers of the shared data
README). Logistic regression chooses ``C`` by an inner stratified CV on the training fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from gtlomics.evaluation.features import LogCPM, MostVariableGenes

__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_CS",
    "BaselineConfig",
    "InnerCVLogisticRegression",
    "make_baseline",
]

DEFAULT_CS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class BaselineConfig:
    """Settings shared by the baseline pipelines.

    Parameters
    ----------
    n_genes
        Most-variable genes kept (chosen inside each training fold).
    layer
        AnnData layer with raw counts (None: ``.X``).
    cs
        Grid of inverse regularisation strengths for the logistic regression's inner CV.
    inner_folds
        Folds of the inner CV (reduced to the smallest class count when needed).
    n_trees
        Trees in the random forest.
    n_neighbors
        Neighbours of the k-NN classifier (reduced to the training size when needed).
    """

    n_genes: int = 2000
    layer: str | None = None
    cs: tuple[float, ...] = DEFAULT_CS
    inner_folds: int = 3
    n_trees: int = 300
    n_neighbors: int = 3


DEFAULT_BASELINE = BaselineConfig()


class InnerCVLogisticRegression(ClassifierMixin, BaseEstimator):
    """L2 logistic regression whose ``C`` is chosen by stratified CV inside ``fit``.

    The inner CV uses ``min(inner_folds, smallest class count)`` folds; with fewer than two samples
    in a class it cannot run and ``C=1`` is used (recorded in ``inner_cv_used_``).

    Parameters
    ----------
    cs
        Candidate values of ``C``.
    inner_folds
        Requested number of inner folds.
    scoring
        Inner-CV score (any scikit-learn scorer name).
    random_state
        Seed of the inner fold shuffle.

    Examples
    --------
    >>> X = np.r_[np.zeros((6, 2)), np.ones((6, 2))]
    >>> y = np.r_[np.zeros(6), np.ones(6)]
    >>> InnerCVLogisticRegression(random_state=0).fit(X, y).predict([[1.0, 1.0]])
    array([1.])
    """

    def __init__(
        self,
        *,
        cs: Sequence[float] = DEFAULT_CS,
        inner_folds: int = 3,
        scoring: str = "neg_log_loss",
        random_state: int | None = None,
    ):
        self.cs = cs
        self.inner_folds = inner_folds
        self.scoring = scoring
        self.random_state = random_state

    def fit(self, X, y) -> InnerCVLogisticRegression:
        y = np.asarray(y)
        self.classes_, counts = np.unique(y, return_counts=True)
        n_folds = int(min(self.inner_folds, counts.min()))
        base = LogisticRegression(max_iter=5000)
        if n_folds >= 2:
            cv = StratifiedKFold(n_folds, shuffle=True, random_state=self.random_state)
            search = GridSearchCV(base, {"C": list(self.cs)}, cv=cv, scoring=self.scoring)
            self.estimator_ = search.fit(X, y).best_estimator_
            self.C_ = float(search.best_params_["C"])
        else:
            self.estimator_ = clone(base).set_params(C=1.0).fit(X, y)
            self.C_ = 1.0
        self.inner_cv_used_ = n_folds >= 2
        self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.decision_function(X)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)


def _classifier(name: str, config: BaselineConfig, seed: int) -> BaseEstimator:
    if name == "logreg":
        return InnerCVLogisticRegression(
            cs=config.cs, inner_folds=config.inner_folds, random_state=seed
        )
    if name == "linear_svm":
        return LinearSVC(C=1.0, max_iter=20000, random_state=seed)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=config.n_trees, random_state=seed, n_jobs=1)
    if name == "knn":
        return _SmallKNN(n_neighbors=config.n_neighbors)
    raise ValueError(
        f"Unknown baseline {name!r}; choose one of logreg, linear_svm, random_forest, knn."
    )


def make_baseline(name: str, config: BaselineConfig = DEFAULT_BASELINE, seed: int = 0) -> Pipeline:
    """Build one baseline pipeline: ``LogCPM → MostVariableGenes → StandardScaler → classifier``.

    Parameters
    ----------
    name
        ``"logreg"`` (C by inner CV), ``"linear_svm"``, ``"random_forest"`` or ``"knn"``.
    config
        Shared settings.
    seed
        Seed of every random step of the pipeline.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; accepts AnnData, DataFrame or a count array.
    """
    return Pipeline(
        [
            ("log_cpm", LogCPM(layer=config.layer)),
            ("genes", MostVariableGenes(n_genes=config.n_genes)),
            ("scale", StandardScaler()),
            ("classifier", _classifier(name, config, seed)),
        ]
    )


class _SmallKNN(ClassifierMixin, BaseEstimator):
    """k-NN whose ``k`` shrinks to the training size, so tiny folds still fit."""

    def __init__(self, *, n_neighbors: int = 3):
        self.n_neighbors = n_neighbors

    def fit(self, X, y) -> _SmallKNN:
        k = max(1, min(self.n_neighbors, len(y)))
        self.estimator_ = KNeighborsClassifier(n_neighbors=k).fit(X, y)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)
