"""Hand-batched ensemble forward of ``GTLModel``: many scouts in one pass.

Every tensor carries a leading scout dimension ``E``: parameters are stacked copies of a
``GTLModel``'s parameters (``{name: (E, *shape)}``, names as in ``named_parameters``) and inputs are
``(E, B, G)``. Linear layers become ``baddbmm`` over the scouts and attention runs on ``(E·B)``
sequences, so one pass dispatches the same ops as a single model instead of once per scout (the
``vmap`` alternative falls back per sample for attention on CPU and is slower).

This mirrors :class:`~gtlomics.nn.ExpressionEncoder` + :class:`~gtlomics.nn.ClassificationHead`
operation by operation; ``tests/test_nn_ensemble.py`` checks that both agree.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from gtlomics.nn.config import EncoderConfig
from gtlomics.nn.encoder import hidden_tokens

__all__ = ["ensemble_logits"]

Params = Mapping[str, torch.Tensor]


def _per_scout(param: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``(E, D)`` to broadcast against ``like`` ``(E, ..., D)``."""
    return param.reshape(param.shape[0], *([1] * (like.ndim - 2)), param.shape[-1])


def _linear(x: torch.Tensor, params: Params, prefix: str) -> torch.Tensor:
    """``x (E, ..., I)`` → ``(E, ..., O)`` with weight ``(E, O, I)`` and bias ``(E, O)``."""
    weight, bias = params[f"{prefix}.weight"], params[f"{prefix}.bias"]
    flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (E, N, I)
    out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))  # (E, N, O)
    return out.reshape(*x.shape[:-1], weight.shape[1])


def _layer_norm(x: torch.Tensor, params: Params, prefix: str) -> torch.Tensor:
    normed = F.layer_norm(x, x.shape[-1:])
    weight, bias = params[f"{prefix}.weight"], params[f"{prefix}.bias"]
    return normed * _per_scout(weight, x) + _per_scout(bias, x)


def _norm_linear(x: torch.Tensor, params: Params, norm: str, linear: str) -> torch.Tensor:
    """``_linear(_layer_norm(x))`` with the norm's affine folded into the linear layer.

    ``W (γ ⊙ n + β) + c = (W diag γ) n + (W β + c)``: the per-scout scale and shift act on the
    small ``(E, O, I)`` weights instead of the large ``(E, …, I)`` activations, which saves two
    full passes over the activations forward and more backward (the CPU path is memory-bound).
    """
    gamma, beta = params[f"{norm}.weight"], params[f"{norm}.bias"]  # (E, I)
    weight, bias = params[f"{linear}.weight"], params[f"{linear}.bias"]  # (E, O, I), (E, O)
    folded_weight = weight * gamma.unsqueeze(1)  # (E, O, I)
    folded_bias = torch.baddbmm(bias.unsqueeze(-1), weight, beta.unsqueeze(-1))  # (E, O, 1)
    normed = F.layer_norm(x, x.shape[-1:])
    flat = normed.reshape(x.shape[0], -1, x.shape[-1])  # (E, N, I)
    out = torch.baddbmm(folded_bias.transpose(1, 2), flat, folded_weight.transpose(1, 2))
    return out.reshape(*x.shape[:-1], weight.shape[1])  # (E, ..., O)


def _dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    if p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)


