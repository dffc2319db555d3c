"""The example scripts' code paths on local real data (../shared/data), tiny settings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_example(name: str):
    path = REPO_ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"gtlomics_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def osdr_transfer():
    return _load_example("osdr_transfer")


@pytest.fixture(scope="module")
def benchmark():
    return _load_example("multi_study_benchmark")


def test_osdr_transfer_runs_on_a_stand_in_pair(osdr_transfer, shared_data, tmp_path):
    """OSD-758 split in two halves plays OSD-105 → OSD-104 through the mirror code path."""
    mirror, cache, out = str(shared_data / "osdr"), str(tmp_path / "cache"), str(tmp_path / "r")
    args = ["--train", "OSD-758", "--test", "OSD-758", "--base-url", mirror, "--cache-dir", cache,
            "--arms", "logreg,knn,gtl", "--preset", "tiny", "--epochs", "2", "--repeats", "1",
            "--out", out, "-q"]  # fmt: skip
    assert osdr_transfer.main(args) == 0
    table = pd.read_csv(tmp_path / "r" / "results.csv")
    assert set(table["arm"]) == {"logreg", "knn", "gtl"}
    assert set(table["held_out"]) == {"OSD-758-B"}
    assert set(table["n_train"]) == {17} and set(table["n_test"]) == {18}
    predictions = pd.read_csv(tmp_path / "r" / "predictions.csv")
    assert predictions["sample"].str.endswith("/OSD-758-B").all()


def test_stand_in_halves_are_disjoint_and_stratified(osdr_transfer, shared_data, tmp_path):
    from gtlomics.datasets import load_osdr

    adata = load_osdr("OSD-758", base_url=str(shared_data / "osdr"), cache_dir=tmp_path)
    first, second = osdr_transfer.stand_in_halves(adata, seed=0)
    assert set(first.obs_names).isdisjoint(second.obs_names)
    assert first.n_obs + second.n_obs == 35
    flights = [(half.obs["spaceflight"] == "Space Flight").sum() for half in (first, second)]
    assert sorted(flights) == [11, 12]


def test_benchmark_corpus_excludes_the_evaluation_dataset(benchmark, shared_data, tmp_path):
    sets = benchmark.load_datasets(shared_data, tmp_path)
    assert {name: a.n_obs for name, a in sets.items()} == {
        "OSD-758": 35,
        "curatedAdipoRNA": 98,
        "Benayoun-aging": 41,
        "Weger-liver": 12,
        "neutrophils": 16,
    }
    corpus, names = benchmark.corpus_for(sets, "OSD-758")
    assert corpus.n_obs == 151 and corpus.n_vars > 10000
    assert not np.isin(sets["OSD-758"].obs_names, corpus.obs_names.str.split("/").str[0]).any()
    assert set(corpus.obs["dataset"]) == {"curatedAdipoRNA", "Benayoun-aging", "Weger-liver"}
    studies = corpus.obs["study"].astype(str)
    assert studies.str.startswith("curatedAdipoRNA:").sum() == 98
    assert studies[studies.str.startswith("curatedAdipoRNA:")].nunique() == 16
    corpus, names = benchmark.corpus_for(sets, "neutrophils")
    assert "neutrophils" not in names and corpus.n_obs == 35 + 98 + 41 + 12
    with pytest.raises(KeyError, match="No dataset"):
        benchmark.corpus_for(sets, "OSD-999")


@pytest.mark.slow
def test_logreg_reproduces_the_reference_leave_one_out_numbers(benchmark, shared_data, tmp_path):
    """Shared README: LOO, 2,000 genes, C by inner CV → AUROC 0.79 (plain C=1: 0.86)."""
    from gtlomics.evaluation import pooled_scores
    from gtlomics.evaluation.experiment import run_experiment

    sets = benchmark.load_datasets(shared_data, tmp_path)
    outcome = run_experiment(
        benchmark.reference_spec(0), sets["OSD-758"], tmp_path / "r", progress=False
    )
    pooled = pooled_scores(outcome.result).set_index("arm")
    assert 0.74 <= pooled.loc["logreg", "auroc"] <= 0.90
