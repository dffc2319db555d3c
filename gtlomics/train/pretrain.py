"""Masked-expression pre-training of an :class:`~gtlomics.nn.ExpressionEncoder`: one loop.

A fraction of the present gene tokens of each sample is replaced by the mask embedding and the
model predicts their values (MSE), as deviations from each gene's training mean. Each epoch
reports the training loss, the masked loss on fixed held-out masks, and the loss of the mean
predictor (each gene's training mean) on the same masks.

The same loop serves an in-memory array and a corpus streamed from disk
(:mod:`~gtlomics.train.pretrain_data` says how each is split, shuffled and batched), in one
process or, with ``distributed=True`` under ``torchrun``, under DistributedDataParallel: every
rank draws the same global batch and mask (pure functions of ``seed`` and the step), trains on
its slice of the rows, and the loss is weighted so that DDP's gradient average is the gradient
of the global masked MSE. All randomness (split, shuffles, masks, dropout) is a pure function of
``seed`` and the step, so a run resumed from a checkpoint ends bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from gtlomics.corpus import ChunkedCorpus
from gtlomics.nn import ExpressionEncoder, MaskedExpressionHead, set_dropout_generator
from gtlomics.train.checkpoint import save_checkpoint
from gtlomics.train.config import CheckpointConfig, PretrainConfig
from gtlomics.train.distributed import (
    DistributedContext,
    all_reduce_sum,
    load_on_every_rank,
    per_rank_checkpoint,
    process_group_context,
)
from gtlomics.train.pretrain_data import BATCH, HEAD, Batch, PretrainRows, draw_mask, pretrain_rows
from gtlomics.train.runtime import (
    autocast_for,
    child_rng,
    child_seed,
    full_precision,
    make_optimizer,
    optimizer_step,
)

__all__ = ["PretrainEpoch", "PretrainResult", "pretrain"]


@dataclass(frozen=True)
class PretrainEpoch:
    """Losses after one epoch (``holdout_loss``/``baseline_loss`` are NaN without a holdout)."""

    epoch: int
    train_loss: float
    holdout_loss: float
    baseline_loss: float


@dataclass(frozen=True)
class PretrainResult:
    """What :func:`pretrain` returns; the encoder itself is trained in place.

    ``head`` predicts each masked gene's deviation from ``gene_mean`` (the training rows' mean
    of present values, ``(G,)``): the predicted value is ``head(...) + gene_mean``, so an
    untrained model starts at the mean-predictor baseline rather than at zero.
    """

    history: tuple[PretrainEpoch, ...]
    head: MaskedExpressionHead
    gene_mean: torch.Tensor
    n_steps: int

    @property
    def final(self) -> PretrainEpoch:
        """The last epoch's record."""
        return self.history[-1]


