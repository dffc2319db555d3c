"""Masked-expression pre-training of an :class:`~gtlomics.nn.ExpressionEncoder`.

A fraction of the present gene tokens of each sample is replaced by the mask embedding and the
model predicts their values (MSE), as deviations from each gene's training mean. Samples are
split once into training and held-out rows; each epoch reports the training loss, the masked loss
on fixed held-out masks, and the loss of the mean predictor (each gene's training mean) on the
same held-out masks.

All randomness (split, shuffles, masks, dropout) is a pure function of ``seed`` and the step, so a
run resumed from a checkpoint ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from gtlomics.nn import ExpressionEncoder, MaskedExpressionHead, set_dropout_generator
from gtlomics.train.checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
from gtlomics.train.config import CheckpointConfig, PretrainConfig
from gtlomics.train.runtime import autocast_for, child_rng, child_seed, full_precision, to_tensor

__all__ = ["PretrainConfig", "PretrainEpoch", "PretrainResult", "pretrain"]

_SPLIT, _HEAD, _HOLDOUT_MASK, _EPOCH, _BATCH = range(5)
MIN_GENE_STD = 1e-3


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


def _split_rows(n_samples: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = child_rng(seed, _SPLIT).permutation(n_samples)
    n_holdout = min(round(n_samples * fraction), n_samples - 1) if fraction > 0 else 0
    n_holdout = max(n_holdout, 1) if fraction > 0 and n_samples > 1 else n_holdout
    return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])


def _presence(present: torch.Tensor | None, values: torch.Tensor) -> torch.Tensor:
    if present is None:
        return torch.ones(values.shape, dtype=torch.bool, device=values.device)
    return torch.as_tensor(present, dtype=torch.bool).to(values.device).expand(values.shape)


def _draw_mask(rng: np.random.Generator, present: torch.Tensor, fraction: float) -> torch.Tensor:
    draw = torch.from_numpy(rng.random(tuple(present.shape)) < fraction).to(present.device)
    return draw & present  # only present genes are masked (absent ones have no target)


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
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total_steps, config.warmup_fraction)
    )
    return optimizer, scheduler


def _optimizer_step(loss: torch.Tensor, run) -> float:
    """Backward, clip, step and schedule for a pre-training run (``encoder``, ``head``,
    ``optimizer``, ``scheduler``, ``config`` attributes); returns the loss as a float."""
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.config.grad_clip is not None:
        params = [*run.encoder.parameters(), *run.head.parameters()]
        torch.nn.utils.clip_grad_norm_(params, run.config.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    return float(loss.detach())


class _Pretrainer:
    """State of one pre-training run; one short method per step."""

    def __init__(self, encoder, values, present, config: PretrainConfig, seed: int) -> None:
        self.encoder, self.config, self.seed = encoder, config, seed
        self.device = values.device
        self.present = _presence(present, values)
        self.values = values.masked_fill(~self.present, 0.0)  # absent entries carry no value
        self.train_rows, self.holdout_rows = _split_rows(len(values), config.holdout_fraction, seed)
        self.head = MaskedExpressionHead(encoder.config.d_model, seed=child_seed(seed, _HEAD)).to(
            self.device
        )
        params = [*encoder.parameters(), *self.head.parameters()]
        self.steps_per_epoch = math.ceil(len(self.train_rows) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.optimizer, self.scheduler = _adamw_with_schedule(params, config, self.total_steps)
        self.dropout_generator = torch.Generator(device=self.device)
        set_dropout_generator(encoder, self.dropout_generator)
        self.step, self.epoch_loss_sum, self.history = 0, 0.0, []
        self._prepare_holdout()

    def _prepare_holdout(self) -> None:
        rows = torch.as_tensor(self.holdout_rows, device=self.device, dtype=torch.long)
        train = torch.as_tensor(self.train_rows, device=self.device, dtype=torch.long)
        present_train = self.present[train]
        gene_sum = (self.values[train] * present_train).sum(0)
        n_present = present_train.sum(0).clamp(min=1)
        self.gene_mean = gene_sum / n_present  # (G,)
        if self.config.standardize_inputs:
            sq_dev = ((self.values[train] - self.gene_mean) * present_train).pow(2).sum(0)
            gene_std = (sq_dev / n_present).sqrt().clamp(min=MIN_GENE_STD)
            self.encoder.set_gene_standardization(self.gene_mean, gene_std)
        self.holdout_mask = _draw_mask(
            child_rng(self.seed, _HOLDOUT_MASK), self.present[rows], self.config.mask_fraction
        )
        self.holdout_index = rows

    def batch_rows(self, epoch: int, batch: int) -> torch.Tensor:
        order = self.train_rows[
            child_rng(self.seed, _EPOCH, epoch).permutation(len(self.train_rows))
        ]
        chosen = order[batch * self.config.batch_size : (batch + 1) * self.config.batch_size]
        return torch.as_tensor(chosen, device=self.device, dtype=torch.long)

    def masked_loss(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with autocast_for(self.device, self.config.autocast_bf16):
            features = self.encoder.forward_features(self.values[rows], self.present[rows], mask)
            pred = self.head(self.encoder.gene_features(features))  # (B, G)
        return _masked_mse(pred, self.values[rows] - self.gene_mean, mask)

    def train_step(self, epoch: int, batch: int) -> float:
        rows = self.batch_rows(epoch, batch)
        mask = _draw_mask(
            child_rng(self.seed, _BATCH, epoch, batch),
            self.present[rows],
            self.config.mask_fraction,
        )
        self.dropout_generator.manual_seed(child_seed(self.seed, _BATCH, epoch, batch))
        self.encoder.train()
        self.head.train()
        loss = self.masked_loss(rows, mask)
        return _optimizer_step(loss, self)

    def advance(self) -> PretrainEpoch | None:
        """Take the next optimiser step; returns the epoch's record when the step ends one."""
        epoch, batch = divmod(self.step, self.steps_per_epoch)
        self.epoch_loss_sum += self.train_step(epoch, batch)
        self.step += 1
        if batch < self.steps_per_epoch - 1:
            return None
        record = self.evaluate(epoch)
        self.history.append(record)
        self.epoch_loss_sum = 0.0
        return record

    @torch.no_grad()
    def evaluate(self, epoch: int) -> PretrainEpoch:
        train_loss = self.epoch_loss_sum / self.steps_per_epoch
        if len(self.holdout_rows) == 0:
            return PretrainEpoch(epoch, train_loss, math.nan, math.nan)
        self.encoder.eval()
        self.head.eval()
        losses, baselines, counts = [], [], []
        for start in range(0, len(self.holdout_index), self.config.batch_size):
            rows = self.holdout_index[start : start + self.config.batch_size]
            mask = self.holdout_mask[start : start + self.config.batch_size]
            target = self.values[rows]
            losses.append(float(self.masked_loss(rows, mask)))
            baseline = self.gene_mean.expand_as(target)
            baselines.append(float(_masked_mse(baseline, target, mask)))
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


