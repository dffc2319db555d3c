"""``gtlomics demo --tiny`` end to end, and the GTL arms on the foundation it saves."""

from __future__ import annotations

import pandas as pd
import pytest

from gtlomics.cli import main
from gtlomics.evaluation import GTL_ARM_NAMES


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    assert main(["-q", "demo", "--tiny", "--out", str(out)]) == 0
    return out


def test_demo_report_compares_every_arm_on_synthetic_data(demo_dir):
    table = pd.read_csv(demo_dir / "results.csv")
    expected = ["logreg", "linear_svm", "random_forest", "knn", *GTL_ARM_NAMES]
    assert list(dict.fromkeys(table["arm"])) == expected
    assert table.groupby("arm").size().nunique() == 1  # same folds for every arm
    summary = (demo_dir / "summary.md").read_text()
    assert "SYNTHETIC" in summary and "examples/osdr_transfer.py" in summary
    assert "**gtl vs " in summary
    plots = {path.name for path in (demo_dir / "plots").iterdir()}
    assert {
        "learning_curves.png",
        "guide_values.png",
        "pooled_auroc.png",
        "cousin_tasks.png",
    } <= plots


def test_demo_foundation_loads_and_drives_the_gtl_arms(demo_dir, tmp_path, synthetic_design):
    from gtlomics.foundation import Foundation

    foundation = Foundation.load(demo_dir / "foundation")
    assert foundation.provenance.synthetic and foundation.guides is not None
    data = tmp_path / "study.h5ad"
    synthetic_design.sample(12, clusters=[0], random_state=4).write_h5ad(data)
    args = ["-q", "evaluate", "--data", str(data), "--label-key", "condition", "--out",
            str(tmp_path / "r"), "--foundation", str(demo_dir / "foundation")]  # fmt: skip
    rc = main(
        [*args, "--arms", "scratch,gtl", "--n-splits", "3", "--repeats", "1", "--epochs", "2"]
    )
    assert rc == 0
    table = pd.read_csv(tmp_path / "r" / "results.csv")
    assert set(table["arm"]) == {"scratch", "gtl"}
    assert table[["accuracy", "log_loss"]].notna().all().all()


@pytest.mark.slow
def test_demo_is_repeatable(demo_dir, tmp_path):
    assert main(["-q", "demo", "--tiny", "--out", str(tmp_path)]) == 0
    first = pd.read_csv(demo_dir / "results.csv").drop(columns="fit_seconds")
    again = pd.read_csv(tmp_path / "results.csv").drop(columns="fit_seconds")
    pd.testing.assert_frame_equal(first, again)


def test_foundation_build_command_saves_a_loadable_foundation(tmp_path, synthetic_corpus):
    from gtlomics.foundation import Foundation

    corpus = tmp_path / "corpus.h5ad"
    synthetic_corpus[:60].copy().write_h5ad(corpus)
    out = tmp_path / "foundation"
    args = ["-q", "foundation", "build", "--input", str(corpus), "--out", str(out)]
    sizes = ["--preset", "tiny", "--n-genes", "48", "--n-scouts", "3"]
    assert main([*args, *sizes, "--batch-key", "cluster", "--value-encoding", "rank"]) == 0
    foundation = Foundation.load(out)
    assert foundation.n_genes == 48 and foundation.provenance.n_scouts == 3
    assert foundation.provenance.corpus.startswith("corpus.h5ad")
    assert foundation.provenance.build_config["batch_key"] == "cluster"
    assert foundation.preprocessing.value_encoding == "rank"
