"""Matmul FLOP counts of the encoder, for benchmarks and for choosing how to batch scouts."""

from __future__ import annotations

from gtlomics.nn.config import EncoderConfig

__all__ = ["encoder_forward_flops", "encoder_training_flops"]


def encoder_forward_flops(config: EncoderConfig, n_samples: int = 1) -> float:
    """Matmul FLOPs (2 per multiply-add) of one forward pass of the encoder over ``n_samples``.

    Counts the value embedding MLP, and per layer the qkv projection, the attention scores and
    their mixing of the values, the output projection and the feed-forward MLP. Element-wise
    work (norms, GELU, softmax) and the heads are left out; they are small next to these.

    Examples
    --------
    >>> round(encoder_forward_flops(EncoderConfig(n_genes=256), n_samples=32) / 1e9, 2)
    2.77
    """
    t, d, f, h = config.n_tokens, config.d_model, config.ff_dim, config.value_dim
    projections = 2 * t * d * (3 * d + d + 2 * f)  # qkv, out, fc_in + fc_out
    attention = 2 * 2 * t * t * d  # q·kᵀ and attention · v, summed over heads
    value_embedding = 2 * config.n_genes * (h + h * d)  # 1 → h → d per gene
    return float(n_samples * (config.n_layers * (projections + attention) + value_embedding))


def encoder_training_flops(config: EncoderConfig, n_samples: int = 1) -> float:
    """Forward + backward matmul FLOPs over ``n_samples`` (backward counted as twice forward)."""
    return 3.0 * encoder_forward_flops(config, n_samples)
