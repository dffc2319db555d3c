"""Evaluation protocols, baselines, metrics and paired comparisons on any sklearn classifier."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from threadpoolctl import threadpool_limits

from gtlomics.evaluation import (
    Arm,
    BaselineConfig,
    CrossDataset,
    InnerCVLogisticRegression,
    LeaveOneGroupOut,
    LeaveOneOut,
    LogCPM,
    MostVariableGenes,
    Predictions,
    StratifiedKFoldCV,
    baseline_arms,
    evaluate,
    make_protocol,
    paired_comparison,
    pooled_scores,
    score_predictions,
    select_arms,
    summarize,
)

SMALL = BaselineConfig(n_genes=60, n_trees=20)


class SpyClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the prior; remembers which samples it was trained on (by obs name)."""

    seen: ClassVar[list] = []

    def fit(self, X, y):
        SpyClassifier.seen.append(set(X.obs_names))
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.full((X.shape[0], len(self.classes_)), 1.0 / len(self.classes_))

    def predict(self, X):
        return np.full(X.shape[0], self.classes_[0])


@pytest.fixture(scope="module")
def fewshot(synthetic_design):
    """24 samples of one cluster, 12 treated vs 12 control (synthetic)."""
    adata = synthetic_design.sample(24, clusters=[0], random_state=5)
    return adata, adata.obs["condition"].to_numpy()


def _run(arms, adata, y, protocol=None, **kwargs):
    kwargs.setdefault("n_repeats", 2)
    protocol = protocol or StratifiedKFoldCV(3)
    return evaluate(arms, adata, y, protocol=protocol, progress=False, **kwargs)


def test_every_arm_is_scored_on_the_same_test_samples(fewshot):
    adata, y = fewshot
    result = _run(baseline_arms(["logreg", "knn"], SMALL), adata, y)
    samples = result.predictions.groupby(["repeat", "fold", "arm"])["sample"].apply(frozenset)
    by_unit = samples.unstack("arm")
    assert (by_unit["logreg"] == by_unit["knn"]).all()
    seeds = result.scores.pivot(index=["repeat", "fold"], columns="arm", values="seed")
    assert (seeds["logreg"] == seeds["knn"]).all()
    # every sample is tested exactly once per repeat
    counts = result.predictions[result.predictions["arm"] == "knn"].groupby("repeat").size()
    assert counts.tolist() == [24, 24]


def test_no_test_sample_is_ever_seen_in_training(fewshot):
    adata, y = fewshot
    SpyClassifier.seen = []
    result = _run([Arm("spy", lambda seed: SpyClassifier())], adata, y)
    tested = result.predictions.groupby(["repeat", "fold"])["sample"].apply(set).tolist()
    assert len(SpyClassifier.seen) == len(tested) == 6
    for trained, test in zip(SpyClassifier.seen, tested, strict=True):
        assert trained.isdisjoint(test)
        assert len(trained) + len(test) == 24


def test_same_seed_same_table_other_seed_other_folds(fewshot):
    adata, y = fewshot
    state = np.random.get_state()[1].copy()
    arms = baseline_arms(["logreg", "random_forest"], SMALL)
    first = _run(arms, adata, y, random_state=3, n_repeats=1)
    again = _run(arms, adata, y, random_state=3, n_repeats=1)
    other = _run(arms, adata, y, random_state=4, n_repeats=1)
    columns = ["arm", "repeat", "fold", "seed", "auroc", "log_loss", "accuracy"]
    pd.testing.assert_frame_equal(first.scores[columns], again.scores[columns])
    assert not first.predictions["sample"].equals(other.predictions["sample"])
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_baseline_detects_a_strong_planted_effect(synthetic_design):
    from gtlomics.datasets import SyntheticDesign

    design = SyntheticDesign.random(
        n_genes=200, n_clusters=1, condition_effect=1.5, n_condition_genes=30, random_state=1
    )
    adata = design.sample(24, random_state=2)
    y = adata.obs["condition"].to_numpy()
    result = _run(baseline_arms(["logreg"], SMALL), adata, y, n_repeats=1)
    assert result.scores["auroc"].mean() > 0.9


def test_log_cpm_and_most_variable_genes():
    counts = np.array([[10.0, 30.0, 60.0], [5.0, 5.0, 90.0]])
    logcpm = LogCPM().fit_transform(counts)
    np.testing.assert_allclose(np.expm1(logcpm).sum(axis=1), [1e6, 1e6])
    values = np.c_[np.zeros(6), np.arange(6.0) * 10, np.arange(6.0)]
    selector = MostVariableGenes(n_genes=2).fit(values)
    assert selector.selected_.tolist() == [1, 2]
    assert selector.transform(values).shape == (6, 2)
    with pytest.raises(ValueError, match="non-negative"):
        LogCPM().fit(counts).transform(-counts)