def pretrain(
    encoder: ExpressionEncoder,
    data: np.ndarray | torch.Tensor | ChunkedCorpus,
    *,
    config: PretrainConfig,
    seed: int,
    present: np.ndarray | torch.Tensor | None = None,
    device: str | torch.device | None = None,
    max_holdout: int = 4096,
    progress: bool = False,
    checkpoint: CheckpointConfig | None = None,
    distributed: bool = False,
    compile_model: bool = False,
) -> PretrainResult:
    """Pre-train ``encoder`` in place by masked-expression modelling.

    Parameters
    ----------
    encoder : ExpressionEncoder
        Trained in place; moved to the training device.
    data : array, Tensor or ChunkedCorpus
        ``(n_samples, n_genes)`` normalised expression in the encoder's gene order: an array or
        tensor held in memory, or a :class:`~gtlomics.corpus.ChunkedCorpus` (e.g.
        :class:`~gtlomics.corpus.H5adCorpus`) streamed chunk by chunk, read ``epochs + 1``
        times, with memory bounded by one chunk plus the held-out rows.
    config : PretrainConfig
        Optimisation settings (AdamW, linear warm-up then cosine decay, gradient clipping).
    seed : int
        Root of every random choice.
    present : array or Tensor or None
        ``(n_genes,)`` or ``(n_samples, n_genes)`` presence of an array (a corpus carries its
        own); absent genes are never targets.
    device : str or torch.device, optional
        Where to train: default the tensor's device, or CPU for an array or a corpus.
    max_holdout : int
        Most held-out rows of a corpus kept in memory.
    progress : bool
        Show a tqdm progress bar (rank 0 only).
    checkpoint : CheckpointConfig or None
        Save state every ``checkpoint.every_n_steps`` steps and after the last; resume from the
        file when it
        exists (a file written by another run is refused with ``ValueError``). Under a process
        group the state is the same on every rank: rank 0 saves ``pretrain.world2.pt`` (for
        ``pretrain.pt``, 2 ranks) and every rank loads it, so its folder must be one every rank
        sees; another world size starts over.
    distributed : bool
        Join the caller's ``torch.distributed`` process group: every rank passes the same
        arguments, ``config.batch_size`` is the global batch, and every rank ends with the same
        encoder. With one rank (or no group) this is a plain single-process run.
    compile_model : bool
        Wrap the model in ``torch.compile`` (worth it on GPU for long
        runs at d_model ≥ 256; on CPU it needs a C++ compiler and minutes of compilation).

    Returns
    -------
    PretrainResult
        Per-epoch train / held-out / mean-predictor losses, the trained masked head and the
        per-gene training mean.

    Raises
    ------
    ValueError
        A corpus whose gene count differs from the encoder's, or a checkpoint from another run.
    RuntimeError
        Under a process group, ranks that resumed from different checkpoints (a folder that is
        not shared between the nodes): raised on every rank before any step.
    """
    _check_genes(data, encoder)
    rows = pretrain_rows(data, present, config, seed, _device(device), max_holdout)
    context = process_group_context(join=distributed)
    encoder.to(rows.device)
    trainer = _Pretrainer(encoder, rows, config, seed, context, compile_model)
    if context.sharded:
        checkpoint = per_rank_checkpoint(checkpoint, f"world{context.world_size}")
    fingerprint = _fingerprint(config, seed, rows, encoder, context)
    refused = (
        "Another rank refused the pre-training checkpoint (written by a different run): delete "
        "the pretrain.world*.pt file in the checkpoint folder, or use another folder."
    )
    if state := load_on_every_rank(checkpoint, fingerprint, context, rows.device, refused):
        trainer.load_state_dict(state)
    _check_same_step(trainer, context, checkpoint)
    try:
        _train(trainer, checkpoint, fingerprint, progress and context.is_main)
    finally:
        rows.close()  # a streamed corpus's open file
        set_dropout_generator(encoder, None)
    return PretrainResult(tuple(trainer.history), trainer.head, rows.gene_mean, trainer.step)


def _train(
    trainer: _Pretrainer, checkpoint: CheckpointConfig | None, fingerprint: str, show: bool
) -> None:
    """Take every step left, saving to ``checkpoint`` (rank 0) when due and after the last."""
    with tqdm(total=trainer.total_steps, initial=trainer.step, disable=not show) as bar:
        while trainer.step < trainer.total_steps:
            if (record := trainer.advance()) is not None:
                bar.set_postfix(holdout=f"{record.holdout_loss:.4f}")
            bar.update(1)
            last = trainer.step == trainer.total_steps
            if (
                checkpoint is not None
                and trainer.context.is_main
                and (checkpoint.due(trainer.step) or last)
            ):
                save_checkpoint(checkpoint.path, trainer.state_dict(fingerprint))


class _MaskedModel(torch.nn.Module):
    """Encoder + masked head in one module, so DDP sees the whole forward pass."""

    def __init__(self, encoder: ExpressionEncoder, head: torch.nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, values, present, mask) -> torch.Tensor:
        features = self.encoder.forward_features(values, present, mask)
        return self.head(self.encoder.gene_features(features))  # (B, G)


