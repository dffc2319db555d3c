"""Pre-training streamed from an on-disk .h5ad, and cousin tasks on it, with bounded memory."""

from __future__ import annotations

import importlib
import tracemalloc

import numpy as np
import pytest
import torch

from gtlomics.corpus import (
    ArrayCorpus,
    H5adCorpus,
    SubsampledCousinTasks,
    assign_to_centroids,
    read_rows,
)
from gtlomics.expression import GeneVocab, prepare_expression
from gtlomics.nn import EncoderConfig, ExpressionEncoder
from gtlomics.scouts import draw_cousin_tasks
from gtlomics.train import PretrainConfig, pretrain

pretrain_data = importlib.import_module("gtlomics.train.pretrain_data")

CONFIG = PretrainConfig(epochs=2, batch_size=16, holdout_fraction=0.1)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, synthetic_corpus):
    """The shared synthetic corpus (300 samples, counts, CSR) written as an .h5ad file."""
    import scipy.sparse as sp

    adata = synthetic_corpus.copy()
    adata.X = sp.csr_matrix(np.asarray(adata.X))
    path = tmp_path_factory.mktemp("h5ad") / "corpus.h5ad"
    adata.write_h5ad(path)
    return path, adata


@pytest.fixture(scope="module")
def vocab(corpus_file) -> GeneVocab:
    _, adata = corpus_file
    return GeneVocab(tuple(adata.var_names[:48]))


def _encoder(vocab: GeneVocab) -> ExpressionEncoder:
    return ExpressionEncoder(
        EncoderConfig(n_genes=len(vocab.genes), d_model=16, n_heads=2, n_layers=1), seed=0
    )


def test_h5ad_corpus_chunks_equal_one_in_memory_preparation(corpus_file, vocab):
    path, adata = corpus_file
    corpus = H5adCorpus(path, vocab, chunk_size=64)
    whole = prepare_expression(adata, vocab)
    chunks = list(corpus.chunks())
    assert corpus.n_samples == 300 and corpus.n_genes == 48
    assert [c.start for c in chunks] == [0, 64, 128, 192, 256]
    np.testing.assert_allclose(np.concatenate([c.values for c in chunks]), whole.values, rtol=1e-6)


