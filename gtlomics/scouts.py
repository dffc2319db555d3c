"""Cousin tasks without labels: PCA → UMAP → KMeans → random groups of clusters.

Only numpy, pandas and scikit-learn at import time; umap is imported inside ``fit``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval

from gtlomics.expression.config import LOG_SCALE_MAX
from gtlomics.expression.prepare import PreparedExpression
from gtlomics.expression.table import check_numeric_dtype, is_anndata

__all__ = [
    "ClusterScoutGenerator",
    "CousinTask",
    "ScoutCapWarning",
    "ScoutTimings",
    "add_cousin_tasks",
    "draw_cousin_tasks",
    "shift_to_nonnegative",
    "tasks_from_uns",
]


def shift_to_nonnegative(values: np.ndarray) -> np.ndarray:
    """``values`` minus their minimum when it is negative, for :class:`ClusterScoutGenerator`.

    The generator refuses negative values as a likely mistake (z-scored data passed for log
    values). Values negative by design (per-study standardised, rank normal scores) can pass
    through this: the generator's PCA centres every gene, so one constant offset changes no
    cluster.

    Examples
    --------
    >>> shift_to_nonnegative(np.array([[-1.0, 2.0]])).tolist()
    [[0.0, 3.0]]
    """
    return values - min(0.0, float(values.min())) if values.size else values


_KMEANS_N_INIT = 10  # k-means++ restarts: 4 left 6 planted blobs at a local optimum (ARI 0.85)


class ScoutCapWarning(UserWarning):
    """A setting was lowered to fit a small input (see ClusterScoutGenerator)."""


@dataclass(frozen=True)
class CousinTask:
    """One unsupervised classification task: samples of ``len(clusters)`` clusters.

    Attributes
    ----------
    indices
        ``int64 (n,)`` rows of the fitted matrix, shuffled.
    labels
        ``int64 (n,)`` class of each row, ``0..n_classes-1``; label ``i`` is cluster
        ``clusters[i]``. Classes are balanced.
    clusters
        The cluster ids making up the task, ascending.
    """

    indices: np.ndarray
    labels: np.ndarray
    clusters: tuple[int, ...]

    @property
    def n_classes(self) -> int:
        return len(self.clusters)

    @property
    def n_per_class(self) -> int:
        return self.indices.size // self.n_classes


@dataclass(frozen=True)
class ScoutTimings:
    """Wall-clock seconds of each step of the last ``fit``."""

    pca_s: float
    umap_s: float
    kmeans_s: float
    tasks_s: float


class ClusterScoutGenerator(BaseEstimator):
    """Build cousin tasks from an unlabelled, log-normalised corpus.

    PCA to ``n_pca`` dims, UMAP to ``n_components`` dims, KMeans with ``n_clusters``, then
    ``n_tasks`` distinct random groups of ``classes_per_task`` clusters, each a balanced task
    (the larger clusters are down-sampled to the smallest; optionally capped at
    ``max_samples_per_class``). Clusters with fewer than ``min_cluster_size`` samples are excluded.

    Small inputs: with ``n`` samples, ``n_pca`` is capped at ``n - 1`` and at the number of
    non-constant genes, ``n_neighbors`` at ``n - 1``, ``n_components`` at ``n_pca`` and ``n - 2``
    (UMAP's spectral initialisation needs it), and ``n_clusters`` at ``n // min_cluster_size``,
    each with a :class:`ScoutCapWarning`; ``n_tasks`` is capped at the number of distinct cluster
    groups. Fewer than ``classes_per_task × min_cluster_size`` samples, no genes, identical samples,
    negative values, or fewer than ``classes_per_task`` clusters of ``min_cluster_size`` are a
    ``ValueError``.

    PCA centres but does not scale genes; KMeans runs 10 k-means++ restarts on the embedding.

    Parameters
    ----------
    n_pca, n_components, n_clusters
        PCA dimensions, UMAP dimensions and number of KMeans clusters.
    n_tasks
        Number of cousin tasks.
    classes_per_task
        2 (pairs of clusters) or 3.
    max_samples_per_class
        Cap on the samples of each class of a task; ``None`` keeps the smallest cluster's size.
    min_cluster_size
        Clusters smaller than this never enter a task.
    n_neighbors, min_dist, n_epochs
        UMAP settings; ``n_epochs=None`` lets UMAP choose (200 above 10k samples, else 500).
    random_state
        Seed; child seeds for PCA, UMAP, KMeans and task drawing come from
        ``np.random.SeedSequence(random_state).spawn(4)``. A seeded UMAP runs single-threaded.

    Attributes
    ----------
    tasks_ : list of CousinTask
    embedding_ : ndarray of shape (n_samples, ``n_components_``)
    labels_ : ndarray of shape (n_samples,), the cluster of each sample
    n_pca_, n_components_, n_neighbors_, n_clusters_ : int, the settings after capping
    timings_ : ScoutTimings

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(m, 0.1, (20, 8)) for m in (1, 4, 7)])  # log-scale values
    >>> scouts = ClusterScoutGenerator(n_pca=8, n_components=2, n_clusters=3, n_tasks=3,
    ...                                n_epochs=50, random_state=0).fit(X)
    >>> len(scouts.tasks_), scouts.tasks_[0].n_classes
    (3, 2)
    """

    _parameter_constraints: dict = {  # noqa: RUF012  (scikit-learn convention)
        "n_pca": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_clusters": [Interval(Integral, 2, None, closed="left")],
        "n_tasks": [Interval(Integral, 1, None, closed="left")],
        "classes_per_task": [Interval(Integral, 2, 3, closed="both")],
        "max_samples_per_class": [Interval(Integral, 1, None, closed="left"), None],
        "min_cluster_size": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 2, None, closed="left")],
        "min_dist": [Interval(Real, 0, None, closed="left")],
        "n_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both"), None],
    }

    def __init__(
        self,
        *,
        n_pca: int = 50,
        n_components: int = 30,
        n_clusters: int = 30,
        n_tasks: int = 100,
        classes_per_task: int = 2,
        max_samples_per_class: int | None = None,
        min_cluster_size: int = 5,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        n_epochs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.n_pca = n_pca
        self.n_components = n_components
        self.n_clusters = n_clusters
        self.n_tasks = n_tasks
        self.classes_per_task = classes_per_task
        self.max_samples_per_class = max_samples_per_class
        self.min_cluster_size = min_cluster_size
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_epochs = n_epochs
        self.random_state = random_state

    def fit(self, X: Any, y: None = None) -> ClusterScoutGenerator:
        """Embed and cluster ``X`` and draw the cousin tasks.

        Parameters
        ----------
        X
            ``(n_samples, n_genes)`` log-normalised values: ndarray, scipy sparse (densified),
            DataFrame, or a :class:`~gtlomics.expression.PreparedExpression`; converted to
            float32. Values must be finite and non-negative (z-scored or centred data is
            refused); integer matrices with values above ``LOG_SCALE_MAX`` look like raw counts
            and are refused. A matrix with no genes is refused.
        y
            Ignored.
        """
        self._validate_params()
        values = _check_matrix(X)
        self.n_features_in_ = values.shape[1]
        self._set_sizes(values)
        pca_seed, umap_seed, kmeans_seed, task_seed = _child_seeds(self.random_state)
        clock = [time.perf_counter()]
        reduced = self._pca(values, pca_seed)
        clock.append(time.perf_counter())
        self.embedding_ = self._umap(reduced, umap_seed)
        clock.append(time.perf_counter())
        self.labels_ = self._kmeans(self.embedding_, kmeans_seed)
        clock.append(time.perf_counter())
        self.tasks_ = draw_cousin_tasks(
            self.labels_,
            n_tasks=self.n_tasks,
            classes_per_task=self.classes_per_task,
            min_cluster_size=self.min_cluster_size,
            max_samples_per_class=self.max_samples_per_class,
            seed=task_seed,
        )
        clock.append(time.perf_counter())
        self.timings_ = ScoutTimings(*np.diff(clock).tolist())
        return self

    def _set_sizes(self, values: np.ndarray) -> None:
        n_samples = values.shape[0]
        needed = self.classes_per_task * self.min_cluster_size
        if n_samples < max(needed, 4):
            raise ValueError(
                f"Only {n_samples} samples: a task of {self.classes_per_task} clusters of "
                f"min_cluster_size={self.min_cluster_size} needs at least {max(needed, 4)}. "
                "Pass more samples or lower min_cluster_size."
            )
        n_varying = int(np.count_nonzero(np.ptp(values, axis=0) > 0))
        if n_varying == 0:
            raise ValueError(
                "All samples are identical (every gene is constant); cousin tasks need "
                "variation between samples."
            )
        caps = {
            "n_pca": min(self.n_pca, n_samples - 1, n_varying),
            "n_neighbors": min(self.n_neighbors, n_samples - 1),
            "n_clusters": min(self.n_clusters, n_samples // self.min_cluster_size),
        }
        caps["n_components"] = min(self.n_components, caps["n_pca"], n_samples - 2)
        _warn_caps({k: (getattr(self, k), v) for k, v in caps.items()}, values.shape, n_varying)
        for name, value in caps.items():
            setattr(self, f"{name}_", int(value))

    def _pca(self, values: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=self.n_pca_, random_state=seed)
        return pca.fit_transform(values).astype(np.float32)

    def _umap(self, reduced: np.ndarray, seed: int) -> np.ndarray:
        model = _import_umap().UMAP(
            n_neighbors=self.n_neighbors_,
            n_components=self.n_components_,
            min_dist=self.min_dist,
            n_epochs=self.n_epochs,
            random_state=seed,
            n_jobs=1,
        )
        with _torch_threads_kept():
            embedding = model.fit_transform(reduced)
        return np.asarray(embedding, dtype=np.float32)

    def _kmeans(self, embedding: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.cluster import KMeans

        n_distinct = np.unique(embedding, axis=0).shape[0]
        n_clusters = min(self.n_clusters_, n_distinct)
        if n_clusters < self.classes_per_task:
            raise ValueError(
                f"The embedding has only {n_distinct} distinct points; at least "
                f"{self.classes_per_task} clusters are needed. Are most samples identical?"
            )
        self.n_clusters_ = n_clusters
        kmeans = KMeans(n_clusters=n_clusters, n_init=_KMEANS_N_INIT, random_state=seed)
        return kmeans.fit_predict(embedding).astype(np.int64)


def draw_cousin_tasks(
    labels: np.ndarray,
    *,
    n_tasks: int,
    classes_per_task: int = 2,
    min_cluster_size: int = 1,
    max_samples_per_class: int | None = None,
    seed: int | None = None,
) -> list[CousinTask]:
    """Draw ``n_tasks`` distinct, balanced tasks from a clustering.

    Parameters
    ----------
    labels
        Cluster id of each sample.
    n_tasks
        Number of tasks; capped (with a :class:`ScoutCapWarning`) at the number of distinct
        groups of ``classes_per_task`` eligible clusters.
    classes_per_task, min_cluster_size, max_samples_per_class, seed
        See :class:`ClusterScoutGenerator`.

    Returns
    -------
    list of CousinTask
        No two tasks share the same set of clusters.
    """
    labels = np.asarray(labels)
    cluster_ids, sizes = np.unique(labels, return_counts=True)
    eligible = cluster_ids[sizes >= min_cluster_size]
    if eligible.size < classes_per_task:
        raise ValueError(
            f"Only {eligible.size} clusters have >= min_cluster_size={min_cluster_size} samples "
            f"(cluster sizes: {dict(zip(cluster_ids.tolist(), sizes.tolist(), strict=True))}); "
            f"a task needs {classes_per_task}. Lower min_cluster_size or n_clusters, or add "
            "samples."
        )
    rng = np.random.default_rng(seed)
    groups = _distinct_groups(eligible.size, classes_per_task, n_tasks, rng)
    return [_balanced_task(labels, eligible[list(g)], max_samples_per_class, rng) for g in groups]


def _distinct_groups(n_items: int, k: int, n_groups: int, rng) -> list[tuple[int, ...]]:
    total = math.comb(n_items, k)
    if n_groups > total:
        warnings.warn(
            f"n_tasks={n_groups} but only {total} distinct groups of {k} clusters exist among "
            f"{n_items} eligible clusters; drawing {total} tasks.",
            ScoutCapWarning,
            stacklevel=4,
        )
        n_groups = total
    if total <= 200_000:
        every = list(combinations(range(n_items), k))
        return [every[i] for i in rng.choice(total, size=n_groups, replace=False)]
    drawn: dict[tuple[int, ...], None] = {}
    while len(drawn) < n_groups:
        drawn.setdefault(tuple(sorted(rng.choice(n_items, size=k, replace=False).tolist())))
    return list(drawn)


def _balanced_task(labels, clusters: np.ndarray, cap: int | None, rng) -> CousinTask:
    members = [np.flatnonzero(labels == c) for c in clusters]
    n_per_class = min(m.size for m in members)
    if cap is not None:
        n_per_class = min(n_per_class, cap)
    chosen = [np.sort(rng.choice(m, size=n_per_class, replace=False)) for m in members]
    indices = np.concatenate(chosen).astype(np.int64)
    task_labels = np.repeat(np.arange(len(clusters), dtype=np.int64), n_per_class)
    order = rng.permutation(indices.size)
    return CousinTask(indices[order], task_labels[order], tuple(int(c) for c in clusters))


def _check_matrix(X: Any) -> np.ndarray:
    if is_anndata(X):
        raise TypeError(
            "fit() takes a matrix; for an AnnData use add_cousin_tasks(adata, ...) or pass "
            "adata.X (log-normalised)."
        )
    if isinstance(X, PreparedExpression):
        X = X.values
    names = (X.index, X.columns) if isinstance(X, pd.DataFrame) else None
    values = X.toarray() if sp.issparse(X) else np.asarray(X)
    check_numeric_dtype(values.dtype, "X")
    if values.ndim != 2:
        raise ValueError(f"X must be 2-D (samples × genes), got shape {values.shape}.")
    if values.shape[1] == 0:
        raise ValueError(
            f"X has 0 genes (shape {values.shape}); pass a samples × genes matrix with genes."
        )
    values = values.astype(np.float32)
    _refuse_entries(values, ~np.isfinite(values), "NaN or infinite", "impute or drop them", names)
    _refuse_entries(
        values,
        values < 0,
        "negative",
        "cousin tasks expect log-normalised, non-negative expression (log1p of normalised "
        "counts), not z-scored or centred values. Use gtlomics.expression.prepare_expression "
        "on the counts",
        names,
    )
    if values.size and values.max() > LOG_SCALE_MAX and np.all(values == np.round(values)):
        raise ValueError(
            f"X looks like raw counts (integers up to {values.max():.0f}); cousin tasks need "
            "log-normalised values. Use gtlomics.expression.prepare_expression first."
        )
    return values


def _refuse_entries(
    values: np.ndarray, bad: np.ndarray, problem: str, fix: str, names: tuple | None
) -> None:
    """Raise a ValueError counting the ``bad`` entries and naming the first one."""
    if not bad.any():
        return
    row, col = np.argwhere(bad)[0]
    where = f"row {row}, column {col}"
    if names is not None:
        where += f" (sample {names[0][row]!r}, gene {names[1][col]!r})"
    raise ValueError(f"X has {int(bad.sum())} {problem} values, first at {where}; {fix}.")


@contextlib.contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """Give torch back the intra-op thread count it had, whatever the block does to OpenMP.

    UMAP's first numba-parallel call starts numba's OpenMP pool, which sets the shared OpenMP
    runtime to one thread per core: without this, ``torch.set_num_threads(1)`` before a
    foundation build would silently be 2 threads (on 2 cores) after it. Torch is only touched
    when it is already imported.
    """
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if torch is not None and torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _import_umap():
    """Import umap, silencing its ImportWarning about the optional TensorFlow (ignored by
    Python's default filters, but an error where warnings are errors)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Tensorflow not installed", category=ImportWarning
        )
        import umap
    return umap