def test_gene_selection_is_refitted_on_each_training_fold(fewshot):
    adata, y = fewshot
    pipeline = baseline_arms(["knn"], SMALL)[0].build(0)
    train = np.arange(12)
    pipeline.fit(adata[train].copy(), y[train])
    alone = MostVariableGenes(n_genes=60).fit(LogCPM().fit_transform(adata[train].copy()))
    np.testing.assert_array_equal(pipeline.named_steps["genes"].selected_, alone.selected_)


def test_inner_cv_logreg_tunes_c_and_falls_back_when_classes_are_tiny():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4))
    y = np.repeat([0, 1], 6)
    X[y == 1, 0] += 4.0
    with threadpool_limits(1, user_api="blas"):
        model = InnerCVLogisticRegression(cs=(0.01, 1.0), random_state=0).fit(X, y)
    # Classes 4 standard deviations apart: the weaker penalty has the lower held-out log-loss.
    assert model.inner_cv_used_ and model.C_ == 1.0 == model.estimator_.C
    assert model.score(X, y) == 1.0
    tiny = InnerCVLogisticRegression().fit(X[[0, 6]], y[[0, 6]])
    assert not tiny.inner_cv_used_ and tiny.C_ == 1.0


def test_metrics_match_sklearn_and_are_nan_when_undefined():
    y = np.array(["a", "b", "b", "a", "b"])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6], [0.1, 0.9]])
    classes = np.array(["a", "b"])
    pred = classes[proba.argmax(1)]
    scores = score_predictions(Predictions(y, pred, proba, None, classes))
    assert scores["auroc"] == pytest.approx(roc_auc_score(y == "b", proba[:, 1]))
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    single = score_predictions(Predictions(y[:1], pred[:1], proba[:1], None, classes))
    assert np.isnan(single["auroc"]) and single["accuracy"] == 1.0
    no_proba = score_predictions(Predictions(y, pred, None, proba[:, 1], classes))
    assert np.isnan(no_proba["log_loss"]) and no_proba["auroc"] == scores["auroc"]


def test_leave_one_out_pools_predictions(fewshot):
    adata, y = fewshot
    arms = baseline_arms(["logreg", "linear_svm"], SMALL)
    result = _run(arms, adata[:12].copy(), y[:12], protocol=LeaveOneOut(), n_repeats=1)
    assert result.scores["auroc"].isna().all()
    assert len(result.scores) == 24
    pooled = pooled_scores(result).set_index("arm")
    frame = result.predictions[result.predictions["arm"] == "linear_svm"]
    expected = roc_auc_score(frame["y_true"] == "treated", frame["score"])
    assert pooled.loc["linear_svm", "auroc"] == pytest.approx(expected)
    assert np.isnan(pooled.loc["linear_svm", "log_loss"])


def test_paired_comparison_prefers_the_better_arm():
    from gtlomics.datasets import SyntheticDesign

    design = SyntheticDesign.random(
        n_genes=200, n_clusters=1, condition_effect=1.5, n_condition_genes=30, random_state=1
    )
    adata = design.sample(24, random_state=2)
    y = adata.obs["condition"].to_numpy()
    chance = Arm("chance", lambda seed: DummyClassifier(strategy="uniform", random_state=seed))
    prior = Arm("prior", lambda seed: DummyClassifier(strategy="prior"))
    logreg = baseline_arms(["logreg"], SMALL)[0]
    challenger = Arm("gtl", logreg.factory, "neural", threads=1)
    result = _run([chance, prior, challenger], adata, y, n_repeats=3)
    comparison = paired_comparison(result, arm="gtl", metric="accuracy")
    assert comparison.unit == "fold" and comparison.n_pairs == 9
    fold_accuracy = result.scores.groupby("arm")["accuracy"].mean()
    assert comparison.baseline == fold_accuracy[["chance", "prior"]].idxmax()  # the stronger one
    assert comparison.wins > comparison.losses and comparison.mean_difference > 0.2
    expected = stats.binomtest(comparison.wins, comparison.wins + comparison.losses).pvalue
    assert comparison.sign_test_p == pytest.approx(expected)
    assert paired_comparison(result, arm="missing") is None
    versus_prior = paired_comparison(result, arm="gtl", metric="accuracy", against="prior")
    assert versus_prior.baseline == "prior" and versus_prior.wins > versus_prior.losses


