"""``build_foundation(path)``: a Foundation from an on-disk .h5ad, read chunk by chunk."""

from __future__ import annotations

import importlib
import re

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from gtl_support import MICRO_PRESET, design, fewshot

from gtlomics.classifier import GTLClassifier
from gtlomics.cli import main
from gtlomics.corpus import BatchStatistics, CorpusSizes, H5adCorpus
from gtlomics.expression import GeneVocab, PreprocessingConfig, ReadSettings, prepare_expression
from gtlomics.foundation import Foundation, build_foundation

build_module = importlib.import_module("gtlomics.foundation.build")

N_ROWS, CHUNK, SUBSAMPLE, VOCAB_SAMPLE = 240, 64, 120, 100
SIZES = {"chunk_size": CHUNK, "n_subsample": SUBSAMPLE, "vocab_sample": VOCAB_SAMPLE}


def _build(corpus, **options) -> Foundation:
    """``build_foundation`` with the micro preset and small sizes; size options override them."""
    sizes = {key: options.pop(key) for key in list(options) if key in SIZES}
    options.setdefault("preset", MICRO_PRESET)
    return build_foundation(
        corpus, device="cpu", sizes=CorpusSizes(**{**SIZES, **sizes}), **options
    )


def _corpus(n_rows: int = N_ROWS) -> ad.AnnData:
    """Synthetic counts of the shared design (6 clusters, 64 genes), dense float32."""
    return design().sample(n_rows, random_state=1)


def _write(adata: ad.AnnData, folder, name: str = "corpus.h5ad"):
    path = folder / name
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    return _write(_corpus(), tmp_path_factory.mktemp("streaming_build"))


@pytest.fixture(scope="module")
def streamed(corpus_file) -> Foundation:
    return _build(corpus_file, random_state=0)


def _same_foundation(a: Foundation, b: Foundation) -> bool:
    states = [(a.encoder_state, b.encoder_state), (a.head_init, b.head_init)]
    states.append((a.guides.raw, b.guides.raw))
    return a.vocab == b.vocab and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in states
    )


# ------------------------------------------------------------------------- (a) a usable foundation


def test_streamed_foundation_saves_loads_and_fine_tunes(streamed, tmp_path):
    loaded = Foundation.load(streamed.save(tmp_path / "streamed"))
    assert _same_foundation(streamed, loaded)
    assert loaded.provenance.n_samples == N_ROWS and loaded.provenance.synthetic
    assert "corpus.h5ad" in loaded.provenance.corpus and str(N_ROWS) in loaded.provenance.corpus
    assert loaded.provenance.build_config["streaming"]["chunk_size"] == CHUNK
    assert loaded.preprocessing.input_scale == "counts"
    assert loaded.guides is not None and loaded.provenance.n_scouts == MICRO_PRESET.n_scouts
    train, test = fewshot(12), fewshot(8, random_state=3)
    clf = GTLClassifier(foundation=loaded, epochs=2, batch_size=8, random_state=0).fit(train)
    predicted = clf.predict(test)
    assert predicted.shape == (8,) and set(predicted) <= set(train.obs["condition"])
    assert clf.predict_proba(test).shape == (8, 2)


# ------------------------------------------------------------------------- (b) reproducible


def test_same_random_state_gives_the_same_foundation_and_leaves_global_rngs(streamed, corpus_file):
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.random.get_rng_state()
    again = _build(corpus_file, random_state=0)
    assert _same_foundation(streamed, again)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    other = _build(corpus_file, random_state=1)
    assert not _same_foundation(streamed, other)


