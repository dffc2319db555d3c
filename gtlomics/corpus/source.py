"""Where a foundation's corpus comes from: in memory, or an ``.h5ad`` file read chunk by chunk.

:func:`open_corpus` turns what a user passes to :func:`~gtlomics.foundation.build_foundation`
into a :class:`CorpusSource`, the one contract the build pipeline reads through:

* :meth:`~CorpusSource.vocab_sample`: the rows the gene vocabulary is chosen on (all rows of an
  in-memory corpus; ``vocab_sample`` uniformly drawn rows of a file), with their study labels;
* :meth:`~CorpusSource.prepare`: the corpus aligned to the vocabulary, normalised and (with
  study labels) standardised per study, as a :class:`PreparedCorpus`.

An in-memory corpus stays one array (pre-training shuffles all of it); a file is served
``chunk_size`` rows at a time (pre-training shuffles within chunks), so memory is bounded by
:class:`CorpusSizes`, never by the number of samples.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np

from gtlomics.corpus.chunks import ArrayCorpus, ChunkedCorpus
from gtlomics.corpus.h5ad import (
    MIN_CORPUS_SAMPLES,
    H5adLayout,
    check_n_samples,
    inspect_h5ad,
    read_h5ad_obs_column,
    read_h5ad_rows,
)
from gtlomics.corpus.prepared import H5adCorpus
from gtlomics.corpus.standardize import BatchStatistics, standardize_per_batch
from gtlomics.expression import (
    ExpressionTable,
    GeneVocab,
    PreprocessingConfig,
    ReadSettings,
    prepare_expression,
    read_expression,
)
from gtlomics.expression.prepare import prepare_table
from gtlomics.expression.scale import check_values
from gtlomics.expression.table import is_anndata

__all__ = [
    "CorpusSizes",
    "CorpusSource",
    "H5adSource",
    "InMemorySource",
    "PreparedCorpus",
    "open_corpus",
]


@dataclass(frozen=True)
class CorpusSizes:
    """Row counts that bound a build's memory.

    A foundation's provenance records ``n_subsample`` (it changes the cousin tasks of any corpus
    larger than it), and all four for a streamed corpus.

    Parameters
    ----------
    chunk_size : int
        Rows read from a file at a time.
    n_subsample : int
        Most rows clustered for the cousin tasks and held in memory for the scouts.
    vocab_sample : int
        Rows of a file the gene vocabulary (and the input scale) is chosen on.
    max_holdout : int
        Most held-out pre-training rows of a file kept in memory.
    """

    chunk_size: int = 8192
    n_subsample: int = 20_000
    vocab_sample: int = 2_000
    max_holdout: int = 4096

    def __post_init__(self) -> None:
        _check_count("chunk_size", self.chunk_size, 1)
        _check_count("n_subsample", self.n_subsample, MIN_CORPUS_SAMPLES)
        _check_count("vocab_sample", self.vocab_sample, MIN_CORPUS_SAMPLES)
        _check_count("max_holdout", self.max_holdout, 0)

    def to_dict(self) -> dict[str, int]:
        """Plain JSON-serialisable dict."""
        return asdict(self)


@dataclass(frozen=True)
class PreparedCorpus:
    """A corpus aligned to a vocabulary and normalised, ready for cousin tasks and training.

    Attributes
    ----------
    chunks : ChunkedCorpus
        The prepared rows, chunk by chunk (cousin tasks subsample them).
    training_data : ndarray or ChunkedCorpus
        What pre-training reads: the whole array in memory, or the chunks of a file.
    present : ndarray
        ``bool (G,)``: vocabulary genes found in the corpus.
    input_scale : {"counts", "log1p", "real"}
        The resolved input scale.
    """

    chunks: ChunkedCorpus
    training_data: np.ndarray | ChunkedCorpus
    present: np.ndarray
    input_scale: Literal["counts", "log1p", "real"]


class CorpusSource(Protocol):
    """An unlabelled corpus a foundation is built from (see the module notes)."""

    n_samples: int
    synthetic: bool
    streamed: bool

    def describe(self) -> str: ...

    def vocab_sample(
        self, n_rows: int, seed: int, chunk_size: int
    ) -> tuple[ExpressionTable, np.ndarray | None]: ...

    def prepare(
        self,
        vocab: GeneVocab,
        preprocessing: PreprocessingConfig,
        sample: ExpressionTable,
        chunk_size: int,
    ) -> PreparedCorpus: ...

    def naming_errors(self) -> AbstractContextManager[None]: ...


def open_corpus(
    corpus: Any, reading: ReadSettings | None = None, batch_key: str | None = None
) -> CorpusSource:
    """The :class:`CorpusSource` of ``corpus``: a path or backed AnnData is read from disk in
    chunks, anything else (AnnData, DataFrame, ExpressionTable) in memory.

    Raises
    ------
    ValueError
        A corpus that cannot be used: too few samples, bad values, a missing ``batch_key``
        column; an unreadable file (the message names it).
    """
    reading = reading or ReadSettings()
    if isinstance(corpus, str | os.PathLike):
        return H5adSource.open(corpus, reading, batch_key)
    if is_anndata(corpus) and corpus.isbacked:
        return H5adSource.open(corpus.filename, reading, batch_key)
    return InMemorySource.read(corpus, reading, batch_key)


@dataclass(frozen=True)
class InMemorySource:
    """A corpus held in memory: the vocabulary is chosen on every row."""

    table: ExpressionTable
    batches: np.ndarray | None
    synthetic: bool
    streamed: bool = False

    @classmethod
    def read(cls, corpus: Any, reading: ReadSettings, batch_key: str | None) -> InMemorySource:
        """Read and check ``corpus`` (AnnData, DataFrame or ExpressionTable)."""
        if isinstance(corpus, ExpressionTable):
            table = corpus
        else:
            table = read_expression(corpus, layer=reading.layer, gene_column=reading.gene_column)
        check_values(table.values, table.sample_ids, table.gene_ids)  # errors name the sample
        check_n_samples(table.shape[0], "The corpus")
        uns = getattr(corpus, "uns", None)
        synthetic = bool(uns is not None and "synthetic" in uns)
        return cls(table, _obs_batches(corpus, batch_key, table.shape[0]), synthetic)

    @property
    def n_samples(self) -> int:
        return self.table.shape[0]

    def describe(self) -> str:
        """The corpus's shape."""
        return f"corpus of {self.table.shape[0]} samples × {self.table.shape[1]} genes"

    def vocab_sample(
        self, n_rows: int, seed: int, chunk_size: int
    ) -> tuple[ExpressionTable, np.ndarray | None]:
        """Every row (in memory nothing needs bounding), with the study labels."""
        return self.table, self.batches

    def prepare(
        self,
        vocab: GeneVocab,
        preprocessing: PreprocessingConfig,
        sample: ExpressionTable,
        chunk_size: int,
    ) -> PreparedCorpus:
        """The whole corpus prepared in memory (standardised per study with labels)."""
        prepared = prepare_expression(self.table, vocab, preprocessing)
        values = prepared.values
        if self.batches is not None:
            values = standardize_per_batch(values, self.batches)
        chunks = ArrayCorpus(values, chunk_size=chunk_size, present=prepared.present)
        return PreparedCorpus(chunks, values, prepared.present, prepared.input_scale)

    @contextmanager
    def naming_errors(self) -> Iterator[None]:
        """Errors pass as they are (they name the sample)."""
        yield


