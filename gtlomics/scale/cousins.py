"""Cousin tasks for corpora larger than memory: cluster a bounded subsample, assign the rest.

PCA → UMAP → KMeans needs the whole matrix in memory (and UMAP's cost grows with it), so on a
large corpus :class:`SubsampledCousinTasks` fits a :class:`~gtlomics.scouts.ClusterScoutGenerator`
on at most ``n_subsample`` rows drawn uniformly from ``seed`` (read in one streaming pass). The
tasks index those rows, which is all scouting needs: scouts train on ``values_`` (the subsample).
Labels for every other row, where wanted, come from :func:`assign_to_centroids`: each row joins the
cluster whose mean log-expression (over the subsample) is nearest, chunk by chunk. That is a
cheaper rule than re-embedding with UMAP, and it is the one documented here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gtlomics.train.streaming import ChunkedCorpus

__all__ = ["SubsampledCousinTasks", "assign_to_centroids", "read_rows"]


def read_rows(corpus: ChunkedCorpus, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (sorted, unique) of ``corpus`` as ``float32 (len(rows), G)``, one pass.

    Absent genes are 0.0 (as prepared); memory is the result plus one chunk.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if np.any(np.diff(rows) <= 0):
        raise ValueError("rows must be sorted and unique; pass np.unique(rows).")
    out = np.empty((len(rows), corpus.n_genes), dtype=np.float32)
    for chunk in corpus.chunks():
        stop = chunk.start + chunk.values.shape[0]
        lo, hi = np.searchsorted(rows, [chunk.start, stop])
        out[lo:hi] = chunk.values[rows[lo:hi] - chunk.start]
    return out


def assign_to_centroids(corpus: ChunkedCorpus, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid ``(K, G)`` (Euclidean) for every row, chunk by chunk."""
    centroids = np.asarray(centroids, dtype=np.float32)
    sq_norms = (centroids**2).sum(1)
    labels = np.empty(corpus.n_samples, dtype=np.int64)
    for chunk in corpus.chunks():
        # ‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖²; ‖x‖² is the same for every centroid.
        distance = sq_norms - 2.0 * chunk.values @ centroids.T
        labels[chunk.start : chunk.start + len(distance)] = distance.argmin(1)
    return labels


@dataclass
class SubsampledCousinTasks:
    """Fit a cousin-task generator on a bounded uniform subsample of a chunked corpus.

    Parameters
    ----------
    n_subsample : int
        Most rows clustered (and held in memory).
    generator : estimator or None
        Anything with ``fit(values)`` setting ``labels_`` and ``tasks_``; ``None`` builds a
        default :class:`~gtlomics.scouts.ClusterScoutGenerator` seeded from ``seed``.
    seed : int
        Chooses the subsample (and seeds the default generator).

    Attributes
    ----------
    rows_ : ndarray
        Sorted corpus row of each subsample row.
    values_ : ndarray
        ``(n, G)`` subsample values: what the tasks' ``indices`` point into.
    tasks_ : list
        The generator's cousin tasks.
    centroids_ : ndarray
        ``(K, G)`` mean values of each cluster in the subsample.
    """

    n_subsample: int = 20_000
    generator: Any = None
    seed: int = 0

    def fit(self, corpus: ChunkedCorpus) -> SubsampledCousinTasks:
        """Draw the subsample, cluster it and draw the tasks."""
        n_take = min(self.n_subsample, corpus.n_samples)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0,)))
        self.rows_ = np.sort(rng.choice(corpus.n_samples, size=n_take, replace=False))
        self.values_ = read_rows(corpus, self.rows_)
        generator = self.generator if self.generator is not None else self._default_generator()
        generator.fit(self.values_)
        self.generator_, self.tasks_ = generator, generator.tasks_
        labels = np.asarray(generator.labels_)
        self.centroids_ = np.stack(
            [self.values_[labels == k].mean(0) for k in range(labels.max() + 1)]
        )
        return self

    def assign(self, corpus: ChunkedCorpus) -> np.ndarray:
        """Cluster of every corpus row by nearest subsample centroid (see module notes)."""
        return assign_to_centroids(corpus, self.centroids_)

    def _default_generator(self):
        from gtlomics.scouts import ClusterScoutGenerator

        return ClusterScoutGenerator(random_state=self.seed)
