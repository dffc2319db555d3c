"""Corpora for foundation builds: in memory or on disk, served in chunks of prepared rows.

* :mod:`~gtlomics.corpus.h5ad` — every ``.h5ad`` read (metadata checks, row slices, samples)
* :mod:`~gtlomics.corpus.chunks` — :class:`ChunkedCorpus`, the data contract of pre-training
* :mod:`~gtlomics.corpus.prepared` — :class:`H5adCorpus`, :func:`iter_prepared_chunks`
* :mod:`~gtlomics.corpus.standardize` — per-study standardisation
* :mod:`~gtlomics.corpus.cousins` — cousin tasks on a bounded subsample
* :mod:`~gtlomics.corpus.source` — :func:`open_corpus`: what the build pipeline reads through
"""

from gtlomics.corpus.chunks import ArrayCorpus, ChunkedCorpus, CorpusChunk, read_rows
from gtlomics.corpus.cousins import SubsampledCousinTasks, assign_to_centroids, subsample_rows
from gtlomics.corpus.h5ad import MIN_CORPUS_SAMPLES, H5adLayout, inspect_h5ad
from gtlomics.corpus.prepared import H5adCorpus, PreparedChunk, iter_prepared_chunks
from gtlomics.corpus.source import (
    CorpusSizes,
    CorpusSource,
    H5adSource,
    InMemorySource,
    PreparedCorpus,
    open_corpus,
)
from gtlomics.corpus.standardize import MIN_STUDY_STD, BatchStatistics, standardize_per_batch

__all__ = [
    "MIN_CORPUS_SAMPLES",
    "MIN_STUDY_STD",
    "ArrayCorpus",
    "BatchStatistics",
    "ChunkedCorpus",
    "CorpusChunk",
    "CorpusSizes",
    "CorpusSource",
    "H5adCorpus",
    "H5adLayout",
    "H5adSource",
    "InMemorySource",
    "PreparedChunk",
    "PreparedCorpus",
    "SubsampledCousinTasks",
    "assign_to_centroids",
    "inspect_h5ad",
    "iter_prepared_chunks",
    "open_corpus",
    "read_rows",
    "standardize_per_batch",
    "subsample_rows",
]
