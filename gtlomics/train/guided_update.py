"""Guided updates: scale each parameter's optimiser *update* by its guide.

Scaling gradients does not work for adaptive optimisers (Adam divides the scale away, and AdamW's
decoupled weight decay still moves a parameter whose gradient is zeroed). Instead the parameter is
snapshotted before ``optimizer.step()`` and pulled back after it:
``p ← p_old + g_eff ⊙ (p − p_old)`` with ``g_eff = 1 − strength·(1 − g)``. The guided update is
linear in ``g_eff`` for every optimiser, ``g_eff = 0`` freezes a weight bit-for-bit, and for plain
SGD it equals scaling the gradient.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["GuidedUpdate"]


class GuidedUpdate:
    """Attach guided updates to any torch optimiser through its step pre/post hooks.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimiser whose steps are guided.
    model : nn.Module
        The model being trained; guides are keyed by its ``named_parameters`` names.
    guides : mapping of str to Tensor
        Normalised guides in [0, 1], one per trainable parameter, same shapes.
    strength : float
        0 = unguided, 1 = full guidance.

    Examples
    --------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    >>> frozen = {n: torch.zeros_like(p) for n, p in layer.named_parameters()}
    >>> with GuidedUpdate(opt, layer, frozen):
    ...     layer(torch.ones(1, 2)).sum().backward()
    ...     before = layer.weight.clone()
    ...     opt.step()
    >>> torch.equal(before, layer.weight)
    True
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        model: nn.Module,
        guides: Mapping[str, torch.Tensor],
        strength: float = 1.0,
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}.")
        self._params, self._scales = self._match(model, guides, strength)
        self._snapshot: list[torch.Tensor] = []
        self._handles = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]

    @staticmethod
    def _match(model: nn.Module, guides: Mapping[str, torch.Tensor], strength: float):
        named = dict(model.named_parameters())
        unknown = sorted(set(guides) - set(named))
        if unknown:
            raise ValueError(
                f"Guides name parameters the model lacks: {unknown[:5]}; guides must be keyed by "
                "the model's named_parameters() (e.g. 'encoder.…', 'head.…')."
            )
        params, scales = [], []
        for name, param in named.items():
            if not param.requires_grad:
                continue
            if name not in guides:
                raise ValueError(f"Trainable parameter {name!r} has no guide; see adapt_guides().")
            guide = guides[name]
            if guide.shape != param.shape:
                raise ValueError(
                    f"Guide for {name!r} has shape {tuple(guide.shape)} but the parameter has "
                    f"{tuple(param.shape)}; use adapt_guides() for a differently shaped head."
                )
            scale = 1.0 - strength * (1.0 - guide.detach().to(param.device, param.dtype))
            if not bool((scale == 1.0).all()):  # all-ones guides need no snapshot
                params.append(param)
                scales.append(scale)
        return params, scales

    def _before_step(self, optimizer, args, kwargs) -> None:
        self._snapshot = [p.detach().clone() for p in self._params]

    @torch.no_grad()
    def _after_step(self, optimizer, args, kwargs) -> None:
        for param, old, scale in zip(self._params, self._snapshot, self._scales, strict=True):
            param.copy_(torch.lerp(old, param, scale))  # old + scale·(new − old); 0 → old exactly
        self._snapshot = []

    def remove(self) -> None:
        """Detach the hooks; later steps are unguided."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> GuidedUpdate:
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()