def test_leave_one_group_out_and_cross_dataset(fewshot):
    adata, y = fewshot
    groups = np.repeat(["study_a", "study_b", "study_c"], 8)
    protocol = LeaveOneGroupOut()
    splits = protocol.splits(y, groups, seed=0)
    assert [split.held_out for split in splits] == ["study_a", "study_b", "study_c"]
    cross = CrossDataset(train="study_a", test="study_c")
    (split,) = cross.splits(y, groups, seed=0)
    assert set(groups[split.train]) == {"study_a"} and set(groups[split.test]) == {"study_c"}
    with pytest.raises(ValueError, match="needs groups"):
        _run(baseline_arms(["knn"], SMALL), adata, y, protocol=protocol)
    result = _run(baseline_arms(["knn"], SMALL), adata, y, protocol=protocol, groups=groups)
    assert result.scores["held_out"].tolist() == ["study_a", "study_b", "study_c"] * 2


def test_clear_errors_for_bad_setups(fewshot):
    adata, y = fewshot
    arms = baseline_arms(["knn"], SMALL)
    with pytest.raises(ValueError, match="at least 13 samples per class"):
        _run(arms, adata, y, protocol=StratifiedKFoldCV(13))
    with pytest.raises(ValueError, match="unique"):
        _run(arms + arms, adata, y)
    with pytest.raises(ValueError, match="Unknown baseline"):
        baseline_arms(["xgboost"])
    with pytest.raises(ValueError, match="Unknown arms"):
        select_arms(arms, ["gtl"])
    with pytest.raises(ValueError, match="Unknown protocol"):
        make_protocol("bootstrap")


def test_summary_has_mean_and_sd_per_arm(fewshot):
    adata, y = fewshot
    result = _run(baseline_arms(["logreg", "knn"], SMALL), adata, y)
    summary = summarize(result)
    assert list(summary.index) == ["logreg", "knn"]
    knn = result.scores[result.scores["arm"] == "knn"]["accuracy"]
    assert summary.loc["knn", ("accuracy", "mean")] == pytest.approx(knn.mean())
    assert summary.loc["knn", ("accuracy", "sd")] == pytest.approx(knn.std(ddof=1))
    assert summary.loc["knn", ("accuracy", "n")] == 6


def test_thread_limit_applies_inside_and_is_restored_after():
    torch = pytest.importorskip("torch")
    from gtlomics.evaluation.runner import limited_threads

    before = torch.get_num_threads()
    with limited_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_neural_arms_are_one_parameter_apart():
    pytest.importorskip("torch")
    from gtlomics.evaluation import build_arms, scout_count_arms

    sentinel = object()
    arms = build_arms(["pretrained", "gtl", "gtl_per_tensor"], foundation="f")
    params = {arm.name: arm.build(7).get_params() for arm in arms}
    assert params["pretrained"]["guidance"] == "none" and params["gtl"]["guidance"] == "scouts"
    assert params["gtl_per_tensor"]["guide_normalize"] == "per_tensor"
    assert {p["foundation"] for p in params.values()} == {"f"}
    assert {p["random_state"] for p in params.values()} == {7}
    ablation = scout_count_arms({16: sentinel, 4: "four"})
    assert [arm.name for arm in ablation] == ["gtl_scouts_4", "gtl_scouts_16"]
    assert ablation[1].build(0).get_params()["foundation"] is sentinel
    with pytest.raises(ValueError, match="need a foundation"):
        build_arms(["logreg", "gtl"])


def test_auroc_pairs_only_folds_with_both_classes(fewshot):
    adata, y = fewshot
    groups = np.where(y == "treated", "t", "c").astype(object)
    groups[np.flatnonzero(y == "treated")[:6]] = "mixed"
    groups[np.flatnonzero(y == "control")[:6]] = "mixed"
    groups[np.flatnonzero(y == "control")[6:9]] = "mixed_2"
    groups[np.flatnonzero(y == "treated")[6:9]] = "mixed_2"
    knn = baseline_arms(["knn"], SMALL)[0]
    arms = [knn, Arm("gtl", knn.factory, "neural", threads=1)]
    result = _run(arms, adata, y, protocol=LeaveOneGroupOut(), groups=groups, n_repeats=1)
    assert result.scores["auroc"].isna().sum() == 4  # two single-class groups × two arms
    comparison = paired_comparison(result, arm="gtl", metric="auroc")
    assert comparison.unit == "fold with both classes" and comparison.n_pairs == 2
    assert comparison.ties == 2  # the same model on the same folds
