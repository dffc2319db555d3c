"""Heads on top of the encoder and the ``GTLModel`` wrapper that guides are keyed by."""

from __future__ import annotations

import torch
from torch import nn

from gtlomics.nn.encoder import ExpressionEncoder
from gtlomics.nn.layers import init_parameters

__all__ = ["ClassificationHead", "GTLModel", "MaskedExpressionHead"]


def _seeded_linear(n_in: int, n_out: int, seed: int) -> nn.Linear:
    with torch.device("meta"):
        linear = nn.Linear(n_in, n_out)
    linear = linear.to_empty(device="cpu")
    init_parameters(linear, torch.Generator().manual_seed(seed))
    return linear


class MaskedExpressionHead(nn.Module):
    """Predict one value per gene token: ``(B, G, D)`` → ``(B, G)``.

    Examples
    --------
    >>> import torch
    >>> MaskedExpressionHead(8)(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 5])
    """

    def __init__(self, d_model: int, *, seed: int = 0) -> None:
        super().__init__()
        self.linear = _seeded_linear(d_model, 1, seed)

    def forward(self, gene_features: torch.Tensor) -> torch.Tensor:
        return self.linear(gene_features).squeeze(-1)  # (B, G)


class ClassificationHead(nn.Module):
    """Linear classifier on pooled features: ``(B, D)`` → logits ``(B, C)``.

    Examples
    --------
    >>> import torch
    >>> ClassificationHead(8, 3)(torch.zeros(2, 8)).shape
    torch.Size([2, 3])
    """

    def __init__(self, d_model: int, n_classes: int, *, seed: int = 0) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"A classification head needs n_classes >= 2, got {n_classes}.")
        self.n_classes = n_classes
        self.linear = _seeded_linear(d_model, n_classes, seed)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(pooled)  # (B, C)


class GTLModel(nn.Module):
    """Encoder plus classification head; parameter names start with ``encoder.`` / ``head.``.

    Examples
    --------
    >>> import torch
    >>> from gtlomics.nn import EncoderConfig, ExpressionEncoder
    >>> enc = ExpressionEncoder(EncoderConfig(n_genes=16, d_model=8, n_heads=2, n_layers=1))
    >>> model = GTLModel(enc, ClassificationHead(8, 2))
    >>> model(torch.zeros(3, 16)).shape
    torch.Size([3, 2])
    """

    def __init__(self, encoder: ExpressionEncoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, values: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encoder(values, present))  # (B, C)