@dataclass(frozen=True)
class H5adSource:
    """An ``.h5ad`` file read ``chunk_size`` rows at a time (bounded memory)."""

    layout: H5adLayout
    batches: np.ndarray | None
    streamed: bool = True

    @classmethod
    def open(
        cls, path: str | os.PathLike, reading: ReadSettings, batch_key: str | None
    ) -> H5adSource:
        """Check the file from its metadata; read the ``batch_key`` labels when asked for."""
        layout = inspect_h5ad(path, reading)
        batches = None if batch_key is None else read_h5ad_obs_column(layout, batch_key)
        return cls(layout, batches)

    @property
    def n_samples(self) -> int:
        return self.layout.n_samples

    @property
    def synthetic(self) -> bool:
        return self.layout.synthetic

    def describe(self) -> str:
        """The file name and its shape."""
        return self.layout.describe()

    def vocab_sample(
        self, n_rows: int, seed: int, chunk_size: int
    ) -> tuple[ExpressionTable, np.ndarray | None]:
        """``min(n_rows, n_samples)`` uniformly drawn rows as stored (read ``chunk_size`` at a
        time), with their study labels."""
        n_take = min(n_rows, self.n_samples)
        rows = np.sort(np.random.default_rng(seed).choice(self.n_samples, n_take, replace=False))
        table = read_h5ad_rows(self.layout, rows, chunk_size)
        return table, None if self.batches is None else self.batches[rows]

    def prepare(
        self,
        vocab: GeneVocab,
        preprocessing: PreprocessingConfig,
        sample: ExpressionTable,
        chunk_size: int,
    ) -> PreparedCorpus:
        """The file as prepared chunks; the input scale is resolved on ``sample`` and enforced
        on every chunk. With study labels, one more pass computes each study's statistics."""
        on_sample = prepare_table(sample, vocab, preprocessing, warn_duplicates=False)
        settings = replace(preprocessing, input_scale=on_sample.input_scale)
        corpus = H5adCorpus(
            self.layout.path, vocab, settings, chunk_size, reading=self.layout.reading
        )
        if self.batches is not None:
            statistics = BatchStatistics.from_chunks(corpus, self.batches)
            corpus = replace(corpus, standardization=statistics, batches=self.batches)
        return PreparedCorpus(corpus, corpus, on_sample.present, on_sample.input_scale)

    @contextmanager
    def naming_errors(self) -> Iterator[None]:
        """Re-raise a reading stage's ``ValueError`` with the file's path in front."""
        path = str(self.layout.path)
        try:
            yield
        except ValueError as error:
            if path in str(error):
                raise
            raise ValueError(f"{path}: {error}") from error


def _obs_batches(corpus: Any, batch_key: str | None, n_samples: int) -> np.ndarray | None:
    """The study label of every sample (``corpus.obs[batch_key]``), or None."""
    if batch_key is None:
        return None
    obs = getattr(corpus, "obs", None)
    if obs is None or batch_key not in obs.columns:
        columns = [] if obs is None else list(obs.columns)
        raise ValueError(
            f"batch_key={batch_key!r} needs an AnnData corpus with that obs column (columns: "
            f"{columns}); pass batch_key=None to standardise the corpus as one study."
        )
    batches = obs[batch_key].astype(str).to_numpy()
    if len(batches) != n_samples:
        raise ValueError(f"obs[{batch_key!r}] has {len(batches)} rows for {n_samples} samples.")
    return batches


def _check_count(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}.")
