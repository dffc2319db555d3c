"""An on-disk ``.h5ad`` corpus served chunk by chunk for streaming pre-training."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gtlomics.expression import GeneVocab, PreprocessingConfig, iter_prepared_chunks
from gtlomics.train.streaming import CorpusChunk

__all__ = ["H5adCorpus"]


def _n_rows(path: Path, layer: str | None) -> int:
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"No .h5ad file at {path}.")
    with h5py.File(path, "r") as handle:
        matrix = handle["X"] if layer is None else handle["layers"][layer]
        shape = matrix.shape if isinstance(matrix, h5py.Dataset) else matrix.attrs["shape"]
        return int(shape[0])


@dataclass(frozen=True)
class H5adCorpus:
    """A ``.h5ad`` file read ``chunk_size`` rows at a time, aligned to ``vocab`` and normalised.

    Each pass re-opens the file and reads it slice by slice through
    :func:`gtlomics.expression.iter_prepared_chunks` (dense or CSR ``X`` or a layer), so memory
    stays near ``chunk_size × len(vocab)`` floats whatever the number of samples. Satisfies
    :class:`gtlomics.train.streaming.ChunkedCorpus`.

    Examples
    --------
    >>> corpus = H5adCorpus("corpus.h5ad", vocab, chunk_size=8192)  # doctest: +SKIP
    >>> pretrain_streaming(encoder, corpus, config=PretrainConfig(), seed=0)  # doctest: +SKIP
    """

    path: str | Path
    vocab: GeneVocab
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    chunk_size: int = 4096

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}.")

    @property
    def n_samples(self) -> int:
        return _n_rows(Path(self.path), self.preprocessing.layer)

    @property
    def n_genes(self) -> int:
        return len(self.vocab.genes)

    def chunks(self) -> Iterator[CorpusChunk]:
        """Prepared chunks in file order."""
        for chunk in iter_prepared_chunks(
            self.path, self.vocab, self.preprocessing, chunk_size=self.chunk_size
        ):
            yield CorpusChunk(chunk.start, chunk.expression.values, chunk.expression.present)
