"""The rows pre-training reads: an in-memory array, or a chunked corpus streamed from disk.

:func:`pretrain_rows` wraps what :func:`~gtlomics.train.pretrain` is given in a
:class:`PretrainRows`: the held-out rows (with their fixed masks), the per-gene statistics of
the training rows, and ``batch(epoch, index)``, the ``index``-th batch of an epoch. Batches are a
pure function of ``seed``, the epoch and the index, so a run resumed at any step draws what an
uninterrupted one would.

* :class:`TensorRows` (an array or tensor): the split is a seeded permutation, each epoch a
  seeded permutation of all training rows. Batch keys are ``(epoch, batch)``.
* :class:`StreamedRows` (a :class:`~gtlomics.corpus.ChunkedCorpus`): the held-out rows
  (``holdout_fraction`` of the corpus, at most ``max_holdout``) and the statistics come from one
  float64 pass; each epoch streams the chunks in corpus order and shuffles the training rows
  *within* each chunk, so on-disk order matters more (shuffle a file sorted by study once). Only
  one chunk is in memory; on CUDA it is copied through pinned memory. Batch keys are
  ``(epoch, chunk, batch)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from gtlomics.corpus import ChunkedCorpus, CorpusChunk
from gtlomics.train.config import PretrainConfig
from gtlomics.train.runtime import child_rng, to_tensor

__all__ = [
    "MIN_GENE_STD",
    "Batch",
    "GeneStatistics",
    "Holdout",
    "PretrainRows",
    "StreamedRows",
    "TensorRows",
    "draw_mask",
    "gene_statistics",
    "pretrain_rows",
]

SPLIT, HEAD, HOLDOUT_MASK, EPOCH, BATCH = range(5)
"""Keys of the child random streams of one pre-training run (see :func:`child_rng`)."""
MIN_GENE_STD = 1e-3


@dataclass(frozen=True)
class Batch:
    """One training batch: its random-stream key, values (absent entries 0) and presence."""

    key: tuple[int, ...]
    values: torch.Tensor
    present: torch.Tensor


@dataclass(frozen=True)
class Holdout:
    """The held-out rows and the masks they are scored on (drawn once per run)."""

    values: torch.Tensor
    present: torch.Tensor
    mask: torch.Tensor


class PretrainRows(Protocol):
    """What the pre-training loop reads (see the module notes)."""

    device: torch.device
    steps_per_epoch: int
    gene_mean: torch.Tensor
    gene_std: torch.Tensor
    holdout: Holdout

    def batch(self, epoch: int, index: int) -> Batch: ...

    def signature(self) -> str: ...

    def close(self) -> None: ...


def draw_mask(rng: np.random.Generator, present: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mask each present entry with probability ``fraction`` (absent ones have no target)."""
    draw = torch.from_numpy(rng.random(tuple(present.shape)) < fraction).to(present.device)
    return draw & present


def pretrain_rows(
    data: np.ndarray | torch.Tensor | ChunkedCorpus,
    present: np.ndarray | torch.Tensor | None,
    config: PretrainConfig,
    seed: int,
    device: torch.device | None,
    max_holdout: int,
) -> TensorRows | StreamedRows:
    """:class:`StreamedRows` for a chunked corpus, :class:`TensorRows` for an array."""
    if hasattr(data, "chunks"):
        return StreamedRows(data, config, seed, device or torch.device("cpu"), max_holdout)
    values = to_tensor(data)
    if device is not None:
        values = values.to(device)
    return TensorRows(values, present, config, seed)