def _child_seeds(random_state: int | None) -> list[int]:
    children = np.random.SeedSequence(random_state).spawn(4)
    return [int(child.generate_state(1)[0]) for child in children]


def _warn_caps(settings: dict[str, tuple[int, int]], shape: tuple, n_varying: int) -> None:
    lowered = [f"{k}={asked}→{used}" for k, (asked, used) in settings.items() if used < asked]
    if lowered:
        warnings.warn(
            f"Lowered {', '.join(lowered)} to fit an input of {shape[0]} samples × {shape[1]} "
            f"genes ({n_varying} non-constant).",
            ScoutCapWarning,
            stacklevel=4,
        )


def add_cousin_tasks(
    adata: Any,
    *,
    layer: str | None = None,
    generator: ClusterScoutGenerator | None = None,
    key_added: str = "scout",
    copy: bool = False,
    **params: Any,
) -> Any:
    """Fit a :class:`ClusterScoutGenerator` on an AnnData and store the results (scanpy style).

    Writes ``adata.obsm[f"X_{key_added}_umap"]`` (the embedding), ``adata.obs[f"{key_added}
    _cluster"]`` (categorical cluster) and ``adata.uns[f"{key_added}_tasks"]`` (the tasks, h5ad
    writable; read them back with :func:`tasks_from_uns`).

    Parameters
    ----------
    adata
        AnnData whose ``.X`` (or ``layer``) holds log-normalised values, e.g. built from
        :func:`~gtlomics.expression.prepare_expression`.
    layer
        Layer to use instead of ``.X``.
    generator
        An (unfitted) generator to fit; or give its parameters as keyword arguments.
    key_added
        Prefix of the keys written.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    AnnData or None
        The copy when ``copy=True``, else ``None``.
    """
    if generator is not None and params:
        raise ValueError("Pass either generator= or generator parameters, not both.")
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"layer={layer!r} not in adata.layers ({list(adata.layers.keys())}).")
    adata = adata.copy() if copy else adata
    generator = generator if generator is not None else ClusterScoutGenerator(**params)
    generator.fit(adata.X if layer is None else adata.layers[layer])
    adata.obsm[f"X_{key_added}_umap"] = generator.embedding_
    adata.obs[f"{key_added}_cluster"] = pd.Categorical(generator.labels_)
    adata.uns[f"{key_added}_tasks"] = _tasks_to_uns(generator)
    return adata if copy else None


