"""The ``gtlomics`` command line, run in-process on tiny settings."""

from __future__ import annotations

import pandas as pd
import pytest

from gtlomics.cli import build_parser, main


@pytest.fixture(scope="module")
def fewshot_h5ad(tmp_path_factory, synthetic_design):
    """18 synthetic samples of one cluster (treated vs control) written as .h5ad."""
    path = tmp_path_factory.mktemp("cli") / "fewshot.h5ad"
    adata = synthetic_design.sample(18, clusters=[2], random_state=11)
    adata.obs["study"] = ["s1", "s2", "s3"] * 6
    adata.write_h5ad(path)
    return path


@pytest.fixture(autouse=True)
def no_default_foundation(tmp_path, monkeypatch):
    """Keep the user's real default foundation out of the tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GTLOMICS_FOUNDATION", raising=False)


def _evaluate(data, out, *extra):
    base = ["evaluate", "--data", str(data), "--label-key", "condition", "--out", str(out)]
    return main([*base, "--arms", "logreg,knn", "--repeats", "1", *extra])


def test_evaluate_writes_a_report_and_prints_the_table(fewshot_h5ad, tmp_path, capsys):
    assert _evaluate(fewshot_h5ad, tmp_path / "report", "--n-splits", "3") == 0
    out = capsys.readouterr().out
    assert "| logreg | baseline |" in out and "Report:" in out
    table = pd.read_csv(tmp_path / "report" / "results.csv")
    assert sorted(set(table["arm"])) == ["knn", "logreg"] and len(table) == 6
    assert (tmp_path / "report" / "summary.md").is_file()


def test_quiet_prints_nothing(fewshot_h5ad, tmp_path, capsys):
    assert main(["-q", *_args(fewshot_h5ad, tmp_path), "--n-splits", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def _args(data, out):
    return ["evaluate", "--data", str(data), "--label-key", "condition", "--out", str(out),
            "--arms", "knn", "--repeats", "1"]  # fmt: skip


def test_leave_one_group_out_from_the_command_line(fewshot_h5ad, tmp_path):
    rc = _evaluate(fewshot_h5ad, tmp_path, "--protocol", "logo", "--group-key", "study")
    assert rc == 0
    table = pd.read_csv(tmp_path / "results.csv")
    assert sorted(set(table["held_out"])) == ["s1", "s2", "s3"]


def test_cross_dataset_with_a_second_file(fewshot_h5ad, tmp_path, synthetic_design):
    other = tmp_path / "other.h5ad"
    synthetic_design.sample(10, clusters=[2], random_state=12).write_h5ad(other)
    assert _evaluate(fewshot_h5ad, tmp_path / "r", "--test-data", str(other)) == 0
    table = pd.read_csv(tmp_path / "r" / "results.csv")
    assert set(table["n_train"]) == {18} and set(table["n_test"]) == {10}
    assert set(table["held_out"]) == {"other"}


def test_errors_are_one_clear_line(fewshot_h5ad, tmp_path, capsys):
    rc = main(["evaluate", "--data", str(fewshot_h5ad), "--label-key", "nope", "--out",
               str(tmp_path)])  # fmt: skip
    assert rc == 1 and "no column 'nope'" in capsys.readouterr().err
    rc = _evaluate(fewshot_h5ad, tmp_path, "--arms", "logreg,gtl")
    assert rc == 1 and "gtlomics foundation build" in capsys.readouterr().err


def test_every_documented_command_parses():
    parser = build_parser()
    assert parser.parse_args(["demo", "--tiny"]).tiny
    args = parser.parse_args(["foundation", "build", "--input", "c.h5ad", "--out", "f"])
    assert args.preset == "small"
    assert parser.parse_args(["datasets", "fetch-osdr", "OSD-105", "--out", "x.h5ad"]).accession
    assert parser.parse_args(["-q", "datasets", "list-osdr", "--catalog", "c.tsv"]).quiet
    assert main([]) == 2


def test_list_osdr_from_the_shared_catalogue(shared_data, capsys):
    catalog = shared_data / "osdr" / "catalog" / "selected_sample_metadata.tsv.gz"
    assert main(["datasets", "list-osdr", "--catalog", str(catalog), "--tissue", "soleus"]) == 0
    assert "OSD-104" in capsys.readouterr().out


def test_fetch_osdr_from_a_directory_mirror(shared_data, tmp_path):
    import anndata as ad

    out = tmp_path / "osd758.h5ad"
    mirror = str(shared_data / "osdr")
    args = ["-q", "datasets", "fetch-osdr", "OSD-758", "--base-url", mirror, "--out", str(out)]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    adata = ad.read_h5ad(out)
    assert adata.n_obs == 35
    assert (adata.obs["spaceflight"] == "Space Flight").sum() == 23
