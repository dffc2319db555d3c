"""Fine-tuning a :class:`~gtlomics.nn.GTLModel` on a small labelled task, optionally guided.

The default is a fixed schedule chosen in advance (``epochs``). Early stopping, when asked for,
watches only an inner split of the *training* data, never a validation or test set, and restores
the weights of the best inner-split epoch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gtlomics.nn import GTLModel, set_dropout_generator
from gtlomics.train.config import FinetuneConfig, GuidanceConfig
from gtlomics.train.guided_update import GuidedUpdate
from gtlomics.train.runtime import (
    autocast_for,
    child_rng,
    child_seed,
    full_precision,
    make_optimizer,
    optimizer_step,
    to_tensor,
)

__all__ = ["FinetuneConfig", "FinetuneEpoch", "FinetuneResult", "finetune"]

_SPLIT, _EPOCH, _DROPOUT = range(3)


@dataclass(frozen=True)
class FinetuneEpoch:
    """Mean training loss of one epoch and, with early stopping, the inner-split loss."""

    epoch: int
    train_loss: float
    inner_val_loss: float | None = None


@dataclass(frozen=True)
class FinetuneResult:
    """History of :func:`finetune`; ``best_epoch`` is set only with early stopping."""

    history: tuple[FinetuneEpoch, ...]
    best_epoch: int | None = None
    stopped_early: bool = False


def inner_split(
    labels: np.ndarray, fraction: float, seed: int, *, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Split of training rows: ``(fit_rows, inner_val_rows)``, stratified by class by default.

    Each class (with ``stratify=False``, e.g. continuous targets: all rows as one group) gives
    ``round(fraction · n_class)`` rows (at least 1) to the inner split but keeps at least one
    row for fitting.
    """
    rng = child_rng(seed, _SPLIT)
    groups = labels if stratify else np.zeros(len(labels))
    fit, held = [], []
    for cls in np.unique(groups):
        rows = rng.permutation(np.flatnonzero(groups == cls))
        n_held = min(max(1, round(fraction * len(rows))), len(rows) - 1)
        held.append(rows[:n_held])
        fit.append(rows[n_held:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(held))


class _Finetuner:
    """One fine-tuning run; one short method per step."""

    def __init__(self, model: GTLModel, values, labels, present, config, seed) -> None:
        self.model, self.values, self.labels, self.present = model, values, labels, present
        self.config, self.seed = config, seed
        self.optimizer = make_optimizer(
            [p for p in model.parameters() if p.requires_grad],
            config.optimizer,
            lr=config.lr,
            weight_decay=config.weight_decay,
        )
        self.dropout_generator = torch.Generator(device=values.device)
        set_dropout_generator(model, self.dropout_generator)

    def get_loss(self, rows: torch.Tensor) -> torch.Tensor:
        with autocast_for(self.values.device, self.config.autocast_bf16):
            present = self.present
            if present is not None and present.ndim == 2:  # per-sample presence
                present = present[rows]
            outputs = self.model(self.values[rows], present)
        if self.config.loss == "mse":
            return F.mse_loss(full_precision(outputs)[:, 0], self.labels[rows])
        return F.cross_entropy(full_precision(outputs), self.labels[rows])

    def train_step(self, rows: torch.Tensor) -> float:
        self.model.train()
        loss = self.get_loss(rows)
        optimizer_step(self.optimizer, loss, self.model.parameters(), self.config.grad_clip)
        return float(loss.detach())

    def train_epoch(self, epoch: int, fit_rows: np.ndarray) -> float:
        order = fit_rows[child_rng(self.seed, _EPOCH, epoch).permutation(len(fit_rows))]
        self.dropout_generator.manual_seed(child_seed(self.seed, _DROPOUT, epoch))
        losses = []
        for start in range(0, len(order), self.config.batch_size):
            chunk = order[start : start + self.config.batch_size]
            losses.append(self.train_step(torch.as_tensor(chunk, device=self.values.device)))
        return float(np.mean(losses))

    @torch.no_grad()
    def inner_loss(self, rows: np.ndarray) -> float:
        self.model.eval()
        return float(self.get_loss(torch.as_tensor(rows, device=self.values.device)))


def finetune(
    model: GTLModel,
    values: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    config: FinetuneConfig,
    seed: int,
    guides: Mapping[str, torch.Tensor] | None = None,
    guidance: GuidanceConfig | None = None,
    present: np.ndarray | torch.Tensor | None = None,
    progress: bool = False,
) -> FinetuneResult:
    """Train ``model`` in place on labelled samples, guided when ``guides`` are given.

    Parameters
    ----------
    model : GTLModel
        Encoder plus classification head; moved to the device of ``values``.
    values : array or Tensor
        ``(n_samples, n_genes)`` log1p-normalised expression.
    labels : array or Tensor
        ``(n_samples,)`` integer classes ``0..n_classes-1`` (``loss="cross_entropy"``) or float
        targets, best standardised (``loss="mse"``, a model with one output).
    config : FinetuneConfig
        Optimiser, fixed schedule, loss, optional inner-split early stopping.
    seed : int
        Root of shuffles, the inner split and dropout.
    guides : mapping or None
        Prepared guides in [0, 1], one per trainable parameter, used as given (see
        :meth:`Foundation.guides_for <gtlomics.foundation.Foundation.guides_for>`, which
        normalises, applies controls and fits them to the model). None: unguided.
    guidance : GuidanceConfig or None
        Only its ``strength`` is read here (the guides arrive prepared); None means full
        strength.
    present : array or Tensor or None
        ``(n_genes,)`` or ``(n_samples, n_genes)`` gene presence.
    progress : bool
        Show a tqdm progress bar over epochs.

    Returns
    -------
    FinetuneResult
    """
    values = to_tensor(values)
    dtype = np.float32 if config.loss == "mse" else np.int64
    labels_np = np.asarray(torch.as_tensor(labels).cpu(), dtype=dtype)
    if labels_np.shape != (len(values),):
        raise ValueError(f"labels must have shape ({len(values)},), got {labels_np.shape}.")
    model.to(values.device)
    if present is not None:
        present = torch.as_tensor(present, dtype=torch.bool).to(values.device)
    tuner = _Finetuner(
        model, values, torch.from_numpy(labels_np).to(values.device), present, config, seed
    )
    strength = 1.0 if guidance is None else guidance.strength
    hook = GuidedUpdate(tuner.optimizer, model, guides, strength) if guides else None
    try:
        return _run_epochs(tuner, labels_np, config, seed, progress)
    finally:
        if hook is not None:
            hook.remove()
        set_dropout_generator(model, None)


def _run_epochs(tuner: _Finetuner, labels: np.ndarray, config, seed, progress) -> FinetuneResult:
    early = config.early_stopping_fraction is not None
    if early:
        fit_rows, inner_rows = inner_split(
            labels, config.early_stopping_fraction, seed, stratify=config.loss != "mse"
        )
    else:
        fit_rows, inner_rows = np.arange(len(labels)), None
    history, best_loss, best_epoch, best_state = [], math.inf, None, None
    for epoch in tqdm(range(config.epochs), disable=not progress, unit="epoch"):
        train_loss = tuner.train_epoch(epoch, fit_rows)
        inner = tuner.inner_loss(inner_rows) if early else None
        history.append(FinetuneEpoch(epoch, train_loss, inner))
        if early and inner < best_loss:
            best_loss, best_epoch = inner, epoch
            best_state = copy.deepcopy(tuner.model.state_dict())
        if early and epoch - best_epoch >= config.patience:
            break
    if best_state is not None:
        tuner.model.load_state_dict(best_state)
    stopped = len(history) < config.epochs
    return FinetuneResult(tuple(history), best_epoch, stopped)
