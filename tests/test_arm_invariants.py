"""Invariants every arm of a comparison keeps, on CPU: one test per registered arm name.

The names come from the registries :mod:`gtlomics.evaluation.arms` exports (every ``*_NAMES``
tuple in its ``__all__``), so an arm added there is covered without editing this file.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from gtlomics.evaluation import arms as arm_registry
from gtlomics.evaluation.baselines import BaselineConfig
from gtlomics.evaluation.runner import limited_threads

# Small enough for the default suite: 32 genes, 20 trees, 2 epochs of fine-tuning, on CPU.
BASELINE = BaselineConfig(n_genes=32, n_trees=20)
GTL_PARAMS = {"epochs": 2, "batch_size": 8, "device": "cpu"}
PREFIXES = (1, 4)  # X[:1] and X[:4] of the 10 test samples
# float64 round-off of one sample's 32-term dot product, ~1e-15, with a wide margin; a prediction
# that depended on the other samples (batch statistics, a batch-wide scaler) moves by far more.
BASELINE_ATOL = 1e-12


def registered_arm_names() -> list[str]:
    """Every arm name of the registries ``gtlomics.evaluation.arms`` exports, each once."""
    names: list[str] = []
    for attribute in arm_registry.__all__:
        if attribute.endswith("_NAMES"):
            names += [name for name in getattr(arm_registry, attribute) if name not in names]
    return names


def _scores(estimator: BaseEstimator, X) -> np.ndarray:
    """What the runner scores: ``predict_proba``, else ``decision_function``."""
    if hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(X))
    return np.asarray(estimator.decision_function(X))


@pytest.fixture(scope="module")
def studies(gtl):
    """A 12-sample few-shot training study and 10 other samples of the same biology to predict."""
    return gtl.fewshot(12), gtl.fewshot(10, random_state=3)


def test_the_registry_holds_the_baselines_and_the_gtl_arms():
    names = registered_arm_names()
    assert {"logreg", "linear_svm", "random_forest", "knn"} <= set(names)
    assert {"scratch", "pretrained", "gtl"} <= set(names)


@pytest.mark.parametrize("name", registered_arm_names())
def test_a_sample_is_predicted_the_same_whichever_samples_come_with_it(name, studies, foundation):
    """``predict(X[:k]) == predict(X)[:k]``: a sample's prediction does not depend on the others.

    Neural arms: bit for bit (``GTLClassifier`` runs one sample per forward pass). Baselines: to
    :data:`BASELINE_ATOL` (their steps are per sample, per gene or per row, but BLAS may pick
    another kernel, summing in another order, for another number of rows).
    """
    (arm,) = arm_registry.build_arms(
        [name], foundation=foundation, baseline=BASELINE, gtl_params=GTL_PARAMS
    )
    train, test = studies
    estimator = arm.build(0)
    with limited_threads(arm.threads):
        estimator.fit(train, train.obs["condition"].to_numpy())
        everything = _scores(estimator, test)
        prefixes = {k: _scores(estimator, test[:k]) for k in PREFIXES}
    assert everything.shape[0] == test.n_obs and np.isfinite(everything).all()
    atol = 0.0 if arm.kind == "neural" else BASELINE_ATOL
    for k, prefix in prefixes.items():
        np.testing.assert_allclose(
            prefix, everything[:k], rtol=0, atol=atol, err_msg=f"{name}, first {k}"
        )
