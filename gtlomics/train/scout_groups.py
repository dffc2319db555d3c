"""The two ways to train a group of scouts: one module at a time, or a stacked ensemble.

Both expose the same small interface (``train_step``, ``squared_change``, ``state_dict``) so that
:func:`~gtlomics.train.train_scouts` drives them identically. :class:`LoopScout` is the reference;
:class:`EnsembleScouts` trains ``E`` scouts in one pass (parameters with a leading scout dimension,
one optimiser over the stacked tensors = ``E`` independent element-wise optimisers, gradient
clipping per scout).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from gtlomics.nn import GTLModel, ensemble_logits, set_dropout_generator
from gtlomics.train.runtime import autocast_for, full_precision, make_optimizer, optimizer_step

__all__ = ["EnsembleScouts", "LoopScout"]

CLIP_EPS = 1e-6  # same as torch.nn.utils.clip_grad_norm_


class LoopScout:
    """One scout: a deep copy of the encoder and head, trained as a normal module."""

    def __init__(self, encoder: nn.Module, head_init: nn.Module, config, generator) -> None:
        self.model = GTLModel(copy.deepcopy(encoder), copy.deepcopy(head_init))
        self.initial = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        self.config = config
        self.optimizer = make_optimizer(
            self.model.parameters(),
            config.optimizer,
            lr=config.lr,
            weight_decay=config.weight_decay,
        )
        set_dropout_generator(self.model, generator)

    def train_step(self, values: torch.Tensor, labels: torch.Tensor, present) -> torch.Tensor:
        """One optimiser step on ``values (1, B, G)``; returns the loss ``(1,)``.

        ``present`` is ``None``, ``(G,)`` or ``(1, B, G)``.
        """
        self.model.train()
        with autocast_for(values.device, self.config.autocast_bf16):
            scout_present = present[0] if present is not None and present.ndim == 3 else present
            logits = self.model(values[0], scout_present)
        loss = F.cross_entropy(full_precision(logits), labels[0])
        optimizer_step(self.optimizer, loss, self.model.parameters(), self.config.grad_clip)
        return loss.detach().reshape(1)

    def squared_change(self) -> dict[str, torch.Tensor]:
        """``(w_final − w_initial)²`` per parameter name."""
        return {n: (p.detach() - self.initial[n]).pow(2) for n, p in self.model.named_parameters()}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


class EnsembleScouts:
    """``n_scouts`` scouts as stacked parameters ``{name: (E, *shape)}`` trained together."""

    def __init__(
        self, encoder: nn.Module, head_init: nn.Module, n_scouts: int, config, generator
    ) -> None:
        template = GTLModel(encoder, head_init)
        self.encoder_config = encoder.config
        self.initial = {n: p.detach().clone() for n, p in template.named_parameters()}
        self.buffers = {n: b.detach().clone() for n, b in template.named_buffers()}
        self.params = {
            n: p.detach().unsqueeze(0).repeat(n_scouts, *([1] * p.ndim)).requires_grad_()
            for n, p in template.named_parameters()
        }
        self.config = config
        self.generator = generator
        self.optimizer = make_optimizer(
            self.params.values(), config.optimizer, lr=config.lr, weight_decay=config.weight_decay
        )

    def train_step(self, values: torch.Tensor, labels: torch.Tensor, present) -> torch.Tensor:
        """One step of every scout; ``values (E, B, G)``, ``labels (E, B)``; returns ``(E,)``."""
        with autocast_for(values.device, self.config.autocast_bf16):
            logits = ensemble_logits(
                self.params,
                self.buffers,
                self.encoder_config,
                values,
                present,
                training=True,
                generator=self.generator,
            )  # (E, B, C)
        per_sample = F.cross_entropy(
            full_precision(logits).flatten(0, 1), labels.flatten(), reduction="none"
        )
        losses = per_sample.view(labels.shape).mean(dim=1)  # (E,)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # scouts share no parameters: each gets its own gradient
        if self.config.grad_clip is not None:
            self._clip_per_scout(self.config.grad_clip)
        self.optimizer.step()
        return losses.detach()

    @torch.no_grad()
    def _clip_per_scout(self, max_norm: float) -> None:
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        sq_norms = torch.stack([g.pow(2).flatten(1).sum(dim=1) for g in grads]).sum(dim=0)
        coef = (max_norm / (sq_norms.sqrt() + CLIP_EPS)).clamp(max=1.0)  # (E,)
        for grad in grads:
            grad.mul_(coef.view(-1, *([1] * (grad.ndim - 1))))

    def squared_change(self) -> dict[str, torch.Tensor]:
        """``(w_final − w_initial)²`` summed over the group's scouts, per parameter name."""
        return {n: (p.detach() - self.initial[n]).pow(2).sum(dim=0) for n, p in self.params.items()}

    def state_dict(self) -> dict:
        return {
            "params": {n: p.detach() for n, p in self.params.items()},
            "optimizer": self.optimizer.state_dict(),
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for name, param in self.params.items():
            param.copy_(state["params"][name])
        self.optimizer.load_state_dict(state["optimizer"])