class _Pretrainer:
    """State of one pre-training run; one short method per step."""

    def __init__(
        self,
        encoder: ExpressionEncoder,
        rows: PretrainRows,
        config: PretrainConfig,
        seed: int,
        context: DistributedContext,
        compile_model: bool,
    ) -> None:
        self.encoder, self.rows, self.config, self.seed = encoder, rows, config, seed
        self.context = context
        self.head = MaskedExpressionHead(encoder.config.d_model, seed=child_seed(seed, HEAD))
        self.head.to(rows.device)
        if config.standardize_inputs:
            encoder.set_gene_standardization(rows.gene_mean, rows.gene_std)
        self.model = _MaskedModel(encoder, self.head)
        if context.sharded:
            self.model = DistributedDataParallel(self.model)
        if compile_model:  # compiles the forward; DDP's bucketed all-reduce stays eager
            self.model = torch.compile(self.model)
        self.total_steps = rows.steps_per_epoch * config.epochs
        self.optimizer, self.scheduler = _adamw_with_schedule(
            [*encoder.parameters(), *self.head.parameters()], config, self.total_steps
        )
        self.dropout_generator = torch.Generator(device=rows.device)
        set_dropout_generator(encoder, self.dropout_generator)
        self.step, self.epoch_loss_sum, self.history = 0, 0.0, []

    def masked_loss(self, values, present, mask) -> torch.Tensor:
        with autocast_for(self.rows.device, self.config.autocast_bf16):
            pred = self.model(values, present, mask)
        return _masked_mse(pred, values - self.rows.gene_mean, mask)

    def train_step(self, batch: Batch) -> float:
        mask = draw_mask(
            child_rng(self.seed, BATCH, *batch.key), batch.present, self.config.mask_fraction
        )
        self.model.train()
        if self.context.sharded:
            return self._sharded_step(batch, mask)
        self.dropout_generator.manual_seed(child_seed(self.seed, BATCH, *batch.key))
        loss = self.masked_loss(batch.values, batch.present, mask)
        return self._optimizer_step(loss)

    def _sharded_step(self, batch: Batch, mask: torch.Tensor) -> float:
        """This rank's slice of the global batch, weighted so that the ranks' average gradient
        is that of the global masked MSE."""
        rank, world_size = self.context.rank, self.context.world_size
        n_masked = mask.sum().clamp(min=1)  # over the global batch, same on every rank
        values, present = batch.values[rank::world_size], batch.present[rank::world_size]
        mask = mask[rank::world_size]
        self.dropout_generator.manual_seed(child_seed(self.seed, BATCH, *batch.key, rank))
        with autocast_for(self.rows.device, self.config.autocast_bf16):
            pred = self.model(values, present, mask)
        sq = (full_precision(pred) - (values - self.rows.gene_mean)).pow(2) * mask
        loss = sq.sum() * (world_size / n_masked)  # DDP averages: Σ_ranks = global MSE
        self._optimizer_step(loss)
        global_loss = (loss.detach() / world_size).reshape(1)
        all_reduce_sum([global_loss], self.context)
        return float(global_loss)

    def _optimizer_step(self, loss: torch.Tensor) -> float:
        params = [*self.encoder.parameters(), *self.head.parameters()]
        optimizer_step(self.optimizer, loss, params, self.config.grad_clip)
        self.scheduler.step()
        return float(loss.detach())

    def advance(self) -> PretrainEpoch | None:
        """Take the next optimiser step; returns the epoch's record when the step ends one."""
        epoch, index = divmod(self.step, self.rows.steps_per_epoch)
        self.epoch_loss_sum += self.train_step(self.rows.batch(epoch, index))
        self.step += 1
        if index < self.rows.steps_per_epoch - 1:
            return None
        record = self.evaluate(epoch, self.epoch_loss_sum / self.rows.steps_per_epoch)
        self.history.append(record)
        self.epoch_loss_sum = 0.0
        return record

    @torch.no_grad()
    def evaluate(self, epoch: int, train_loss: float) -> PretrainEpoch:
        holdout = self.rows.holdout
        if len(holdout.values) == 0:
            return PretrainEpoch(epoch, train_loss, math.nan, math.nan)
        self.model.eval()
        losses, baselines, counts = [], [], []
        for start in range(0, len(holdout.values), self.config.batch_size):
            part = slice(start, start + self.config.batch_size)
            values, mask = holdout.values[part], holdout.mask[part]
            losses.append(float(self.masked_loss(values, holdout.present[part], mask)))
            baseline = self.rows.gene_mean.expand_as(values)
            baselines.append(float(_masked_mse(baseline, values, mask)))
            counts.append(int(mask.sum()))
        weights = np.asarray(counts, dtype=float) / max(1, sum(counts))
        return PretrainEpoch(
            epoch, train_loss, float(np.dot(weights, losses)), float(np.dot(weights, baselines))
        )

    def state_dict(self, fingerprint: str) -> dict:
        return {
            "fingerprint": fingerprint,
            "encoder": self.encoder.state_dict(),
            "head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "epoch_loss_sum": self.epoch_loss_sum,
            "history": [asdict(record) for record in self.history],
        }

    def load_state_dict(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch_loss_sum = state["step"], state["epoch_loss_sum"]
        self.history = [PretrainEpoch(**record) for record in state["history"]]


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    sq = (full_precision(pred) - target).pow(2) * mask
    return sq.sum() / mask.sum().clamp(min=1)


def _lr_lambda(total_steps: int, warmup_fraction: float):
    warmup = max(1, math.ceil(total_steps * warmup_fraction)) if warmup_fraction > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _adamw_with_schedule(params, config: PretrainConfig, total_steps: int):
    """AdamW with linear warm-up then cosine decay over ``total_steps``."""
    optimizer = make_optimizer(params, "adamw", lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total_steps, config.warmup_fraction)
    )
    return optimizer, scheduler


