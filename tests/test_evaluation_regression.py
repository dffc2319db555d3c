"""Regression evaluation: metrics, protocols for continuous targets, baselines, the runner."""

from __future__ import annotations

import numpy as np
import pytest

from gtlomics.evaluation import (
    KFoldCV,
    LeaveOneGroupOut,
    LeaveOneOut,
    baseline_arms,
    evaluate,
    evaluate_regression,
    make_protocol,
    make_regression_baseline,
    pooled_regression_scores,
    regression_arms,
    regression_summary_markdown,
    score_regression,
    write_regression_report,
)


def _counts_with_planted_target(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts whose first gene's log-CPM drives the target."""
    rng = np.random.default_rng(seed)
    drive = rng.uniform(0, 3, n)
    rates = np.full((n, 40), 50.0)
    rates[:, 0] = 50.0 * np.exp(drive)
    return rng.poisson(rates), 10.0 * drive


def test_metrics_match_their_definitions_and_are_nan_when_undefined():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    perfect = score_regression(y, y)
    assert perfect == {"r2": 1.0, "mae": 0.0, "spearman": 1.0}
    mean_only = score_regression(y, np.full(4, y.mean()))
    assert mean_only["r2"] == 0.0 and np.isnan(mean_only["spearman"])
    assert score_regression(y, -y)["spearman"] == -1.0
    assert np.isnan(score_regression(np.array([5.0]), np.array([4.0]))["r2"])


def test_regression_protocols_accept_continuous_targets():
    y = np.linspace(0, 1, 9)  # every value distinct: no "class" is ever in every fold
    groups = np.repeat(["a", "b", "c"], 3)
    logo = make_protocol("logo", task="regression")
    assert [s.held_out for s in logo.splits(y, groups, 0)] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="No group can be held out"):
        LeaveOneGroupOut().splits(y, groups, 0)  # the classification default refuses
    folds = make_protocol("kfold", n_splits=3, task="regression").splits(y, None, 0)
    assert isinstance(make_protocol("kfold", task="regression"), KFoldCV)
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(9))
    with pytest.raises(ValueError, match="for regression use logo"):
        make_protocol("group_kfold", task="regression")


def test_baselines_recover_a_planted_target():
    X, y = _counts_with_planted_target(60)
    X_test, y_test = _counts_with_planted_target(30, seed=1)
    for name in ("ridge", "random_forest"):
        model = make_regression_baseline(name, seed=0).fit(X, y)
        assert score_regression(y_test, model.predict(X_test))["r2"] > 0.8, name


def test_every_arm_sees_the_same_folds_and_reports_are_written(tmp_path):
    X, y = _counts_with_planted_target(24)
    arms = regression_arms(["ridge", "random_forest"])
    result = evaluate_regression(arms, X, y, protocol=KFoldCV(3), n_repeats=2, progress=False)
    order = {
        arm: f[["repeat", "fold", "sample"]].to_numpy().tolist()
        for arm, f in result.predictions.groupby("arm")
    }
    assert order["ridge"] == order["random_forest"]  # same folds, same samples, same order
    assert len(result.scores) == 2 * 3 * 2
    pooled = pooled_regression_scores(result)
    assert (pooled["r2"] > 0.5).all()
    assert "| ridge |" in regression_summary_markdown(result)
    out = write_regression_report(result, tmp_path / "report")
    assert {p.name for p in out.iterdir()} >= {"scores.csv", "predictions.csv", "summary.md"}


def test_leave_one_out_summary_shows_no_nan_cells():
    # One test sample per fold: per-fold R² and Spearman are undefined, shown as "–".
    X, y = _counts_with_planted_target(10)
    result = evaluate_regression(
        regression_arms(["ridge"]), X, y, protocol=LeaveOneOut(), progress=False
    )
    markdown = regression_summary_markdown(result)
    assert "nan" not in markdown
    ridge_rows = [line for line in markdown.splitlines() if line.startswith("| ridge |")]
    per_fold, pooled = ridge_rows
    assert per_fold.count("–") == 2 and "±" in per_fold  # MAE per fold has a spread
    assert "–" not in pooled


def test_neural_arms_need_a_foundation_and_names_are_checked():
    with pytest.raises(ValueError, match="need a foundation"):
        regression_arms(["ridge", "gtl"])
    with pytest.raises(ValueError, match="Unknown regression arms"):
        regression_arms(["logreg"])
    (scratch,) = regression_arms(["scratch"])
    assert type(scratch.build(0)).__name__ == "GTLRegressor"


def test_labels_are_refused_with_a_pointer_to_evaluate():
    X, _ = _counts_with_planted_target(6)
    with pytest.raises(ValueError, match="use evaluate"):
        evaluate_regression(
            regression_arms(["ridge"]), X, np.array(["a", "b"] * 3), protocol=KFoldCV(2)
        )


def test_classification_and_regression_run_the_same_folds_with_the_same_seeds():
    X, y = _counts_with_planted_target(12)
    labels = np.where(y > np.median(y), "high", "low")
    options = {"protocol": KFoldCV(3), "n_repeats": 2, "random_state": 5, "progress": False}
    regression = evaluate_regression(regression_arms(["ridge"]), X, y, **options)
    classification = evaluate(baseline_arms(["knn"]), X, labels, **options)
    columns = ["repeat", "fold", "seed", "n_train", "n_test"]
    assert regression.scores[columns].equals(classification.scores[columns])
    samples = [result.predictions["sample"].tolist() for result in (regression, classification)]
    assert samples[0] == samples[1]
    assert "held_out" in regression.predictions and "held_out" not in classification.predictions
