"""Per-study standardisation of a corpus: each study's genes to mean 0, sd 1.

A corpus pooled from many studies varies most *between* studies (lab, protocol, depth). With a
study label per sample (``batch_key``), each study is standardised on its own, so cousin tasks,
pre-training and scouting see within-study variation: what a classifier standardised on its own
training samples shows the encoder. :class:`BatchStatistics` holds each study's per-gene mean and
sd, computed exactly from an in-memory array or in one streaming pass over a chunked corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gtlomics.corpus.chunks import ChunkedCorpus

__all__ = ["MIN_STUDY_STD", "BatchStatistics", "standardize_per_batch"]

MIN_STUDY_STD = 0.1
"""Floor of a corpus study's per-gene sd, as for a classifier's training samples."""


@dataclass(frozen=True)
class BatchStatistics:
    """Per-gene mean and sd (floored at ``MIN_STUDY_STD``) of each batch, float64 ``(K, G)``.

    Attributes
    ----------
    labels : ndarray
        The K batch labels, sorted.
    mean, scale : ndarray
        ``(K, G)`` per-gene mean and floored sd of each batch.
    """

    labels: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_values(
        cls, values: np.ndarray, batches: np.ndarray, *, min_std: float = MIN_STUDY_STD
    ) -> BatchStatistics:
        """Exact statistics of an in-memory ``(n, G)`` array (two-pass, float64)."""
        labels = np.unique(batches)
        blocks = [values[batches == label].astype(np.float64) for label in labels]
        mean = np.stack([block.mean(axis=0) for block in blocks])
        scale = np.stack([np.maximum(block.std(axis=0), min_std) for block in blocks])
        return cls(labels, mean, scale)

    @classmethod
    def from_chunks(
        cls, corpus: ChunkedCorpus, batches: np.ndarray, *, min_std: float = MIN_STUDY_STD
    ) -> BatchStatistics:
        """Statistics in one pass over ``corpus`` (float64 sums; memory ``3 × K × G``)."""
        labels, codes = np.unique(batches, return_inverse=True)
        total = np.zeros((len(labels), corpus.n_genes))
        total_sq = np.zeros_like(total)
        for chunk in corpus.chunks():
            block = chunk.values.astype(np.float64)
            chunk_codes = codes[chunk.start : chunk.start + len(block)]
            np.add.at(total, chunk_codes, block)
            np.add.at(total_sq, chunk_codes, block**2)
        counts = np.bincount(codes, minlength=len(labels))[:, None]
        mean = total / counts
        std = np.sqrt(np.maximum(total_sq / counts - mean**2, 0.0))
        return cls(labels, mean, np.maximum(std, min_std))

    def apply(self, values: np.ndarray, batches: np.ndarray) -> np.ndarray:
        """``values`` standardised with the statistics of each row's batch, float32."""
        out = np.empty(values.shape, dtype=np.float32)
        for index, label in enumerate(self.labels):
            rows = batches == label
            out[rows] = (values[rows].astype(np.float64) - self.mean[index]) / self.scale[index]
        return out


def standardize_per_batch(
    values: np.ndarray, batches: np.ndarray, *, min_std: float = MIN_STUDY_STD
) -> np.ndarray:
    """Each batch's rows with per-gene mean 0 and sd 1 (sd floored at ``min_std``), float32.

    Examples
    --------
    >>> v = np.array([[1.0, 0.0], [3.0, 0.0], [10.0, 4.0], [10.0, 8.0]])
    >>> standardize_per_batch(v, np.array(["a", "a", "b", "b"])).tolist()
    [[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]
    """
    return BatchStatistics.from_values(values, batches, min_std=min_std).apply(values, batches)
