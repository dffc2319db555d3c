"""Guide values: per-parameter mean squared scout change, normalised to [0, 1].

Degenerate spreads are defined, never divided by: when the values being normalised have zero
range (every entry equal, e.g. the two logits of a 2-way head moving by the same amount, or a
single-entry tensor), the normalised guide is **1.0** everywhere in that tensor (or the whole model
in ``"global"`` mode): the scouts give no evidence to prefer one weight over another, so the weights
stay fully free, exactly as without guidance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "CONTROL_MODES",
    "GuideSummary",
    "GuideValues",
    "adapt_guides",
    "control_guides",
    "layer_of",
]

NEAR = 0.05
_N_SCOUTS_KEY = "__n_scouts__"
MODES = ("global", "per_tensor")


def _min_max(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    if not bool(high > low):
        return torch.ones_like(x)  # zero range: documented value 1.0 (fully free)
    return (x - low) / (high - low)


@dataclass(frozen=True)
class GuideSummary:
    """Distribution of one parameter tensor's normalised guides."""

    name: str
    numel: int
    mean: float
    median: float
    q10: float
    q90: float
    frac_near_0: float
    frac_near_1: float


@dataclass(frozen=True)
class GuideValues:
    """Raw guides: for every parameter name, the mean over scouts of ``(w_final - w_initial)²``.

    Examples
    --------
    >>> import torch
    >>> g = GuideValues({"w": torch.tensor([0.0, 1.0, 4.0])}, n_scouts=2)
    >>> g.normalized()["w"]
    tensor([0.0000, 0.2500, 1.0000])
    """

    raw: dict[str, torch.Tensor]
    n_scouts: int

    def normalized(
        self,
        mode: str = "global",
        *,
        floor: float = 0.0,
        power: float = 1.0,
        sparsify_below: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Guides in [0, 1], keyed by parameter name.

        Steps, in order: min-max scale (over all tensors for ``"global"``, each tensor alone for
        ``"per_tensor"``; zero range gives 1.0), raise to ``power``, map into ``[floor, 1]`` as
        ``floor + (1 - floor)·g``, then set values below ``sparsify_below`` to exactly 0.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if not 0.0 <= floor <= 1.0 or power <= 0:
            raise ValueError(
                f"Need 0 <= floor <= 1 and power > 0; got floor={floor}, power={power}."
            )
        scaled = self._scaled(mode)
        out = {}
        for name, g in scaled.items():
            g = floor + (1.0 - floor) * g.pow(power)
            if sparsify_below is not None:
                g = torch.where(g < sparsify_below, torch.zeros_like(g), g)
            out[name] = g
        return out

    def _scaled(self, mode: str) -> dict[str, torch.Tensor]:
        if mode == "per_tensor":
            return {n: _min_max(t, t.min(), t.max()) for n, t in self.raw.items()}
        low = torch.stack([t.min() for t in self.raw.values()]).min()
        high = torch.stack([t.max() for t in self.raw.values()]).max()
        return {n: _min_max(t, low, high) for n, t in self.raw.items()}

    def summary(self, mode: str = "global", *, by: str = "tensor") -> list[GuideSummary]:
        """Distribution of the normalised guides per tensor (``by="tensor"``) or per layer.

        ``by="layer"`` pools the tensors of one layer (see :func:`layer_of`), e.g. all weights
        and biases of ``encoder.blocks.0``.
        """
        if by not in ("tensor", "layer"):
            raise ValueError(f'by must be "tensor" or "layer", got {by!r}.')
        groups: dict[str, list[torch.Tensor]] = {}
        for name, g in self.normalized(mode).items():
            key = name if by == "tensor" else layer_of(name)
            groups.setdefault(key, []).append(g.detach().flatten())
        records = []
        for name, parts in groups.items():
            flat = torch.cat(parts).double().cpu()
            q10, q50, q90 = torch.quantile(flat, torch.tensor([0.1, 0.5, 0.9], dtype=flat.dtype))
            records.append(
                GuideSummary(
                    name=name,
                    numel=flat.numel(),
                    mean=float(flat.mean()),
                    median=float(q50),
                    q10=float(q10),
                    q90=float(q90),
                    frac_near_0=float((flat <= NEAR).double().mean()),
                    frac_near_1=float((flat >= 1 - NEAR).double().mean()),
                )
            )
        return records

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat ``{name: tensor}`` (safetensors-ready); ``n_scouts`` under ``"__n_scouts__"``."""
        state = {n: t.detach().cpu().contiguous() for n, t in self.raw.items()}
        state[_N_SCOUTS_KEY] = torch.tensor(self.n_scouts, dtype=torch.int64)
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> GuideValues:
        """Inverse of :meth:`state_dict`."""
        if _N_SCOUTS_KEY not in state:
            raise ValueError(f"Guide state lacks {_N_SCOUTS_KEY!r}; was it made by state_dict()?")
        raw = {n: t for n, t in state.items() if n != _N_SCOUTS_KEY}
        return cls(raw=raw, n_scouts=int(state[_N_SCOUTS_KEY]))


def layer_of(name: str) -> str:
    """The layer of a parameter: ``encoder.blocks.0.attn.qkv.weight`` → ``encoder.blocks.0``.

    Outside the transformer blocks it is the first two name parts (``encoder.value_embedding``,
    ``head.linear``).
    """
    parts = name.split(".")
    depth = 3 if len(parts) > 2 and parts[1] == "blocks" else 2
    return ".".join(parts[:depth])


def adapt_guides(guides: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Fit normalised guides to ``model``, e.g. a downstream head with more classes than scouts'.

    Every trainable parameter of ``model`` keeps its guide when one exists with the same shape.
    A parameter whose guide is missing or has another shape (a 3-class head after 2-class scouts)
    gets guide **1.0**: scouts measured nothing about it, so it trains freely, as unguided.

    Returns
    -------
    dict of str to Tensor
        One guide per trainable parameter of ``model``, on that parameter's device.
    """
    adapted = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        guide = guides.get(name)
        if guide is None or guide.shape != param.shape:
            guide = torch.ones_like(param)
        adapted[name] = guide.detach().to(device=param.device, dtype=param.dtype)
    return adapted


CONTROL_MODES = ("shuffled", "constant")


def control_guides(
    guides: Mapping[str, torch.Tensor], mode: str, *, seed: int
) -> dict[str, torch.Tensor]:
    """Guides that keep their amount but not their placement: the controls of a GTL claim.

    ``"shuffled"`` permutes each tensor's guides (a seeded generator per call); ``"constant"``
    sets every guide of every tensor to the mean of all guides. Either leaves the overall step
    size as it was and removes which parameters the scouts chose.

    Examples
    --------
    >>> g = {"w": torch.tensor([0.0, 1.0, 0.5])}
    >>> control_guides(g, "constant", seed=0)["w"].tolist()
    [0.5, 0.5, 0.5]
    >>> sorted(control_guides(g, "shuffled", seed=0)["w"].tolist())
    [0.0, 0.5, 1.0]
    """
    if mode not in CONTROL_MODES:
        raise ValueError(f"mode must be one of {CONTROL_MODES}, got {mode!r}.")
    if mode == "constant":
        total = sum(float(g.double().sum()) for g in guides.values())
        mean = total / max(1, sum(g.numel() for g in guides.values()))
        return {name: torch.full_like(g, mean) for name, g in guides.items()}
    generator = torch.Generator().manual_seed(seed)
    shuffled = {}
    for name, g in guides.items():
        order = torch.randperm(g.numel(), generator=generator).to(g.device)
        shuffled[name] = g.reshape(-1)[order].reshape(g.shape)
    return shuffled
