"""Tuned linear models whose regularisation is chosen by an inner CV of the training samples only.

L2 logistic regression (``C``) for classification and ridge regression (``alpha``) for continuous
targets. The tuned linear baselines every claim of gtlomics is made against, and the linear probes
that start guided fine-tuning (:mod:`gtlomics.classifier.linear_probe`), use them, so both choose
their regularisation the same way. Plain scikit-learn, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

__all__ = ["DEFAULT_ALPHAS", "DEFAULT_CS", "InnerCVLogisticRegression", "InnerCVRidge"]

DEFAULT_CS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
DEFAULT_ALPHAS: tuple[float, ...] = (1e-2, 1e-1, 1.0, 10.0, 1e2, 1e3, 1e4, 1e5)
"""Ridge penalties tried by :class:`InnerCVRidge`: wide, because with thousands of standardised
genes and a dozen samples the best penalty is often large."""


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
            self.estimator_ = base.fit(X, y)  # C=1 is LogisticRegression's default
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


class InnerCVRidge(RegressorMixin, BaseEstimator):
    """Ridge regression whose ``alpha`` is chosen by k-fold CV inside ``fit``.

    The inner CV uses ``min(inner_folds, n_samples)`` shuffled folds (mean squared error); with
    fewer than two samples it cannot run and ``alpha=1`` is used (recorded in ``inner_cv_used_``).

    Parameters
    ----------
    alphas
        Candidate penalties.
    inner_folds
        Requested number of inner folds.
    random_state
        Seed of the inner fold shuffle.

    Examples
    --------
    >>> X = np.arange(12.0).reshape(-1, 1)
    >>> model = InnerCVRidge(random_state=0).fit(X, 2 * X[:, 0] + 1)
    >>> round(float(model.predict([[20.0]])[0]), 1)
    41.0
    """

    def __init__(
        self,
        *,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        inner_folds: int = 3,
        random_state: int | None = None,
    ):
        self.alphas = alphas
        self.inner_folds = inner_folds
        self.random_state = random_state

    def fit(self, X, y) -> InnerCVRidge:
        y = np.asarray(y, dtype=float)
        n_folds = int(min(self.inner_folds, len(y)))
        if n_folds >= 2:
            cv = KFold(n_folds, shuffle=True, random_state=self.random_state)
            # Mean squared error, not RidgeCV's default R²: R² is undefined on a one-sample
            # inner test fold (few-shot training sets), where every alpha would score NaN.
            scoring = "neg_mean_squared_error"
            self.estimator_ = RidgeCV(alphas=list(self.alphas), cv=cv, scoring=scoring).fit(X, y)
            self.alpha_ = float(self.estimator_.alpha_)
        else:
            self.estimator_ = Ridge(alpha=1.0).fit(X, y)
            self.alpha_ = 1.0
        self.inner_cv_used_ = n_folds >= 2
        self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)
