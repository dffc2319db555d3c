"""Masked-expression pre-training from a corpus read chunk by chunk (bounded memory).

:func:`pretrain_streaming` never holds more than one chunk of the corpus (plus a capped held-out
set) in memory, so it pre-trains on corpora larger than RAM, e.g. a backed ``.h5ad`` read through
:class:`gtlomics.scale.H5adCorpus`. The objective, the optimiser (AdamW, warm-up then cosine) and
the loss records are those of :func:`~gtlomics.train.pretrain`; what differs is the order:

* pass 0 streams the corpus once for the per-gene mean and standard deviation of the training
  rows (float64 sums) and collects the held-out rows (``holdout_fraction`` of the corpus drawn
  from ``seed``, at most ``max_holdout`` rows);
* each epoch streams the chunks in corpus order and shuffles the training rows *within* each
  chunk (a seeded permutation per epoch and chunk); the last batch of a chunk may be short.
  On-disk order therefore matters more than for in-memory training: shuffle the file once if it is
  sorted by study or tissue.

On CUDA each chunk is copied to pinned memory and moved with ``non_blocking=True``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from gtlomics.nn import ExpressionEncoder, MaskedExpressionHead, set_dropout_generator
from gtlomics.train.config import PretrainConfig
from gtlomics.train.pretrain import (
    MIN_GENE_STD,
    PretrainEpoch,
    PretrainResult,
    _adamw_with_schedule,
    _draw_mask,
    _masked_mse,
    _optimizer_step,
)
from gtlomics.train.runtime import autocast_for, child_rng, child_seed

__all__ = ["ArrayCorpus", "ChunkedCorpus", "CorpusChunk", "GeneStatistics", "pretrain_streaming"]

_SPLIT, _HEAD, _HOLDOUT_MASK, _EPOCH, _BATCH = range(5)


@dataclass(frozen=True)
class CorpusChunk:
    """Rows ``start:start + len(values)`` of a corpus: ``float32 (n, G)`` values, presence."""

    start: int
    values: np.ndarray
    present: np.ndarray  # bool (G,) or (n, G)


class ChunkedCorpus(Protocol):
    """A re-iterable corpus: ``chunks()`` yields rows in a fixed order, ``chunk_size`` at a time.

    Every chunk but the last has exactly ``chunk_size`` rows.
    """

    n_samples: int
    n_genes: int
    chunk_size: int

    def chunks(self) -> Iterator[CorpusChunk]: ...


@dataclass(frozen=True)
class ArrayCorpus:
    """An in-memory ``(n_samples, n_genes)`` array served in chunks (tests, small corpora).

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
        present = np.ones(self.n_genes, bool) if self.present is None else self.present
        for start in range(0, self.n_samples, self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            chunk_present = present if present.ndim == 1 else present[rows]
            yield CorpusChunk(start, np.asarray(self.values[rows], np.float32), chunk_present)


@dataclass(frozen=True)
class GeneStatistics:
    """Per-gene mean and standard deviation of the present training values, and the holdout."""

    mean: np.ndarray
    std: np.ndarray
    holdout_values: np.ndarray
    holdout_present: np.ndarray


def _holdout_rows(n_samples: int, fraction: float, cap: int, seed: int) -> np.ndarray:
    n_holdout = min(round(n_samples * fraction), cap, n_samples - 1) if fraction > 0 else 0
    if fraction > 0 and n_samples > 1:
        n_holdout = max(n_holdout, 1)
    return np.sort(child_rng(seed, _SPLIT).choice(n_samples, size=n_holdout, replace=False))


def _chunk_masks(chunk: CorpusChunk, holdout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(n,)`` held-out rows of ``chunk`` and the ``(n, G)`` presence of its rows."""
    n_rows = chunk.values.shape[0]
    held = np.isin(np.arange(chunk.start, chunk.start + n_rows), holdout)
    present = np.broadcast_to(chunk.present, chunk.values.shape)
    return held, present


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


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class _StreamingPretrainer:
    """One streaming pre-training run; one short method per step."""

    def __init__(self, encoder, corpus, config: PretrainConfig, seed: int, device, max_holdout):
        self.encoder, self.corpus, self.config, self.seed = encoder, corpus, config, seed
        self.device = device
        self.holdout = _holdout_rows(corpus.n_samples, config.holdout_fraction, max_holdout, seed)
        stats = gene_statistics(corpus, self.holdout)
        self.gene_mean = torch.from_numpy(stats.mean).to(device)
        if config.standardize_inputs:
            encoder.set_gene_standardization(self.gene_mean, torch.from_numpy(stats.std).to(device))
        self.holdout_values = _to_device(stats.holdout_values, device)
        self.holdout_present = _to_device(stats.holdout_present, device)
        self.head = MaskedExpressionHead(encoder.config.d_model, seed=child_seed(seed, _HEAD))
        self.head.to(device)
        params = [*encoder.parameters(), *self.head.parameters()]
        self.steps_per_epoch = self._count_steps()
        self.total_steps = self.steps_per_epoch * config.epochs
        self.optimizer, self.scheduler = _adamw_with_schedule(params, config, self.total_steps)
        self.dropout_generator = torch.Generator(device=device)
        set_dropout_generator(encoder, self.dropout_generator)

    def _count_steps(self) -> int:
        """Batches per epoch, from the chunk boundaries (known without reading the corpus)."""
        n_samples = self.corpus.n_samples
        bounds = [*range(0, n_samples, self.corpus.chunk_size), n_samples]
        n_held = np.diff(np.searchsorted(self.holdout, bounds))
        n_train = np.diff(bounds) - n_held
        return int(sum(math.ceil(n / self.config.batch_size) for n in n_train))

    def masked_loss(self, values, present, mask) -> torch.Tensor:
        with autocast_for(self.device, self.config.autocast_bf16):
            features = self.encoder.forward_features(values, present, mask)
            pred = self.head(self.encoder.gene_features(features))  # (B, G)
        return _masked_mse(pred, values - self.gene_mean, mask)

    def train_step(self, values, present, key: tuple[int, ...]) -> float:
        mask = _draw_mask(child_rng(self.seed, _BATCH, *key), present, self.config.mask_fraction)
        self.dropout_generator.manual_seed(child_seed(self.seed, _BATCH, *key))
        self.encoder.train()
        self.head.train()
        loss = self.masked_loss(values.masked_fill(~present, 0.0), present, mask)
        return _optimizer_step(loss, self)

    def train_epoch(self, epoch: int, bar) -> float:
        loss_sum = 0.0
        for index, chunk in enumerate(self.corpus.chunks()):
            held, present = _chunk_masks(chunk, self.holdout)
            rows = np.flatnonzero(~held)
            rows = rows[child_rng(self.seed, _EPOCH, epoch, index).permutation(len(rows))]
            values = _to_device(chunk.values[rows], self.device)
            chunk_present = _to_device(present[rows], self.device)
            for batch, start in enumerate(range(0, len(rows), self.config.batch_size)):
                part = slice(start, start + self.config.batch_size)
                loss_sum += self.train_step(
                    values[part], chunk_present[part], (epoch, index, batch)
                )
                bar.update(1)
        return loss_sum / max(self.steps_per_epoch, 1)

    @torch.no_grad()
    def evaluate(self, epoch: int, train_loss: float) -> PretrainEpoch:
        if len(self.holdout) == 0:
            return PretrainEpoch(epoch, train_loss, math.nan, math.nan)
        self.encoder.eval()
        self.head.eval()
        present = self.holdout_present
        values = self.holdout_values.masked_fill(~present, 0.0)
        mask = _draw_mask(child_rng(self.seed, _HOLDOUT_MASK), present, self.config.mask_fraction)
        losses, baselines, counts = [], [], []
        for start in range(0, len(values), self.config.batch_size):
            part = slice(start, start + self.config.batch_size)
            losses.append(float(self.masked_loss(values[part], present[part], mask[part])))
            baseline = self.gene_mean.expand_as(values[part])
            baselines.append(float(_masked_mse(baseline, values[part], mask[part])))
            counts.append(int(mask[part].sum()))
        weights = np.asarray(counts, dtype=float) / max(1, sum(counts))
        return PretrainEpoch(
            epoch, train_loss, float(np.dot(weights, losses)), float(np.dot(weights, baselines))
        )


def pretrain_streaming(
    encoder: ExpressionEncoder,
    corpus: ChunkedCorpus,
    *,
    config: PretrainConfig,
    seed: int,
    device: str | torch.device = "cpu",
    max_holdout: int = 4096,
    progress: bool = False,
) -> PretrainResult:
    """Pre-train ``encoder`` in place on a corpus streamed chunk by chunk.

    Parameters
    ----------
    encoder : ExpressionEncoder
        Trained in place; moved to ``device``.
    corpus : ChunkedCorpus
        Re-iterable chunks of log1p-normalised values in the encoder's gene order, e.g.
        :class:`ArrayCorpus` or :class:`gtlomics.scale.H5adCorpus`. Read ``epochs + 1`` times.
    config : PretrainConfig
        As for :func:`~gtlomics.train.pretrain`; ``holdout_fraction`` is capped at
        ``max_holdout`` rows (they stay in memory).
    seed : int
        Root of every random choice (holdout, shuffles, masks, dropout, head init).
    device : str or torch.device
        Where to train; chunks are moved there one at a time.
    max_holdout : int
        Most held-out rows kept in memory for the per-epoch held-out loss.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    PretrainResult
        Per-epoch losses, the trained masked head and the per-gene training mean.

    Notes
    -----
    Peak memory is about one chunk (``chunk_size × n_genes`` float32 plus presence) plus the
    held-out rows plus the model's activations for one batch, whatever ``n_samples`` is.
    """
    if corpus.n_genes != encoder.config.n_genes:
        raise ValueError(
            f"The corpus has {corpus.n_genes} genes but the encoder expects "
            f"{encoder.config.n_genes}; prepare it with the encoder's GeneVocab."
        )
    device = torch.device(device)
    encoder.to(device)
    trainer = _StreamingPretrainer(encoder, corpus, config, seed, device, max_holdout)
    history = []
    with tqdm(total=trainer.total_steps, disable=not progress) as bar:
        for epoch in range(config.epochs):
            train_loss = trainer.train_epoch(epoch, bar)
            history.append(trainer.evaluate(epoch, train_loss))
    set_dropout_generator(encoder, None)
    return PretrainResult(tuple(history), trainer.head, trainer.gene_mean, trainer.total_steps)
