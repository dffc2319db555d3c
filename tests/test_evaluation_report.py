"""The report directory: tables, markdown summary, plots (learning curves, guide values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from gtlomics.evaluation import Arm, BaselineConfig, StratifiedKFoldCV, baseline_arms, evaluate
from gtlomics.evaluation.features import LogCPM
from gtlomics.evaluation.history import history_frame
from gtlomics.evaluation.report import read_result, summary_markdown, write_report
from gtlomics.plotting.evaluation import LEARNING_CURVE_LABEL, plot_learning_curves
from gtlomics.plotting.guides import guide_values_by_layer, layer_of, plot_guide_distributions


class CurveClassifier(LogisticRegression):
    """A logistic regression that reports a made-up per-epoch history, like a neural arm."""

    def fit(self, X, y):
        super().fit(LogCPM().fit_transform(X), y)
        self.history_ = {"loss": [1.0, 0.5, 0.25], "lr": [1e-3] * 3}
        return self

    def predict_proba(self, X):
        return super().predict_proba(LogCPM().fit_transform(X))

    def predict(self, X):
        return super().predict(LogCPM().fit_transform(X))


@pytest.fixture(scope="module")
def result(synthetic_design):
    adata = synthetic_design.sample(18, clusters=[1], random_state=3)
    arms = [
        *baseline_arms(["logreg", "linear_svm"], BaselineConfig(n_genes=50)),
        Arm("gtl", lambda seed: CurveClassifier(max_iter=2000), "neural", "stand-in", 1),
    ]
    y = adata.obs["condition"].to_numpy()
    return evaluate(arms, adata, y, protocol=StratifiedKFoldCV(3), n_repeats=2, progress=False)


def test_report_writes_tables_summary_and_plots(result, tmp_path):
    guides = {"encoder.blocks.0.attn.weight": np.linspace(0, 1, 50), "head.linear.bias": [0.5]}
    report = write_report(result, tmp_path / "report", data_note="SYNTHETIC data.", guides=guides)
    table = pd.read_csv(report.results_csv)
    assert len(table) == 3 * 3 * 2
    assert {
        "arm",
        "repeat",
        "fold",
        "auroc",
        "balanced_accuracy",
        "log_loss",
        "fit_seconds",
    } <= set(table.columns)
    text = report.summary_md.read_text()
    assert "SYNTHETIC data." in text and "mean ± sd" in text
    assert "**gtl vs " in text and "wins/ties/losses" in text
    stems = {path.stem for path in report.plots}
    assert {"scores_auroc", "pooled_auroc", "learning_curves", "guide_values"} <= stems
    assert all(path.stat().st_size > 1000 for path in report.plots)
    assert "plots/learning_curves.png" in text


def test_learning_curves_are_labelled_diagnostic(result):
    assert len(result.histories) == 6 and {h.arm for h in result.histories} == {"gtl"}
    figure = plot_learning_curves(result.histories)
    assert LEARNING_CURVE_LABEL in figure.axes[0].get_title()
    assert len(figure.axes[0].lines) == 6 + 1  # one per fit, one legend handle


def test_history_frame_reads_common_shapes():
    assert history_frame(None) is None
    frame = history_frame({"loss": [3.0, 2.0], "name": "x"})
    assert frame["epoch"].tolist() == [1, 2] and frame["loss"].tolist() == [3.0, 2.0]
    assert history_frame([{"loss": 1.0}, {"loss": 0.5}])["loss"].tolist() == [1.0, 0.5]


def test_guide_values_grouped_per_layer():
    assert layer_of("encoder.blocks.3.ff.linear1.weight") == "encoder.blocks.3"
    assert layer_of("encoder.gene_embedding.weight") == "encoder.gene_embedding"
    guides = {
        "encoder.blocks.0.a.weight": np.zeros((4, 4)),
        "encoder.blocks.0.a.bias": np.ones(4),
        "head.linear.weight": np.full(3, 0.5),
    }
    by_layer = guide_values_by_layer(guides)
    assert by_layer["encoder.blocks.0"].size == 20 and by_layer["head.linear"].tolist() == [0.5] * 3
    figure = plot_guide_distributions(guides)
    labels = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert labels == ["encoder.blocks.0", "head.linear"]
    with pytest.raises(TypeError, match="GuideValues"):
        guide_values_by_layer({})


def test_a_report_reads_back_into_the_same_summary(result, tmp_path):
    report = write_report(result, tmp_path / "r")
    again = read_result(tmp_path / "r")
    assert again.arms == result.arms and again.protocol == result.protocol
    assert len(again.histories) == len(result.histories)
    assert summary_markdown(again, title="t") == summary_markdown(result, title="t")
    assert report.summary_md.is_file()
