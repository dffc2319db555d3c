"""Classical baselines on log-CPM of the most variable genes, as scikit-learn Pipelines.

Every pipeline is ``LogCPM → MostVariableGenes → StandardScaler → model``: the genes are chosen
and the scaler fitted on the training fold only (as in the reference numbers of the shared data
README). Logistic regression chooses ``C`` by an inner stratified CV on the training fold; for
continuous targets (:func:`make_regression_baseline`) ridge regression chooses ``alpha`` by an
inner k-fold CV on the training fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from gtlomics.evaluation.features import LogCPM, MostVariableGenes, RankNormalScores
from gtlomics.linear import DEFAULT_ALPHAS, DEFAULT_CS, InnerCVLogisticRegression, InnerCVRidge

__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_CS",
    "REGRESSION_BASELINE_NAMES",
    "BaselineConfig",
    "InnerCVLogisticRegression",
    "make_baseline",
    "make_regression_baseline",
]

REGRESSION_BASELINE_NAMES: tuple[str, ...] = ("ridge", "random_forest")


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
        Folds of the inner CV (reduced to the smallest class count, or for ridge the number of
        samples, when needed).
    n_trees
        Trees in the random forest.
    n_neighbors
        Neighbours of the k-NN classifier (reduced to the training size when needed).
    alphas
        Grid of ridge penalties for the ridge regression's inner CV.
    """

    n_genes: int = 2000
    layer: str | None = None
    cs: tuple[float, ...] = DEFAULT_CS
    inner_folds: int = 3
    n_trees: int = 300
    n_neighbors: int = 3
    alphas: tuple[float, ...] = DEFAULT_ALPHAS


DEFAULT_BASELINE = BaselineConfig()


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
        ``"logreg"`` (C by inner CV), ``"linear_svm"``, ``"random_forest"``, ``"knn"``, or
        ``"logreg_rank"`` (the same logistic regression on per-sample rank normal scores instead
        of log-CPM).
    config
        Shared settings.
    seed
        Seed of every random step of the pipeline.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; accepts AnnData, DataFrame or a count array.
    """
    if name == "logreg_rank":  # the rank foundation's encoding, for a tuned linear model
        encoding = ("rank_scores", RankNormalScores(layer=config.layer))
        name = "logreg"
    else:
        encoding = ("log_cpm", LogCPM(layer=config.layer))
    return _pipeline(encoding, config, ("classifier", _classifier(name, config, seed)))


def _pipeline(encoding: tuple, config: BaselineConfig, model: tuple) -> Pipeline:
    """``encoding → MostVariableGenes → StandardScaler → model`` (named steps)."""
    genes = MostVariableGenes(n_genes=config.n_genes)
    return Pipeline([encoding, ("genes", genes), ("scale", StandardScaler()), model])


def _regressor(name: str, config: BaselineConfig, seed: int) -> BaseEstimator:
    if name == "ridge":
        return InnerCVRidge(alphas=config.alphas, inner_folds=config.inner_folds, random_state=seed)
    if name == "random_forest":
        return RandomForestRegressor(n_estimators=config.n_trees, random_state=seed, n_jobs=1)
    raise ValueError(
        f"Unknown regression baseline {name!r}; choose one of {REGRESSION_BASELINE_NAMES}."
    )


def make_regression_baseline(
    name: str, config: BaselineConfig = DEFAULT_BASELINE, seed: int = 0
) -> Pipeline:
    """Build one regression baseline: ``LogCPM → MostVariableGenes → StandardScaler → model``.

    Parameters
    ----------
    name
        ``"ridge"`` (alpha by inner k-fold CV) or ``"random_forest"``.
    config
        Shared settings (``n_genes``, ``layer``, ``alphas``, ``inner_folds``, ``n_trees``).
    seed
        Seed of every random step of the pipeline.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; accepts AnnData, DataFrame or a count array.

    Examples
    --------
    >>> X = np.random.default_rng(0).poisson(20, size=(12, 30))
    >>> make_regression_baseline("ridge").fit(X, np.arange(12.0)).predict(X).shape
    (12,)
    """
    encoding = ("log_cpm", LogCPM(layer=config.layer))
    return _pipeline(encoding, config, ("regressor", _regressor(name, config, seed)))


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
