"""The expression encoder: one token per gene, transformer blocks, pooling.

Value embedding: **continuous**. Each log1p-normalised value passes through a small MLP
(``1 → value_hidden → d_model``). Binning (scBERT-style) discards differences inside a bin and
ties the model to bin edges fitted on one corpus; bulk RNA-seq values are dense and continuous,
so a smooth embedding keeps their ordering and magnitude at no extra sequence cost.

Masked and absent genes share one learned ``mask_embedding`` in place of the value embedding:
pre-training teaches the model what "unknown value" means, so a gene missing from the input
(``present=False``) is treated exactly like a masked token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gtlomics.nn.config import EncoderConfig
from gtlomics.nn.layers import TransformerBlock, init_parameters

__all__ = ["ExpressionEncoder", "ValueEmbedding", "hidden_tokens"]


class ValueEmbedding(nn.Module):
    """Continuous value embedding: ``(B, G)`` values → ``(B, G, D)`` through a GELU MLP."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(1, hidden)
        self.proj_out = nn.Linear(hidden, d_model)

    @torch.no_grad()
    def init_input_layer(self, generator: torch.Generator) -> None:
        """Spread the scalar input across the GELU: input weights ``Normal(0, 1)``, bias 0.

        With the default ``Normal(0, 0.02)`` a fan-in of 1 would squash every value into the
        linear part of GELU and the value signal would vanish against the gene embedding.
        """
        weight = self.proj_in.weight
        weight.copy_(torch.randn(weight.shape, generator=generator, dtype=weight.dtype))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.proj_out(F.gelu(self.proj_in(values.unsqueeze(-1))))  # (B, G, D)


def hidden_tokens(
    values: torch.Tensor, present: torch.Tensor | None, mask: torch.Tensor | None
) -> torch.Tensor:
    """Boolean ``(B, G)``: True where a gene's value is replaced by the mask embedding.

    A gene is hidden when it is absent (``present`` False, shape ``(G,)`` or ``(B, G)``) or masked
    (``mask`` True, shape ``(B, G)``).
    """
    hidden = torch.zeros(values.shape, dtype=torch.bool, device=values.device)
    if present is not None:
        hidden = hidden | ~present.to(device=values.device, dtype=torch.bool)
    if mask is not None:
        hidden = hidden | mask.to(device=values.device, dtype=torch.bool)
    return hidden


class ExpressionEncoder(nn.Module):
    """Transformer encoder over gene tokens.

    Parameters
    ----------
    config : EncoderConfig
        Shapes and options.
    seed : int
        Seed of the local generator that initialises the weights (global RNG is never used).

    Examples
    --------
    >>> import torch
    >>> enc = ExpressionEncoder(EncoderConfig(n_genes=16, d_model=8, n_heads=2, n_layers=1))
    >>> enc(torch.zeros(3, 16)).shape
    torch.Size([3, 8])
    """

    def __init__(self, config: EncoderConfig, *, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        with torch.device("meta"):  # build without touching torch's global RNG
            self._build(config)
        self.to_empty(device="cpu")
        generator = torch.Generator().manual_seed(seed)
        init_parameters(self, generator)
        self.value_embedding.init_input_layer(generator)
        self.register_buffer("gene_center", torch.zeros(config.n_genes))
        self.register_buffer("gene_scale", torch.ones(config.n_genes))

    @torch.no_grad()
    def set_gene_standardization(self, center: torch.Tensor, scale: torch.Tensor) -> None:
        """Standardise inputs per gene as ``(value − center) / scale`` before the value embedding.

        Pre-training sets these buffers from its training rows (so gene-level offsets do not
        swamp sample-level variation); they are saved with the weights and never guided.
        """
        if torch.any(scale <= 0):
            raise ValueError("gene scale must be positive; clamp near-constant genes first.")
        self.gene_center.copy_(center)
        self.gene_scale.copy_(scale)

    def _build(self, cfg: EncoderConfig) -> None:
        self.gene_embedding = nn.Parameter(torch.empty(cfg.n_genes, cfg.d_model))
        self.value_embedding = ValueEmbedding(cfg.d_model, cfg.value_dim)
        self.mask_embedding = nn.Parameter(torch.empty(cfg.d_model))
        self.cls_token = nn.Parameter(torch.empty(cfg.d_model)) if cfg.use_cls else None
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.d_model, cfg.n_heads, cfg.ff_dim, cfg.dropout)
            for _ in range(cfg.n_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)

    def embed(
        self,
        values: torch.Tensor,
        present: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings ``(B, T, D)`` before the transformer blocks."""
        self._check_values(values)
        hidden = hidden_tokens(values, present, mask)  # (B, G)
        standardized = (values - self.gene_center) / self.gene_scale
        safe_values = standardized.masked_fill(hidden, 0.0)  # NaN-free input for absent genes
        value_tokens = torch.where(
            hidden.unsqueeze(-1), self.mask_embedding, self.value_embedding(safe_values)
        )  # (B, G, D)
        tokens = self.gene_embedding + value_tokens
        if self.cls_token is None:
            return tokens
        cls = self.cls_token.expand(values.shape[0], 1, -1)  # (B, 1, D)
        return torch.cat([cls, tokens], dim=1)  # (B, 1 + G, D)

    def forward_features(
        self,
        values: torch.Tensor,
        present: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Contextual token features ``(B, T, D)``; ``T = G + 1`` with a CLS token."""
        x = self.embed(values, present, mask)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def gene_features(self, features: torch.Tensor) -> torch.Tensor:
        """Drop the CLS token: ``(B, T, D)`` → ``(B, G, D)``."""
        return features[:, 1:] if self.config.use_cls else features

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """One vector per sample ``(B, D)``: the CLS token or the mean of gene tokens."""
        if self.config.pooling == "cls":
            return features[:, 0]
        return self.gene_features(features).mean(dim=1)

    def forward(self, values: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Sample embeddings ``(B, D)``."""
        return self.pool(self.forward_features(values, present))

    def _check_values(self, values: torch.Tensor) -> None:
        if values.ndim != 2 or values.shape[1] != self.config.n_genes:
            raise ValueError(
                f"Expected values of shape (n_samples, {self.config.n_genes}), got "
                f"{tuple(values.shape)}; align the genes to the encoder's vocabulary first."
            )