class TensorRows:
    """An in-memory corpus on one device; epochs shuffle all training rows."""

    def __init__(self, values: torch.Tensor, present, config: PretrainConfig, seed: int) -> None:
        self.config, self.seed, self.device = config, seed, values.device
        self.checksum = f"shape={tuple(values.shape)}|sum={float(values.double().sum())!r}"
        self.present = _presence(present, values)
        self.values = values.masked_fill(~self.present, 0.0)  # absent entries carry no value
        self.train_rows, holdout_rows = _split_rows(len(values), config.holdout_fraction, seed)
        self.steps_per_epoch = math.ceil(len(self.train_rows) / config.batch_size)
        self.gene_mean, self.gene_std = self._statistics()
        rows = torch.as_tensor(holdout_rows, device=self.device, dtype=torch.long)
        mask = draw_mask(child_rng(seed, HOLDOUT_MASK), self.present[rows], config.mask_fraction)
        self.holdout = Holdout(self.values[rows], self.present[rows], mask)
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its shuffled rows)

    def _statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        train = torch.as_tensor(self.train_rows, device=self.device, dtype=torch.long)
        present = self.present[train]
        n_present = present.sum(0).clamp(min=1)
        mean = (self.values[train] * present).sum(0) / n_present
        sq_dev = ((self.values[train] - mean) * present).pow(2).sum(0)
        return mean, (sq_dev / n_present).sqrt().clamp(min=MIN_GENE_STD)

    def batch(self, epoch: int, index: int) -> Batch:
        """Batch ``index`` of a seeded permutation of the training rows (drawn once an epoch)."""
        if self._order is None or self._order[0] != epoch:
            shuffle = child_rng(self.seed, EPOCH, epoch).permutation(len(self.train_rows))
            self._order = (epoch, self.train_rows[shuffle])
        order = self._order[1]
        size = self.config.batch_size
        rows = torch.as_tensor(order[index * size : (index + 1) * size], device=self.device)
        return Batch((epoch, index), self.values[rows], self.present[rows])

    def signature(self) -> str:
        """The data's shape and checksum."""
        return self.checksum

    def close(self) -> None:
        """Nothing to release (the rows are in memory)."""


