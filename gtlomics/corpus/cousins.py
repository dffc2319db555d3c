"""Cousin tasks for a corpus of any size: cluster a bounded subsample, assign the rest.

PCA → UMAP → KMeans needs the whole matrix in memory (and UMAP's cost grows with it), so
:class:`SubsampledCousinTasks` fits a :class:`~gtlomics.scouts.ClusterScoutGenerator` on at most
``n_subsample`` rows drawn uniformly from ``seed`` (read in one pass; a corpus no larger than
``n_subsample`` is clustered whole). The tasks index those rows, which is all scouting needs:
scouts train on ``values_``. Labels for every other row, where wanted, come from
:func:`assign_to_centroids`: each row joins the cluster whose mean value (over the subsample) is
nearest, chunk by chunk, a cheaper rule than re-embedding with UMAP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gtlomics.corpus.chunks import ChunkedCorpus, read_rows
from gtlomics.scouts import ClusterScoutGenerator, shift_to_nonnegative

__all__ = ["SubsampledCousinTasks", "assign_to_centroids", "subsample_rows"]


def subsample_rows(n_samples: int, n_subsample: int, seed: int) -> np.ndarray:
    """Sorted rows of a uniform draw of ``min(n_subsample, n_samples)`` rows, seeded."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    n_take = min(n_subsample, n_samples)
    return np.sort(rng.choice(n_samples, size=n_take, replace=False))


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
        default :class:`~gtlomics.scouts.ClusterScoutGenerator` seeded from ``seed``. Values
        negative by design (standardised, rank scores) are shifted to be non-negative for it.
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
        self.rows_ = subsample_rows(corpus.n_samples, self.n_subsample, self.seed)
        self.values_ = read_rows(corpus, self.rows_)
        generator = self.generator
        if generator is None:
            generator = ClusterScoutGenerator(random_state=self.seed)
        generator.fit(shift_to_nonnegative(self.values_))
        self.generator_, self.tasks_ = generator, generator.tasks_
        labels = np.asarray(generator.labels_)
        self.centroids_ = np.stack(
            [self.values_[labels == k].mean(0) for k in range(labels.max() + 1)]
        )
        return self

    def assign(self, corpus: ChunkedCorpus) -> np.ndarray:
        """Cluster of every corpus row by nearest subsample centroid (see module notes)."""
        return assign_to_centroids(corpus, self.centroids_)