def test_gene_statistics_match_the_training_rows(corpus_file, vocab):
    values = prepare_expression(corpus_file[1], vocab).values
    holdout = np.array([3, 70, 299])
    stats = pretrain_data.gene_statistics(ArrayCorpus(values, chunk_size=50), holdout)
    train = np.delete(values, holdout, axis=0)
    np.testing.assert_allclose(stats.mean, train.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.std, np.maximum(train.std(0), 1e-3), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(stats.holdout_values, values[holdout])


def test_streaming_from_disk_equals_streaming_from_memory_and_learns(corpus_file, vocab):
    path, adata = corpus_file
    values = prepare_expression(adata, vocab).values
    on_disk, in_memory = _encoder(vocab), _encoder(vocab)
    disk = pretrain(on_disk, H5adCorpus(path, vocab, chunk_size=64), config=CONFIG, seed=5)
    memory = pretrain(in_memory, ArrayCorpus(values, chunk_size=64), config=CONFIG, seed=5)
    for name, weight in in_memory.state_dict().items():
        torch.testing.assert_close(on_disk.state_dict()[name], weight, rtol=1e-4, atol=1e-6)
    assert disk.n_steps == CONFIG.epochs * sum(-(-n // 16) for n in (58, 58, 58, 58, 38))
    np.testing.assert_allclose(
        [e.holdout_loss for e in disk.history], [e.holdout_loss for e in memory.history], rtol=1e-4
    )
    assert disk.final.holdout_loss < disk.final.baseline_loss  # better than each gene's mean
    assert not torch.equal(on_disk.gene_embedding, _encoder(vocab).gene_embedding)


def _streaming_peak(tmp_path, n_samples: int, n_genes: int = 128) -> tuple[int, int]:
    """tracemalloc peak of one streaming statistics pass, and the dense matrix's bytes."""
    import anndata as ad

    counts = np.random.default_rng(0).poisson(5.0, size=(n_samples, n_genes)).astype(np.float32)
    path = tmp_path / f"corpus_{n_samples}.h5ad"
    ad.AnnData(counts).write_h5ad(path)
    corpus = H5adCorpus(path, GeneVocab(tuple(str(i) for i in range(n_genes))), chunk_size=100)
    tracemalloc.start()
    stats = pretrain_data.gene_statistics(corpus, np.arange(0, n_samples, 100))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stats.holdout_values.shape == (n_samples // 100, n_genes)
    return peak, counts.nbytes


def test_streaming_pass_memory_is_bounded_by_the_chunk(tmp_path):
    small_peak, small_bytes = _streaming_peak(tmp_path, 2000)
    big_peak, big_bytes = _streaming_peak(tmp_path, 8000)
    assert big_peak < big_bytes / 3, f"peak {big_peak} B vs {big_bytes} B for the whole matrix"
    # 4x the rows: the peak grows only by the sample ids (~65 B per row), not the matrix.
    assert big_peak - small_peak < 0.25 * (big_bytes - small_bytes)


def test_rows_and_centroid_assignment_match_in_memory(corpus_file, vocab):
    values = prepare_expression(corpus_file[1], vocab).values
    corpus = ArrayCorpus(values, chunk_size=37)
    rows = np.array([0, 36, 37, 100, 299])
    np.testing.assert_array_equal(read_rows(corpus, rows), values[rows])
    centroids = values[[5, 50, 150]]
    assigned = assign_to_centroids(corpus, centroids)
    # Brute force in float64. The chunked float32 ‖x‖² − 2x·c + ‖c‖² may round a near-tie the
    # other way: rows whose two nearest centroids are within 1e-4 of the squared norms involved
    # (float32 round-off over 200 genes is ~1e-5 of them) may differ; all others must agree.
    exact = values.astype(np.float64)
    distance = ((exact[:, None, :] - exact[[5, 50, 150]][None]) ** 2).sum(-1)
    nearest, second = np.sort(distance, axis=1)[:, :2].T
    scale = (exact**2).sum(1) + (exact[[5, 50, 150]] ** 2).sum(1).max()
    clear = second - nearest > 1e-4 * scale
    assert clear.mean() > 0.9  # the comparison covers nearly every row
    np.testing.assert_array_equal(assigned[clear], distance.argmin(1)[clear])
    with pytest.raises(ValueError, match="sorted and unique"):
        read_rows(corpus, np.array([5, 2]))


class _KMeansTasks:
    """A light cousin-task generator (KMeans only) standing in for the UMAP pipeline."""

    def fit(self, values):
        from sklearn.cluster import KMeans

        self.labels_ = KMeans(4, n_init=2, random_state=0).fit_predict(values)
        self.tasks_ = draw_cousin_tasks(self.labels_, n_tasks=3, seed=0)
        return self


def test_subsampled_cousin_tasks_index_the_subsample(corpus_file, vocab):
    values = prepare_expression(corpus_file[1], vocab).values
    corpus = ArrayCorpus(values, chunk_size=64)
    fitted = SubsampledCousinTasks(n_subsample=120, generator=_KMeansTasks(), seed=1).fit(corpus)
    assert len(fitted.rows_) == 120 and np.all(np.diff(fitted.rows_) > 0)
    np.testing.assert_array_equal(fitted.values_, values[fitted.rows_])
    assert all(t.indices.max() < 120 for t in fitted.tasks_)
    labels = fitted.assign(corpus)
    agree = np.mean(labels[fitted.rows_] == fitted.generator_.labels_)
    assert agree > 0.9  # nearest centroid reproduces the clustering it came from