def _attention(x: torch.Tensor, params: Params, prefix: str, n_heads: int) -> torch.Tensor:
    """Self-attention on ``norm1(x)`` (the norm is folded into the qkv projection)."""
    n_scouts, n_batch, n_tokens, d_model = x.shape  # (E, B, T, D)
    qkv = _norm_linear(x, params, f"{prefix}.norm1", f"{prefix}.attn.qkv")
    qkv = qkv.reshape(n_scouts * n_batch, n_tokens, 3, n_heads, d_model // n_heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (E·B, H, T, D/H)
    attended = F.scaled_dot_product_attention(q, k, v)
    merged = attended.transpose(1, 2).reshape(n_scouts, n_batch, n_tokens, d_model)
    return _linear(merged, params, f"{prefix}.attn.out")


def _block(
    x: torch.Tensor, params: Params, prefix: str, cfg: EncoderConfig, dropout_p: float, gen
) -> torch.Tensor:
    attn = _attention(x, params, prefix, cfg.n_heads)
    x = x + _dropout(attn, dropout_p, gen)
    hidden = F.gelu(_norm_linear(x, params, f"{prefix}.norm2", f"{prefix}.ff.fc_in"))
    return x + _dropout(_linear(hidden, params, f"{prefix}.ff.fc_out"), dropout_p, gen)


def _embed(
    values: torch.Tensor, params: Params, buffers: Params, cfg: EncoderConfig, present
) -> torch.Tensor:
    hidden = hidden_tokens(values, present, None)  # (E, B, G)
    standardized = (values - buffers["encoder.gene_center"]) / buffers["encoder.gene_scale"]
    safe = standardized.masked_fill(hidden, 0.0).unsqueeze(-1)  # (E, B, G, 1)
    value_tokens = _linear(
        F.gelu(_linear(safe, params, "encoder.value_embedding.proj_in")),
        params,
        "encoder.value_embedding.proj_out",
    )  # (E, B, G, D)
    mask_embedding = _per_scout(params["encoder.mask_embedding"], value_tokens)
    value_tokens = torch.where(hidden.unsqueeze(-1), mask_embedding, value_tokens)
    tokens = params["encoder.gene_embedding"].unsqueeze(1) + value_tokens
    if not cfg.use_cls:
        return tokens
    cls = params["encoder.cls_token"][:, None, None, :].expand(-1, values.shape[1], 1, -1)
    return torch.cat([cls, tokens], dim=2)  # (E, B, 1 + G, D)


def ensemble_logits(
    params: Params,
    buffers: Params,
    config: EncoderConfig,
    values: torch.Tensor,
    present: torch.Tensor | None = None,
    *,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Logits of ``E`` stacked ``GTLModel`` copies, each on its own batch.

    Parameters
    ----------
    params : mapping of str to Tensor
        Stacked parameters ``{name: (E, *shape)}`` of a ``GTLModel`` with a
        ``ClassificationHead`` (e.g. from ``torch.func.stack_module_state``).
    buffers : mapping of str to Tensor
        The model's buffers (``encoder.gene_center``, ``encoder.gene_scale``), shared by all
        scouts and not stacked.
    config : EncoderConfig
        The encoder's config.
    values : Tensor
        ``(E, B, G)``: scout ``e`` sees batch ``values[e]``.
    present : Tensor or None
        ``(G,)`` or ``(E, B, G)`` gene presence; absent genes get the mask embedding.
    training : bool
        Apply dropout (masks differ per scout; drawn from ``generator``).
    generator : torch.Generator or None
        Source of dropout masks.

    Returns
    -------
    Tensor
        ``(E, B, C)`` logits.
    """
    dropout_p = config.dropout if training else 0.0
    x = _embed(values, params, buffers, config, present)  # (E, B, T, D)
    for i in range(config.n_layers):
        x = _block(x, params, f"encoder.blocks.{i}", config, dropout_p, generator)
    # The final norm is per token and its affine commutes with the mean: pool first, then norm
    # only the pooled rows (CLS) or apply the affine to the mean of normalised tokens.
    if config.pooling == "cls":
        pooled = _layer_norm(x[:, :, 0], params, "encoder.norm")  # (E, B, D)
    else:
        normed = F.layer_norm(x[:, :, int(config.use_cls) :], x.shape[-1:]).mean(dim=2)
        weight, bias = params["encoder.norm.weight"], params["encoder.norm.bias"]
        pooled = normed * weight.unsqueeze(1) + bias.unsqueeze(1)  # (E, B, D)
    return _linear(pooled, params, "head.linear")  # (E, B, C)