def test_csr_layer_and_gene_column_files_give_the_same_foundation(streamed, tmp_path):
    """Where the values and ids are stored does not change the foundation."""
    adata = _corpus()
    moved = ad.AnnData(
        X=np.log1p(adata.X),  # something else in X: the layer must be what is read
        layers={"counts": sp.csr_matrix(adata.X)},
        obs=adata.obs,
        var=pd.DataFrame(
            {"gene_id": adata.var_names.to_numpy()}, index=[f"row{i}" for i in range(adata.n_vars)]
        ),
    )
    moved.uns["synthetic"] = {"note": "synthetic"}
    path = _write(moved, tmp_path)
    reading = ReadSettings(layer="counts", gene_column="gene_id")
    rebuilt = _build(path, reading=reading, random_state=0)
    assert _same_foundation(streamed, rebuilt)
    assert rebuilt.preprocessing == PreprocessingConfig(input_scale="counts")


# ------------------------------------------------------------------------- (c) bounded reads


def test_the_file_is_only_ever_read_a_chunk_at_a_time(corpus_file, monkeypatch):
    reads = []  # (rows read, whether it was the sampling read of scattered rows)
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        out = original(self, key)
        if self.name == "/X":
            reads.append((out.shape[0], not isinstance(key, slice | tuple)))
        return out

    def no_whole_read(*args, **kwargs):
        raise AssertionError("the whole corpus was read with anndata.read_h5ad")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    monkeypatch.setattr(ad, "read_h5ad", no_whole_read)
    _build(corpus_file, random_state=0)
    assert N_ROWS > 3 * CHUNK
    assert max(rows for rows, _ in reads) <= CHUNK
    assert sum(rows for rows, sampled in reads if sampled) == VOCAB_SAMPLE
    # every pass streams all rows: cousin subsample, gene statistics, one per epoch
    passes = 2 + MICRO_PRESET.pretrain.epochs
    assert sum(rows for rows, sampled in reads if not sampled) == passes * N_ROWS


# ------------------------------------------------------------------------- (d) clear errors


def _bad_values(value: float, n_rows: int = 40) -> ad.AnnData:
    adata = _corpus(n_rows)
    adata.X[n_rows - 3, 5] = value
    return adata


def _write_not_anndata(path) -> None:
    with h5py.File(path, "w") as handle:
        handle["numbers"] = np.ones((3, 3))


def _write_csc(path) -> None:
    adata = _corpus(40)
    adata.X = sp.csc_matrix(adata.X)
    adata.write_h5ad(path)


def _write_log_values(path) -> None:
    adata = _corpus(40)
    adata.X = np.log1p(adata.X)
    adata.write_h5ad(path)


FILE_ERRORS = {
    "missing": (None, {}, FileNotFoundError, "does not exist"),
    "text": (lambda p: p.write_text("gene,a\ng1,3\n"), {}, ValueError, "not a readable .h5ad"),
    "not anndata": (_write_not_anndata, {}, ValueError, "not an AnnData .h5ad"),
    "csc": (_write_csc, {}, ValueError, "csc_matrix"),
    "few samples": (lambda p: _corpus(5).write_h5ad(p), {}, ValueError, "has 5 samples"),
    "nan": (lambda p: _bad_values(np.nan).write_h5ad(p), {}, ValueError, "NaN or infinite"),
    "negative": (lambda p: _bad_values(-1.0).write_h5ad(p), {}, ValueError, "negative"),
    "nan outside the vocabulary sample": (  # found by the streaming pass, not the sample
        lambda p: _bad_values(np.nan, N_ROWS).write_h5ad(p),
        {"vocab_sample": 8},
        ValueError,
        "NaN or infinite",
    ),
    "layer": (
        lambda p: _corpus(40).write_h5ad(p),
        {"reading": ReadSettings(layer="raw")},
        ValueError,
        "layer='raw' is not in",
    ),
    "gene column": (
        lambda p: _corpus(40).write_h5ad(p),
        {"reading": ReadSettings(gene_column="symbol")},
        ValueError,
        "gene_column='symbol' is not a var column",
    ),
    "scale": (
        _write_log_values,
        {"preprocessing": PreprocessingConfig(input_scale="counts")},
        ValueError,
        "look already log-transformed",
    ),
}


