"""A corpus served in chunks of prepared rows: the one data contract of pre-training.

:class:`ChunkedCorpus` is what :func:`~gtlomics.train.pretrain` streams and what cousin tasks
subsample: ``chunks()`` yields :class:`CorpusChunk` blocks of vocabulary-aligned float32 values in
a fixed order. :class:`ArrayCorpus` serves an in-memory array;
:class:`~gtlomics.corpus.H5adCorpus` an ``.h5ad`` file larger than memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["ArrayCorpus", "ChunkedCorpus", "CorpusChunk", "read_rows"]


@dataclass(frozen=True)
class CorpusChunk:
    """Rows ``start:start + len(values)`` of a corpus: ``float32 (n, G)`` values, presence."""

    start: int
    values: np.ndarray
    present: np.ndarray  # bool (G,) or (n, G)


class ChunkedCorpus(Protocol):
    """A re-iterable corpus: ``chunks()`` yields rows in a fixed order, ``chunk_size`` at a time.

    Every chunk but the last has exactly ``chunk_size`` rows. ``signature()`` identifies the
    data (a resumed run checks it against its checkpoint).
    """

    n_samples: int
    n_genes: int
    chunk_size: int

    def chunks(self) -> Iterator[CorpusChunk]: ...

    def signature(self) -> str: ...


@dataclass(frozen=True)
class ArrayCorpus:
    """An in-memory ``(n_samples, n_genes)`` array served in chunks.

    Examples
    --------
    >>> corpus = ArrayCorpus(np.zeros((5, 3), dtype=np.float32), chunk_size=2)
    >>> [c.start for c in corpus.chunks()]
    [0, 2, 4]
    """

    values: np.ndarray
    chunk_size: int = 4096
    present: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return self.values.shape[0]

    @property
    def n_genes(self) -> int:
        return self.values.shape[1]

    def chunks(self) -> Iterator[CorpusChunk]:
        """Chunks of ``chunk_size`` rows in array order (views, as float32)."""
        present = np.ones(self.n_genes, bool) if self.present is None else self.present
        for start in range(0, self.n_samples, self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            chunk_present = present if present.ndim == 1 else present[rows]
            yield CorpusChunk(start, np.asarray(self.values[rows], np.float32), chunk_present)

    def signature(self) -> str:
        """Shape, chunk size and a hash of the values."""
        digest = hashlib.sha256(np.ascontiguousarray(self.values).tobytes()).hexdigest()[:16]
        return f"array{self.values.shape}|chunk={self.chunk_size}|{digest}"


def read_rows(corpus: ChunkedCorpus, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (sorted, unique) of ``corpus`` as ``float32 (len(rows), G)``, one pass.

    Absent genes are 0.0 (as prepared); memory is the result plus one chunk.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if np.any(np.diff(rows) <= 0):
        raise ValueError("rows must be sorted and unique; pass np.unique(rows).")
    out = np.empty((len(rows), corpus.n_genes), dtype=np.float32)
    chunks = corpus.chunks()
    for chunk in chunks:
        stop = chunk.start + chunk.values.shape[0]
        lo, hi = np.searchsorted(rows, [chunk.start, stop])
        out[lo:hi] = chunk.values[rows[lo:hi] - chunk.start]
        if hi == len(rows):  # the last wanted row is read: stop (and close the file)
            break
    getattr(chunks, "close", lambda: None)()
    return out
