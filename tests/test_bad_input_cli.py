"""Bad input on the command line: exit status 1 and one ``gtlomics: error:`` line, no traceback.

Complements ``test_cli.py`` (unknown label key, missing foundation). Where the command can fail
for a reason known before any work starts (output folder taken, bad option), it must fail before
the hours of pre-training, not after.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from gtlomics.cli import main

BUILD = ["-q", "foundation", "build", "--preset", "tiny", "--n-genes", "24", "--n-scouts", "2"]


class _WorkStarted(Exception):
    """Raised by the stand-ins below: the command got past its checks into real work."""


@pytest.fixture(autouse=True)
def no_default_foundation(tmp_path, monkeypatch):
    """Keep the user's real default foundation out of the tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GTLOMICS_FOUNDATION", raising=False)


@pytest.fixture()
def no_training(monkeypatch):
    """Pre-training raises :class:`_WorkStarted`: a test then sees whether checks came first."""

    def started(*args, **kwargs):
        raise _WorkStarted("pre-training started before the input was checked")

    monkeypatch.setattr(importlib.import_module("gtlomics.foundation.build"), "pretrain", started)


@pytest.fixture(scope="module")
def corpus_h5ad(tmp_path_factory, gtl):
    path = tmp_path_factory.mktemp("cli_bad") / "corpus.h5ad"
    gtl.corpus()[:40].write_h5ad(path)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gtlomics: error: "), err
    return err[0]


def test_missing_input_file_names_it(tmp_path, capsys):
    missing = tmp_path / "nope.h5ad"
    assert main([*BUILD, "--input", str(missing), "--out", str(tmp_path / "f")]) == 1
    assert str(missing) in _one_error_line(capsys)
    assert not (tmp_path / "f").exists()


def test_nan_in_the_corpus_names_sample_and_gene_and_writes_nothing(gtl, tmp_path, capsys):
    adata = gtl.corpus()[:40].copy()
    X = np.asarray(adata.X, dtype=np.float64)
    X[3, 7] = np.nan
    adata.X = X
    adata.write_h5ad(tmp_path / "nan.h5ad")
    out = tmp_path / "f"
    assert main([*BUILD, "--input", str(tmp_path / "nan.h5ad"), "--out", str(out)]) == 1
    line = _one_error_line(capsys)
    assert f"sample {adata.obs_names[3]!r}, gene {adata.var_names[7]!r}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.h5ad"]  # no partial output


def test_a_file_that_is_not_h5ad(tmp_path, capsys):
    garbage = tmp_path / "corpus.h5ad"
    garbage.write_bytes(b"sample,gene\n1,2\n")
    assert main([*BUILD, "--input", str(garbage), "--out", str(tmp_path / "f")]) == 1
    assert str(garbage) in _one_error_line(capsys)


def test_existing_output_folder_fails_before_building(corpus_h5ad, tmp_path, capsys, no_training):
    taken = tmp_path / "taken"
    taken.mkdir()
    assert main([*BUILD, "--input", str(corpus_h5ad), "--out", str(taken)]) == 1
    line = _one_error_line(capsys)
    assert "already exists" in line and "--overwrite" in line


def test_zero_scouts_is_refused_before_training(corpus_h5ad, tmp_path, capsys, no_training):
    args = [*BUILD, "--input", str(corpus_h5ad), "--out", str(tmp_path / "f"), "--n-scouts", "0"]
    assert main(args) == 1
    assert "scouts" in _one_error_line(capsys)


def test_checkpoint_dir_that_is_a_file(corpus_h5ad, tmp_path, capsys, no_training):
    clash = tmp_path / "checkpoints"
    clash.write_text("not a folder")
    args = [*BUILD, "--input", str(corpus_h5ad), "--out", str(tmp_path / "f")]
    assert main([*args, "--checkpoint-dir", str(clash)]) == 1
    line = _one_error_line(capsys)
    assert str(clash) in line and "checkpoint" in line


def test_fetch_from_a_mirror_without_the_study(tmp_path, capsys):
    args = ["-q", "datasets", "fetch-osdr", "OSD-105", "--out", str(tmp_path / "x.h5ad")]
    assert main([*args, "--base-url", str(tmp_path)]) == 1
    assert "OSD-105" in _one_error_line(capsys)
    assert not (tmp_path / "x.h5ad").exists()


def test_list_osdr_with_a_file_that_is_not_a_catalogue(tmp_path, capsys):
    catalog = tmp_path / "catalog.tsv"
    catalog.write_text("a\tb\n1\t2\n")
    assert main(["datasets", "list-osdr", "--catalog", str(catalog)]) == 1
    line = _one_error_line(capsys)
    assert "catalogue lacks columns" in line and "selected_sample_metadata" in line


def test_evaluate_with_a_folder_that_is_not_a_foundation(corpus_h5ad, tmp_path, capsys):
    folder = tmp_path / "not_a_foundation"
    folder.mkdir()
    args = ["-q", "evaluate", "--data", str(corpus_h5ad), "--label-key", "condition"]
    assert main([*args, "--arms", "gtl", "--foundation", str(folder), "--out", str(tmp_path)]) == 1
    assert "has no checksums.json" in _one_error_line(capsys)