@pytest.mark.parametrize("case", sorted(FILE_ERRORS))
def test_bad_files_fail_before_training_with_a_message_naming_the_file(case, tmp_path, monkeypatch):
    write, options, error, message = FILE_ERRORS[case]
    path = tmp_path / "bad.h5ad"
    if write is not None:
        write(path)

    def no_training(*args, **kwargs):
        raise AssertionError("pre-training started on a bad corpus")

    monkeypatch.setattr(build_module, "pretrain", no_training)
    with pytest.raises(error, match=re.escape(message)) as raised:
        _build(path, **options)
    assert str(path) in str(raised.value)
    if case.startswith(("nan", "negative")):
        assert "sample '" in str(raised.value)  # which sample, from the chunked reader


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("chunk_size", 0, "chunk_size must be an integer >= 1"),
        ("n_subsample", 3, "n_subsample must be an integer >= 8"),
        ("vocab_sample", 2.5, "vocab_sample must be an integer >= 8"),
        ("n_scouts", 0, "n_scouts must be an integer >= 1"),
    ],
)
def test_bad_sizes_are_refused(corpus_file, option, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _build(corpus_file, **{option: value})


def test_study_statistics_streamed_equal_the_in_memory_ones(corpus_file):
    adata = _corpus()
    studies = np.where(np.arange(N_ROWS) % 3 == 0, "a", "b")
    vocab = GeneVocab(tuple(adata.var_names[:32]))
    values = prepare_expression(adata, vocab).values
    streamed = BatchStatistics.from_chunks(H5adCorpus(corpus_file, vocab, chunk_size=50), studies)
    exact = BatchStatistics.from_values(values, studies)
    np.testing.assert_array_equal(streamed.labels, exact.labels)
    np.testing.assert_allclose(streamed.mean, exact.mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(streamed.scale, exact.scale, rtol=1e-5, atol=1e-9)


def test_a_streamed_build_standardises_each_study_named_by_batch_key(tmp_path):
    adata = _corpus()
    adata.obs["study"] = np.where(np.arange(N_ROWS) < 100, "first", "second")
    adata.X[:100] *= 4.0  # a study effect the per-study standardisation removes
    path = _write(adata, tmp_path)
    foundation = _build(path, random_state=0, batch_key="study")
    assert foundation.provenance.build_config["batch_key"] == "study"
    assert not foundation.provenance.build_config["pretrain"]["standardize_inputs"]
    with pytest.raises(ValueError, match=r"batch_key='tissue_site' is not an obs column of .*bad"):
        _build(_write(adata, tmp_path, "bad.h5ad"), batch_key="tissue_site")


# ------------------------------------------------------------------------- (e) command line


def test_cli_stream_writes_a_loadable_foundation(corpus_file, tmp_path, capsys):
    out = tmp_path / "foundation"
    command = ["foundation", "build", "--input", str(corpus_file), "--out", str(out), "--stream"]
    sizes = ["--chunk-size", str(CHUNK), "--n-subsample", str(SUBSAMPLE)]
    rc = main([*command, *sizes, "--preset", "tiny", "--n-scouts", "2", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    assert "streamed chunk by chunk" in capsys.readouterr().out
    foundation = Foundation.load(out)
    streaming = foundation.provenance.build_config["streaming"]
    assert (streaming["chunk_size"], streaming["n_subsample"]) == (CHUNK, SUBSAMPLE)
    assert foundation.provenance.n_samples == N_ROWS and foundation.provenance.n_scouts == 2
    assert foundation.encoder_config.d_model == 16  # the tiny preset


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--chunk-size", "64"], "--chunk-size: only for --stream builds"),
    ],
)
def test_cli_refuses_options_that_would_be_ignored(corpus_file, tmp_path, capsys, extra, message):
    command = ["foundation", "build", "--input", str(corpus_file), "--out", str(tmp_path / "f")]
    assert main([*command, *extra]) == 1
    assert message in capsys.readouterr().err