class StreamedRows:
    """A chunked corpus read one chunk at a time; epochs shuffle within chunks."""

    def __init__(
        self,
        corpus: ChunkedCorpus,
        config: PretrainConfig,
        seed: int,
        device: torch.device,
        max_holdout: int,
    ) -> None:
        self.corpus, self.config, self.seed, self.device = corpus, config, seed, device
        self.max_holdout = max_holdout
        self.held = _holdout_rows(corpus.n_samples, config.holdout_fraction, max_holdout, seed)
        self.gene_mean, self.gene_std, self.holdout = self._statistics()
        self.chunk_starts = self._chunk_step_offsets()
        self.steps_per_epoch = int(self.chunk_starts[-1])
        self._stream: Iterator[CorpusChunk] | None = None
        self._stream_epoch, self._next_index, self._loaded = -1, 0, None

    def _statistics(self) -> tuple[torch.Tensor, torch.Tensor, Holdout]:
        stats = gene_statistics(self.corpus, self.held)
        present = _to_device(stats.holdout_present, self.device)
        values = _to_device(stats.holdout_values, self.device)
        mask = draw_mask(child_rng(self.seed, HOLDOUT_MASK), present, self.config.mask_fraction)
        holdout = Holdout(values.masked_fill(~present, 0.0), present, mask)
        mean = torch.from_numpy(stats.mean).to(self.device)
        return mean, torch.from_numpy(stats.std).to(self.device), holdout

    def _chunk_step_offsets(self) -> np.ndarray:
        """First step of each chunk in an epoch, and the epoch's length last (no reading)."""
        n_samples = self.corpus.n_samples
        bounds = [*range(0, n_samples, self.corpus.chunk_size), n_samples]
        n_train = np.diff(bounds) - np.diff(np.searchsorted(self.held, bounds))
        steps = [math.ceil(n / self.config.batch_size) for n in n_train]
        return np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)

    def batch(self, epoch: int, index: int) -> Batch:
        """Batch ``index`` of the epoch: from the chunk it falls in, read when first needed."""
        chunk_index = int(np.searchsorted(self.chunk_starts, index, side="right")) - 1
        values, present = self._chunk(epoch, chunk_index)
        within = index - int(self.chunk_starts[chunk_index])
        part = slice(within * self.config.batch_size, (within + 1) * self.config.batch_size)
        batch_values = values[part].masked_fill(~present[part], 0.0)
        return Batch((epoch, chunk_index, within), batch_values, present[part])

    def _chunk(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The shuffled training rows of chunk ``index`` in ``epoch``, on the device."""
        if self._loaded is not None and self._loaded[:2] == (epoch, index):
            return self._loaded[2:]
        if self._stream is None or self._stream_epoch != epoch or self._next_index > index:
            self.close()
            self._stream = self.corpus.chunks()
            self._stream_epoch, self._next_index = epoch, 0
        chunk = self._next_chunk(index)
        held, present = _chunk_masks(chunk, self.held)
        rows = np.flatnonzero(~held)
        rows = rows[child_rng(self.seed, EPOCH, epoch, index).permutation(len(rows))]
        self._loaded = (
            epoch,
            index,
            _to_device(chunk.values[rows], self.device),
            _to_device(present[rows], self.device),
        )
        return self._loaded[2:]

    def _next_chunk(self, index: int) -> CorpusChunk:
        for chunk in self._stream:
            self._next_index += 1
            if self._next_index - 1 == index:
                return chunk
        raise IndexError(f"The corpus has no chunk {index}; it changed while training.")

    def signature(self) -> str:
        """The corpus's signature and the held-out cap."""
        return f"{self.corpus.signature()}|max_holdout={self.max_holdout}"

    def close(self) -> None:
        """Close the file a pass left open (the chunk stream stops at the last step)."""
        getattr(self._stream, "close", lambda: None)()
        self._stream = None


@dataclass(frozen=True)
class GeneStatistics:
    """Per-gene mean and standard deviation of the present training values, and the holdout."""

    mean: np.ndarray
    std: np.ndarray
    holdout_values: np.ndarray
    holdout_present: np.ndarray


def gene_statistics(corpus: ChunkedCorpus, holdout: np.ndarray) -> GeneStatistics:
    """One pass: float64 per-gene sums over present training entries; collect held-out rows."""
    total = np.zeros(corpus.n_genes)
    total_sq = np.zeros(corpus.n_genes)
    count = np.zeros(corpus.n_genes)
    held_values, held_present = [], []
    for chunk in corpus.chunks():
        held, present = _chunk_masks(chunk, holdout)
        train_values = np.where(present[~held], chunk.values[~held], 0.0).astype(np.float64)
        total += train_values.sum(0)
        total_sq += (train_values**2).sum(0)
        count += present[~held].sum(0)
        held_values.append(chunk.values[held])
        held_present.append(present[held])
    n_present = np.maximum(count, 1)
    mean = total / n_present
    std = np.sqrt(np.maximum(total_sq / n_present - mean**2, 0.0))
    return GeneStatistics(
        mean.astype(np.float32),
        np.maximum(std, MIN_GENE_STD).astype(np.float32),
        np.concatenate(held_values).astype(np.float32),
        np.concatenate(held_present),
    )


def _presence(present, values: torch.Tensor) -> torch.Tensor:
    if present is None:
        return torch.ones(values.shape, dtype=torch.bool, device=values.device)
    return torch.as_tensor(present, dtype=torch.bool).to(values.device).expand(values.shape)


def _n_holdout(n_samples: int, fraction: float, cap: int | None = None) -> int:
    """Held-out rows: ``fraction`` of them (at most ``cap``), at least one and never all."""
    if fraction <= 0:
        return 0
    n_holdout = min(round(n_samples * fraction), n_samples - 1, *([] if cap is None else [cap]))
    return max(n_holdout, 1) if n_samples > 1 else n_holdout


def _split_rows(n_samples: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = child_rng(seed, SPLIT).permutation(n_samples)
    n_holdout = _n_holdout(n_samples, fraction)
    return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])


def _holdout_rows(n_samples: int, fraction: float, cap: int, seed: int) -> np.ndarray:
    n_holdout = _n_holdout(n_samples, fraction, cap)
    return np.sort(child_rng(seed, SPLIT).choice(n_samples, size=n_holdout, replace=False))


def _chunk_masks(chunk: CorpusChunk, holdout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(n,)`` held-out rows of ``chunk`` and the ``(n, G)`` presence of its rows."""
    n_rows = chunk.values.shape[0]
    held = np.isin(np.arange(chunk.start, chunk.start + n_rows), holdout)
    return held, np.broadcast_to(chunk.present, chunk.values.shape)


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
