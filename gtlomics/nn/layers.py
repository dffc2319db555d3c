"""Transformer building blocks: seeded dropout, self-attention, feed-forward, pre-norm block.

Weights are initialised by :func:`init_parameters` from a local ``torch.Generator`` so that
constructing a module never reads or advances torch's global random state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FeedForward",
    "SeededDropout",
    "SelfAttention",
    "TransformerBlock",
    "init_parameters",
    "set_dropout_generator",
]

INIT_STD = 0.02


class SeededDropout(nn.Module):
    """Inverted dropout whose masks come from an attached local ``torch.Generator``.

    The training loops attach a generator with :func:`set_dropout_generator`; without one the
    module falls back to torch's default generator.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep / (1.0 - self.p)


class SelfAttention(nn.Module):
    """Multi-head self-attention on ``F.scaled_dot_product_attention`` (fused kernels on GPU)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_batch, n_tokens, d_model = x.shape  # (B, T, D)
        qkv = self.qkv(x).reshape(n_batch, n_tokens, 3, self.n_heads, d_model // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, D/H)
        attended = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, D/H)
        return self.out(attended.transpose(1, 2).reshape(n_batch, n_tokens, d_model))


class FeedForward(nn.Module):
    """Position-wise MLP ``D → F → D`` with GELU."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.fc_in = nn.Linear(d_model, d_ff)
        self.fc_out = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(x)))  # (B, T, D)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + drop(attn(norm(x)))`` then ``x + drop(ff(norm(x)))``."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, d_ff)
        self.drop = SeededDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))  # (B, T, D)
        return x + self.drop(self.ff(self.norm2(x)))


def init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """Initialise every parameter of ``module`` in place from ``generator``.

    Linear weights and free embedding tensors get ``Normal(0, 0.02)``, biases 0, LayerNorm
    weights 1 and biases 0. Parameters are visited in ``named_parameters`` order, so the same
    generator state always gives the same weights.
    """
    norm_params = {
        id(p) for m in module.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()
    }
    with torch.no_grad():
        for name, param in module.named_parameters():
            if id(param) in norm_params:
                param.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                param.zero_()
            else:
                noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
                param.copy_(noise * INIT_STD)


def set_dropout_generator(module: nn.Module, generator: torch.Generator | None) -> None:
    """Attach ``generator`` to every :class:`SeededDropout` inside ``module``."""
    for sub in module.modules():
        if isinstance(sub, SeededDropout):
            sub.generator = generator