def pretrain(
    encoder: ExpressionEncoder,
    values: np.ndarray | torch.Tensor,
    *,
    config: PretrainConfig,
    seed: int,
    present: np.ndarray | torch.Tensor | None = None,
    progress: bool = False,
    checkpoint: CheckpointConfig | None = None,
) -> PretrainResult:
    """Pre-train ``encoder`` in place by masked-expression modelling.

    Parameters
    ----------
    encoder : ExpressionEncoder
        Trained in place; moved to the device of ``values``.
    values : array or Tensor
        ``(n_samples, n_genes)`` log1p-normalised expression in the encoder's gene order.
    config : PretrainConfig
        Optimisation settings (AdamW, linear warm-up then cosine decay, gradient clipping).
    seed : int
        Root of every random choice.
    present : array or Tensor or None
        ``(n_genes,)`` or ``(n_samples, n_genes)``; absent genes are never targets.
    progress : bool
        Show a tqdm progress bar.
    checkpoint : CheckpointConfig or None
        Save state periodically; resume from ``checkpoint.path`` when it exists.

    Returns
    -------
    PretrainResult
        Per-epoch train / held-out / mean-predictor losses and the trained masked head.
    """
    values = to_tensor(values)
    encoder.to(values.device)
    trainer = _Pretrainer(encoder, values, present, config, seed)
    fingerprint = run_fingerprint("pretrain", config, seed, values, repr(encoder.config))
    if checkpoint is not None and (
        state := load_checkpoint(checkpoint.path, fingerprint=fingerprint)
    ):
        trainer.load_state_dict(state)
    with tqdm(total=trainer.total_steps, initial=trainer.step, disable=not progress) as bar:
        while trainer.step < trainer.total_steps:
            if (record := trainer.advance()) is not None:
                bar.set_postfix(holdout=f"{record.holdout_loss:.4f}")
            bar.update(1)
            if checkpoint is not None and checkpoint.due(trainer.step):
                save_checkpoint(checkpoint.path, trainer.state_dict(fingerprint))
    set_dropout_generator(encoder, None)
    return PretrainResult(tuple(trainer.history), trainer.head, trainer.gene_mean, trainer.step)