def _tasks_to_uns(generator: ClusterScoutGenerator) -> dict[str, Any]:
    tasks = generator.tasks_
    offsets = np.cumsum([0] + [t.indices.size for t in tasks])
    settings = {
        name: getattr(generator, f"{name}_")
        for name in ("n_pca", "n_components", "n_neighbors", "n_clusters")
    }
    if generator.random_state is not None:
        settings["random_state"] = int(generator.random_state)
    return {
        "clusters": np.asarray([t.clusters for t in tasks], dtype=np.int64),
        "indices": np.concatenate([t.indices for t in tasks]),
        "labels": np.concatenate([t.labels for t in tasks]),
        "offsets": offsets.astype(np.int64),
        "settings": settings,
    }


def tasks_from_uns(adata: Any, key: str = "scout") -> list[CousinTask]:
    """Rebuild the tasks written by :func:`add_cousin_tasks` (also after an h5ad round trip)."""
    name = f"{key}_tasks"
    if name not in adata.uns:
        raise KeyError(f"Did not find adata.uns[{name!r}]. Run `add_cousin_tasks(adata)` first.")
    stored = adata.uns[name]
    offsets = np.asarray(stored["offsets"])
    return [
        CousinTask(
            np.asarray(stored["indices"][a:b], dtype=np.int64),
            np.asarray(stored["labels"][a:b], dtype=np.int64),
            tuple(int(c) for c in clusters),
        )
        for a, b, clusters in zip(offsets[:-1], offsets[1:], stored["clusters"], strict=True)
    ]
