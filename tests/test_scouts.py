"""ClusterScoutGenerator, cousin tasks, the AnnData helper and the cousin-task plot.

UMAP compiles with numba on first use (~15 s per process): one fitted generator is shared.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score
from sklearn.utils._param_validation import InvalidParameterError

from gtlomics.expression import GeneVocab, prepare_expression
from gtlomics.plotting import plot_cousin_tasks
from gtlomics.scouts import (
    ClusterScoutGenerator,
    CousinTask,
    ScoutCapWarning,
    add_cousin_tasks,
    draw_cousin_tasks,
    tasks_from_uns,
)

PARAMS = {"n_pca": 20, "n_components": 10, "n_clusters": 6, "n_tasks": 10, "n_epochs": 60}


@pytest.fixture(scope="module")
def log_corpus(synthetic_corpus):
    """300 × 200 synthetic samples, log1p-CPM, with the planted cluster of each sample."""
    vocab = GeneVocab.from_list(synthetic_corpus.var_names)
    values = prepare_expression(synthetic_corpus, vocab).values
    return values, synthetic_corpus.obs["cluster"].to_numpy()


@pytest.fixture(scope="module")
def fitted(log_corpus):
    return ClusterScoutGenerator(**PARAMS, random_state=0).fit(log_corpus[0])


def test_clusters_recover_planted_groups(fitted, log_corpus):
    ari = adjusted_rand_score(log_corpus[1], fitted.labels_)
    assert ari > 0.9, f"adjusted Rand index {ari:.3f} against the planted clusters"
    assert fitted.embedding_.shape == (300, 10) and fitted.embedding_.dtype == np.float32
    assert (fitted.n_pca_, fitted.n_components_, fitted.n_clusters_) == (20, 10, 6)


def test_tasks_are_balanced_distinct_and_consistent(fitted):
    assert len(fitted.tasks_) == 10
    groups = {frozenset(task.clusters) for task in fitted.tasks_}
    assert len(groups) == 10  # no pair drawn twice
    for task in fitted.tasks_:
        assert task.n_classes == 2 and np.unique(task.indices).size == task.indices.size
        counts = np.bincount(task.labels, minlength=2)
        assert counts[0] == counts[1] == task.n_per_class
        sizes = [np.sum(fitted.labels_ == c) for c in task.clusters]
        assert task.n_per_class == min(sizes)  # larger cluster down-sampled to the smaller
        np.testing.assert_array_equal(
            fitted.labels_[task.indices], np.asarray(task.clusters)[task.labels]
        )


def test_same_seed_is_bit_identical_and_another_seed_differs(fitted, log_corpus):
    again = ClusterScoutGenerator(**PARAMS, random_state=0).fit(log_corpus[0])
    np.testing.assert_array_equal(again.embedding_, fitted.embedding_)
    np.testing.assert_array_equal(again.labels_, fitted.labels_)
    for a, b in zip(again.tasks_, fitted.tasks_, strict=True):
        assert a.clusters == b.clusters
        np.testing.assert_array_equal(a.indices, b.indices)
    other = draw_cousin_tasks(fitted.labels_, n_tasks=10, seed=1)
    assert [t.clusters for t in other] != [t.clusters for t in fitted.tasks_]


def test_sparse_and_dataframe_inputs_are_accepted(log_corpus):
    values = log_corpus[0][:40]
    frame = pd.DataFrame(values)
    params = {**PARAMS, "n_clusters": 2, "n_tasks": 1, "random_state": 3}
    dense = ClusterScoutGenerator(**params).fit(values)
    sparse = ClusterScoutGenerator(**params).fit(sp.csr_matrix(values))
    from_frame = ClusterScoutGenerator(**params).fit(frame)
    np.testing.assert_array_equal(dense.embedding_, sparse.embedding_)
    np.testing.assert_array_equal(dense.embedding_, from_frame.embedding_)


def test_draw_cousin_tasks_caps_excludes_and_supports_three_classes():
    labels = np.repeat([0, 1, 2, 3, 4], [30, 12, 9, 20, 2])  # cluster 4 is too small
    tasks = draw_cousin_tasks(
        labels, n_tasks=4, classes_per_task=3, min_cluster_size=5, max_samples_per_class=10, seed=0
    )
    assert len({t.clusters for t in tasks}) == 4
    for task in tasks:
        assert 4 not in task.clusters and task.n_classes == 3
        assert task.n_per_class == min(10, *(np.sum(labels == c) for c in task.clusters))
        assert np.all(np.bincount(task.labels) == task.n_per_class)
    with pytest.warns(ScoutCapWarning, match="only 6 distinct groups"):
        assert len(draw_cousin_tasks(labels, n_tasks=50, min_cluster_size=5, seed=0)) == 6
    with pytest.raises(ValueError, match=r"Only 1 clusters .*\{0: 30, 1: 2\}"):
        draw_cousin_tasks(np.repeat([0, 1], [30, 2]), n_tasks=1, min_cluster_size=5)


def test_ten_samples_work_with_capped_settings():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 0.1, (5, 30)), rng.normal(2.0, 0.1, (5, 30))]) + 3
    with pytest.warns(ScoutCapWarning, match=r"n_neighbors=15→9.*n_clusters=30→2"):
        scouts = ClusterScoutGenerator(n_tasks=1, n_epochs=30, random_state=0).fit(X)
    assert scouts.n_clusters_ == 2 and len(scouts.tasks_) == 1
    assert adjusted_rand_score(np.repeat([0, 1], 5), scouts.labels_) == 1.0


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (np.ones((40, 5)), ValueError, "All samples are identical"),
        (np.random.default_rng(0).random((8, 5)), ValueError, "Only 8 samples"),
        (np.full((40, 5), 7.0) + np.arange(40)[:, None] * 50, ValueError, "raw counts"),
        (np.array([["a", "b"]] * 20), TypeError, "must be integer or float"),
        (np.ones(20), ValueError, "2-D"),
    ],
)
def test_degenerate_inputs_give_clear_errors(X, error, match):
    with pytest.raises(error, match=match):
        ClusterScoutGenerator(n_epochs=10).fit(X)


def test_nan_is_reported_with_sample_and_gene():
    frame = pd.DataFrame(np.ones((20, 3)), index=[f"s{i}" for i in range(20)], columns=list("abc"))
    frame.iloc[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"row 4, column 2 \(sample 's4', gene 'c'\)"):
        ClusterScoutGenerator().fit(frame)


def test_anndata_is_pointed_to_the_helper():
    with pytest.raises(TypeError, match="add_cousin_tasks"):
        ClusterScoutGenerator().fit(ad.AnnData(X=np.ones((20, 3))))


def test_invalid_parameters_are_rejected():
    with pytest.raises(InvalidParameterError, match="classes_per_task"):
        ClusterScoutGenerator(classes_per_task=4).fit(np.eye(20))


def test_add_cousin_tasks_writes_anndata_and_round_trips(tmp_path, log_corpus):
    adata = ad.AnnData(X=log_corpus[0][:60])
    params = {**PARAMS, "n_clusters": 3, "n_tasks": 3, "random_state": 5}
    assert add_cousin_tasks(adata, copy=False, **params) is None
    assert adata.obsm["X_scout_umap"].shape == (60, 10)
    assert adata.obs["scout_cluster"].dtype == "category"
    out = add_cousin_tasks(adata, copy=True, key_added="other", **params)
    assert "X_other_umap" in out.obsm and "X_other_umap" not in adata.obsm
    path = tmp_path / "scouted.h5ad"
    adata.write_h5ad(path)
    reread = tasks_from_uns(ad.read_h5ad(path))
    expected = ClusterScoutGenerator(**params).fit(adata.X).tasks_
    assert [t.clusters for t in reread] == [t.clusters for t in expected]
    for a, b in zip(reread, expected, strict=True):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.labels, b.labels)
    with pytest.raises(KeyError, match="Run `add_cousin_tasks"):
        tasks_from_uns(ad.AnnData(X=np.ones((2, 2))))
    with pytest.raises(ValueError, match="not both"):
        add_cousin_tasks(adata, generator=ClusterScoutGenerator(), n_tasks=3)


def test_plot_shows_clusters_and_tasks(tmp_path, fitted):
    fig = plot_cousin_tasks(fitted, n_tasks=2)
    assert len(fig.axes) == 3
    assert fig.axes[0].get_title() == "6 clusters"
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == [f"cluster {c}" for c in fitted.tasks_[0].clusters]
    fig.savefig(tmp_path / "tasks.png")
    assert (tmp_path / "tasks.png").stat().st_size > 0
    umap_view = plot_cousin_tasks(fitted, n_tasks=1, view="umap")
    xy = umap_view.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(xy, fitted.embedding_[:, :2])  # first two UMAP dimensions
    with pytest.raises(ValueError, match="view must be"):
        plot_cousin_tasks(fitted, view="tsne")
    with pytest.raises(ValueError, match="not fitted"):
        plot_cousin_tasks(ClusterScoutGenerator())
    with pytest.raises(KeyError, match="add_cousin_tasks"):
        plot_cousin_tasks(ad.AnnData(X=np.ones((2, 2))))


def test_plot_reads_an_anndata_written_by_add_cousin_tasks(log_corpus):
    adata = ad.AnnData(X=log_corpus[0][:40])
    add_cousin_tasks(adata, **{**PARAMS, "n_clusters": 2, "n_tasks": 1, "random_state": 2})
    fig = plot_cousin_tasks(adata, n_tasks=5)  # only one task exists
    assert len(fig.axes) == 2


def test_cousin_task_satisfies_the_task_interface(fitted):
    task = fitted.tasks_[0]
    assert isinstance(task, CousinTask)
    assert task.indices.dtype == np.int64 and task.labels.shape == task.indices.shape
    assert set(task.labels.tolist()) == {0, 1}


def test_fitting_gives_torch_back_the_threads_the_caller_set(log_corpus, monkeypatch):
    """UMAP's first numba-parallel call resets the shared OpenMP pool to one thread per core;
    a caller's ``torch.set_num_threads`` must survive a fit (a stand-in UMAP does the same)."""
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    import gtlomics.scouts as scouts

    class ResettingUmap:
        def __init__(self, *, n_components: int, **_):
            self.n_components = n_components

        def fit_transform(self, X):
            torch.set_num_threads(torch.get_num_threads() + 1)  # as numba's pool start does
            return np.asarray(X)[:, : self.n_components]

    monkeypatch.setattr(scouts, "_import_umap", lambda: SimpleNamespace(UMAP=ResettingUmap))
    before = torch.get_num_threads()
    ClusterScoutGenerator(**PARAMS, random_state=0).fit(log_corpus[0])
    assert torch.get_num_threads() == before
