"""Bad input to build_foundation / Foundation.load beyond ``test_foundation_errors.py``.

Build: problems visible in the corpus or the arguments must stop the build *before*
pre-training (hours on a real corpus), with a message that names the problem and the fix.
Load: a directory whose checksums match but whose contents do not fit this gtlomics (a foundation
written by an incompatible version, or by a faulty writer) must raise
:class:`FoundationIntegrityError`, never crash deep inside torch or load silently.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

from gtlomics.expression import PreprocessingConfig
from gtlomics.foundation import (
    Foundation,
    FoundationIntegrityError,
    FoundationVersionError,
    build_foundation,
)


class _WorkStarted(Exception):
    """Raised by the pre-training stand-in: the build got past its checks."""


@pytest.fixture()
def no_training(monkeypatch):
    """Pre-training raises :class:`_WorkStarted`, so a test sees whether checks came first."""

    def started(*args, **kwargs):
        raise _WorkStarted("pre-training started before the input was checked")

    monkeypatch.setattr(importlib.import_module("gtlomics.foundation.build"), "pretrain", started)


@pytest.fixture()
def corpus(gtl) -> ad.AnnData:
    return gtl.corpus()[:40].copy()


def _with_matrix(adata: ad.AnnData, matrix) -> ad.AnnData:
    return ad.AnnData(matrix, obs=adata.obs.copy(), var=adata.var.copy())


# ------------------------------------------------------------------------------------ build


@pytest.mark.parametrize(("value", "problem"), [(np.nan, "NaN or infinite"), (-1.0, "negative")])
def test_sparse_corpus_with_bad_values_names_sample_and_gene(corpus, no_training, value, problem):
    matrix = sp.csr_matrix(np.asarray(corpus.X, dtype=np.float64))
    matrix.data[5] = value  # the 6th stored entry of the first sample
    gene = corpus.var_names[matrix.indices[5]]
    with pytest.raises(
        ValueError, match=f"1 {problem} .*sample '{corpus.obs_names[0]}', gene '{gene}'"
    ):
        build_foundation(_with_matrix(corpus, matrix), preset="tiny")


def test_log_values_where_counts_are_declared(corpus, no_training):
    counts = np.asarray(corpus.X, dtype=np.float64)
    logged = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    with pytest.raises(ValueError, match="input_scale='counts' but the values look already log"):
        build_foundation(
            _with_matrix(corpus, logged),
            preset="tiny",
            preprocessing=PreprocessingConfig(input_scale="counts"),
        )


def test_corpus_without_genes(no_training):
    with pytest.raises(ValueError, match=r"empty \(shape \(40, 0\)\)"):
        build_foundation(ad.AnnData(np.zeros((40, 0), dtype=np.float32)), preset="tiny")


def test_bad_sizes_are_refused_before_training(corpus, tmp_path, no_training):
    with pytest.raises(ValueError, match="n_genes must be >= 1, got 0"):
        build_foundation(corpus, preset="tiny", n_genes=0)
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=4"):
        build_foundation(corpus, preset="tiny", encoder={"d_model": 10, "n_heads": 4})
    with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
        build_foundation(corpus, preset="tiny", checkpoint_dir=tmp_path, checkpoint_every=0)


def test_zero_scouts_is_refused_before_training(corpus, no_training):
    with pytest.raises(ValueError, match=r"n_scouts must be an integer >= 1.*got 0"):
        build_foundation(corpus, preset="tiny", n_scouts=0)
    with pytest.raises(ValueError, match=r"n_scouts must be an integer >= 1.*got 2\.5"):
        build_foundation(corpus, preset="tiny", n_scouts=2.5)


def test_identical_samples_are_refused_before_training(corpus, no_training):
    same = np.tile(np.asarray(corpus.X[:1], dtype=np.float32), (40, 1))
    with pytest.raises(ValueError, match="All samples are identical"):
        build_foundation(_with_matrix(corpus, same), preset="tiny")


def test_checkpoint_dir_that_is_a_file(corpus, tmp_path, no_training):
    clash = tmp_path / "checkpoints"
    clash.write_text("not a folder")
    with pytest.raises(ValueError, match=r"checkpoint_dir .* is a file"):
        build_foundation(corpus, preset="tiny", checkpoint_dir=clash)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_refused_before_training(corpus, no_training):
    with pytest.raises(ValueError, match="CUDA is not available; use device='cpu'"):
        build_foundation(corpus, preset="tiny", device="cuda")


# ------------------------------------------------------------------------------------- load


def _edited_copy(source: str, target: Path, edit: Callable[[Path], None]) -> Path:
    """Copy a saved foundation, edit it, and re-record the checksums (they match the edit)."""
    folder = shutil.copytree(source, target)
    edit(folder)
    record = json.loads((folder / "checksums.json").read_text())
    for name in record["files"]:
        record["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "checksums.json").write_text(json.dumps(record))
    return folder


def _edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))

    return edit


def test_a_file_instead_of_a_folder(foundation_dir):
    with pytest.raises(FileNotFoundError, match=r"No saved gtlomics directory at .*config.json"):
        Foundation.load(Path(foundation_dir) / "config.json")


def test_gene_list_that_disagrees_with_the_weights(foundation_dir, tmp_path):
    def drop_a_gene(folder: Path) -> None:
        genes = (folder / "genes.txt").read_text().split()
        (folder / "genes.txt").write_text("\n".join(genes[:-1]) + "\n")

    edited = _edited_copy(foundation_dir, tmp_path / "genes", drop_a_gene)
    with pytest.raises(FoundationIntegrityError, match=r"genes.txt lists 63 genes .* built for 64"):
        Foundation.load(edited)


def test_truncated_guides_are_detected(foundation_dir, tmp_path):
    folder = shutil.copytree(foundation_dir, tmp_path / "truncated")
    data = (folder / "guides.safetensors").read_bytes()
    (folder / "guides.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        FoundationIntegrityError, match=r"guides.safetensors: the file was truncated"
    ):
        Foundation.load(folder)


def test_config_without_an_encoder_section(foundation_dir, tmp_path):
    edited = _edited_copy(
        foundation_dir, tmp_path / "config", _edit_config(lambda c: c.pop("encoder"))
    )
    with pytest.raises(FoundationIntegrityError, match=r"config.json"):
        Foundation.load(edited)


def test_encoder_config_that_does_not_fit_the_weights(foundation_dir, tmp_path):
    def wider(config: dict) -> None:
        config["encoder"]["d_model"] *= 2

    edited = _edited_copy(foundation_dir, tmp_path / "wider", _edit_config(wider))
    with pytest.raises(FoundationIntegrityError, match="do not fit"):
        Foundation.load(edited)


def test_guides_that_do_not_fit_the_model(foundation_dir, tmp_path):
    def reshape_a_guide(folder: Path) -> None:
        state = load_file(folder / "guides.safetensors")
        state["encoder.norm.weight"] = torch.zeros(3)
        save_file(state, folder / "guides.safetensors")

    edited = _edited_copy(foundation_dir, tmp_path / "guides", reshape_a_guide)
    with pytest.raises(FoundationIntegrityError, match=r"encoder.norm.weight"):
        Foundation.load(edited)


def _edit_guides(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        state = load_file(folder / "guides.safetensors")
        change(state)
        save_file(state, folder / "guides.safetensors")

    return edit


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s.update({"encoder.extra.weight": torch.ones(2)}), r"'encoder.extra.weight'"),
        (lambda s: s.pop("encoder.norm.weight"), r"missing for \['encoder.norm.weight'\]"),
        (lambda s: s["encoder.norm.weight"].fill_(float("nan")), r"'encoder.norm.weight' holds"),
        (lambda s: s["encoder.norm.weight"].fill_(-1.0), r"'encoder.norm.weight' holds"),
        (lambda s: s.pop("__n_scouts__"), r"guides.safetensors is not a valid guide file"),
    ],
    ids=["extra-name", "missing-name", "nan", "negative", "no-n_scouts"],
)
def test_guides_with_wrong_names_or_values(foundation_dir, tmp_path, change, match):
    assert "__n_scouts__" in load_file(Path(foundation_dir) / "guides.safetensors")
    edited = _edited_copy(foundation_dir, tmp_path / "guides", _edit_guides(change))
    with pytest.raises(FoundationIntegrityError, match=match):
        Foundation.load(edited)


def test_unreadable_weights_with_a_matching_checksum(foundation_dir, tmp_path):
    def garble(folder: Path) -> None:
        (folder / "encoder.safetensors").write_bytes(b"\x00" * 64)

    edited = _edited_copy(foundation_dir, tmp_path / "garbled", garble)
    with pytest.raises(FoundationIntegrityError, match=r"encoder.safetensors"):
        Foundation.load(edited)


def test_format_version_that_is_not_a_number(foundation_dir, tmp_path):
    folder = shutil.copytree(foundation_dir, tmp_path / "version")
    record = json.loads((folder / "checksums.json").read_text())
    record["format_version"] = "1"
    (folder / "checksums.json").write_text(json.dumps(record))
    with pytest.raises(FoundationVersionError) as error:
        Foundation.load(folder)
    assert "Upgrade" not in str(error.value)