def _device(device: str | torch.device | None) -> torch.device | None:
    return None if device is None else torch.device(device)


def _check_genes(data, encoder: ExpressionEncoder) -> None:
    n_genes = data.n_genes if hasattr(data, "chunks") else data.shape[-1]
    if n_genes != encoder.config.n_genes:
        raise ValueError(
            f"The corpus has {n_genes} genes but the encoder expects "
            f"{encoder.config.n_genes}; prepare it with the encoder's GeneVocab."
        )


def _fingerprint(
    config: PretrainConfig,
    seed: int,
    rows: PretrainRows,
    encoder: ExpressionEncoder,
    context: DistributedContext,
) -> str:
    """What a checkpoint must match to resume this run."""
    world = f"|world_size={context.world_size}" if context.sharded else ""
    return f"pretrain|{config!r}|seed={seed}|{rows.signature()}|{encoder.config!r}{world}"


def _check_same_step(
    trainer: _Pretrainer, context: DistributedContext, checkpoint: CheckpointConfig | None
) -> None:
    """Under a process group, raise on every rank unless all ranks resumed at the same step."""
    if not context.sharded:
        return
    bounds = torch.tensor(
        [trainer.step, -trainer.step], dtype=torch.int64, device=trainer.rows.device
    )
    torch.distributed.all_reduce(bounds, op=torch.distributed.ReduceOp.MAX)
    highest, lowest = int(bounds[0]), -int(bounds[1])
    if highest != lowest:
        path = None if checkpoint is None else checkpoint.path
        raise RuntimeError(
            f"The ranks resumed pre-training from different steps ({lowest} to {highest}): not "
            f"every rank sees the checkpoint {path}. Put the checkpoint folder on a filesystem "
            f"every rank sees (shared storage across nodes), or delete {path} to start over."
        )
