"""Prepare a corpus block by block with bounded memory, and serve an ``.h5ad`` file prepared.

:func:`iter_prepared_chunks` aligns and normalises any corpus (an ``.h5ad`` path, a backed or
in-memory AnnData, a DataFrame, an array) ``chunk_size`` rows at a time; :class:`H5adCorpus` is
a :class:`~gtlomics.corpus.ChunkedCorpus` over a file, optionally standardised per study.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from gtlomics.corpus.chunks import CorpusChunk
from gtlomics.corpus.h5ad import h5ad_n_rows, iter_h5ad_tables
from gtlomics.corpus.standardize import BatchStatistics
from gtlomics.expression import (
    ExpressionTable,
    GeneVocab,
    PreparedExpression,
    PreprocessingConfig,
    ReadSettings,
    read_expression,
)
from gtlomics.expression.prepare import prepare_table
from gtlomics.expression.table import is_anndata

__all__ = ["H5adCorpus", "PreparedChunk", "iter_prepared_chunks"]


@dataclass(frozen=True)
class PreparedChunk:
    """Rows ``start:stop`` of a corpus, prepared (see :class:`PreparedExpression`)."""

    start: int
    stop: int
    expression: PreparedExpression


def iter_prepared_chunks(
    source: str | os.PathLike | Any,
    vocab: GeneVocab,
    config: PreprocessingConfig | None = None,
    *,
    chunk_size: int = 4096,
    gene_ids: Any = None,
    reading: ReadSettings | None = None,
) -> Iterator[PreparedChunk]:
    """Yield prepared blocks of at most ``chunk_size`` rows.

    An ``.h5ad`` path or a backed AnnData (``anndata.read_h5ad(path, backed="r")``) is read
    slice by slice from disk (``.X`` or ``layers[reading.layer]``, dense or CSR), so memory stays
    near ``chunk_size × n_genes`` whatever the number of samples. In-memory AnnData, DataFrames
    and arrays are sliced the same way. ``input_scale="auto"`` is resolved on the first block and
    enforced on the rest; library sizes are per sample, so blocks equal one big
    :func:`~gtlomics.expression.prepare_expression` call row for row. Duplicate-gene warnings are
    given once. ``gene_ids`` names the columns of an array input.

    Examples
    --------
    >>> import numpy as np
    >>> from gtlomics.expression import GeneVocab
    >>> counts = np.arange(1, 11).reshape(5, 2)
    >>> chunks = iter_prepared_chunks(counts, GeneVocab(("a", "b")), chunk_size=2, gene_ids="ab")
    >>> [(c.start, c.stop) for c in chunks]
    [(0, 2), (2, 4), (4, 5)]
    """
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    config = config or PreprocessingConfig()
    scale = None
    reading = reading or ReadSettings()
    for start, table in _iter_tables(source, reading, int(chunk_size), gene_ids):
        prepared = prepare_table(table, vocab, config, scale=scale, warn_duplicates=scale is None)
        scale = prepared.input_scale
        yield PreparedChunk(start, start + table.shape[0], prepared)


def _iter_tables(
    source: Any, reading: ReadSettings, chunk_size: int, gene_ids: Any
) -> Iterator[tuple[int, ExpressionTable]]:
    if isinstance(source, str | os.PathLike):
        yield from iter_h5ad_tables(source, reading, chunk_size)
    elif is_anndata(source) and source.isbacked:
        yield from iter_h5ad_tables(source.filename, reading, chunk_size)
    else:
        table = read_expression(
            source, layer=reading.layer, gene_column=reading.gene_column, gene_ids=gene_ids
        )
        for start in range(0, table.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            yield start, ExpressionTable(table.values[rows], table.gene_ids, table.sample_ids[rows])


@dataclass(frozen=True)
class H5adCorpus:
    """A ``.h5ad`` file read ``chunk_size`` rows at a time, aligned to ``vocab`` and normalised.

    Each pass re-opens the file and reads it slice by slice (:func:`iter_prepared_chunks`), so
    memory stays near ``chunk_size × len(vocab)`` floats whatever the number of samples. With
    ``standardization`` and ``batches`` (one study label per row) each chunk is standardised per
    study. Satisfies :class:`~gtlomics.corpus.ChunkedCorpus`.

    Examples
    --------
    >>> corpus = H5adCorpus("corpus.h5ad", vocab, chunk_size=8192)  # doctest: +SKIP
    >>> pretrain(encoder, corpus, config=PretrainConfig(), seed=0)  # doctest: +SKIP
    """

    path: str | Path
    vocab: GeneVocab
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    chunk_size: int = 4096
    standardization: BatchStatistics | None = None
    batches: np.ndarray | None = None
    reading: ReadSettings = field(default_factory=ReadSettings)

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}.")
        if (self.standardization is None) != (self.batches is None):
            raise ValueError("Pass standardization and batches together (or neither).")

    @cached_property
    def n_samples(self) -> int:
        """Rows of the file (from its metadata)."""
        return h5ad_n_rows(self.path, self.reading.layer)

    @property
    def n_genes(self) -> int:
        return len(self.vocab.genes)

    def chunks(self) -> Iterator[CorpusChunk]:
        """Prepared (and, with ``standardization``, standardised) chunks in file order."""
        for chunk in iter_prepared_chunks(
            self.path,
            self.vocab,
            self.preprocessing,
            chunk_size=self.chunk_size,
            reading=self.reading,
        ):
            values = chunk.expression.values
            if self.standardization is not None:
                values = self.standardization.apply(values, self.batches[chunk.start : chunk.stop])
            yield CorpusChunk(chunk.start, values, chunk.expression.present)

    def signature(self) -> str:
        """The file (path, size, modification time), vocabulary, settings and chunk size."""
        stat = Path(self.path).stat()
        parts = [
            str(Path(self.path).resolve()),
            str(stat.st_size),
            str(stat.st_mtime_ns),
            ",".join(self.vocab.genes),
            repr(self.preprocessing),
            repr(self.reading),
            str(self.chunk_size),
        ]
        if self.standardization is not None:
            parts.append(
                repr(self.standardization.mean.sum()) + repr(self.standardization.scale.sum())
            )
        return hashlib.sha256("|".join(parts).encode()).hexdigest()
