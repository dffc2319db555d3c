"""Per-gene input standardisation of a from-scratch encoder, fitted on its training samples.

A pre-trained encoder carries the per-gene centre and scale of its pre-training corpus (the
``gene_center`` / ``gene_scale`` buffers). A from-scratch encoder has none: its buffers are the
identity, so raw log1p values (0 to ~15) reach the value embedding, gene-level offsets swamp the
sample-level differences and the model outputs a constant. Fitting the buffers on the training
rows, exactly as pre-training does on its corpus, removes that failure. Only training rows are
used, so nothing from a test fold leaks in.
"""

from __future__ import annotations

import numpy as np
import torch

from gtlomics.nn import ExpressionEncoder

__all__ = ["MIN_FIT_GENE_STD", "fit_gene_standardization", "gene_standardization"]

MIN_FIT_GENE_STD = 0.1
"""Floor of the fitted per-gene scale (log1p units).

With a dozen training samples a gene seen in one sample has a tiny spread; dividing by it would
turn that one value into an extreme input. Chosen on synthetic data, not on any evaluation set.
"""


def fit_gene_standardization(
    encoder: ExpressionEncoder,
    values: torch.Tensor,
    present: np.ndarray | torch.Tensor | None = None,
    *,
    min_std: float = MIN_FIT_GENE_STD,
) -> None:
    """Set ``encoder``'s per-gene centre and scale from training ``values`` in place.

    Parameters
    ----------
    encoder : ExpressionEncoder
        Its ``gene_center`` / ``gene_scale`` buffers are overwritten.
    values : Tensor
        ``(n_samples, n_genes)`` log1p-normalised training expression.
    present : array or Tensor or None
        ``(n_genes,)`` or ``(n_samples, n_genes)`` gene presence; absent entries are ignored.
    min_std : float
        Floor of the scale.

    Examples
    --------
    >>> import torch
    >>> from gtlomics.nn import EncoderConfig
    >>> enc = ExpressionEncoder(EncoderConfig(n_genes=2, d_model=8, n_heads=2, n_layers=1))
    >>> fit_gene_standardization(enc, torch.tensor([[1.0, 5.0], [3.0, 5.0]]))
    >>> enc.gene_center.tolist(), enc.gene_scale.tolist()
    ([2.0, 5.0], [1.0, 0.10000000149011612])
    """
    encoder.set_gene_standardization(*gene_standardization(values, present, min_std=min_std))


def gene_standardization(
    values: torch.Tensor,
    present: np.ndarray | torch.Tensor | None = None,
    *,
    min_std: float = MIN_FIT_GENE_STD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-gene mean and floored standard deviation ``(G,)``, ``(G,)`` of training ``values``.

    Examples
    --------
    >>> center, scale = gene_standardization(torch.tensor([[1.0, 5.0], [3.0, 5.0]]))
    >>> center.tolist(), scale.tolist()
    ([2.0, 5.0], [1.0, 0.10000000149011612])
    """
    values = values.detach().float()
    weight = torch.ones_like(values)
    if present is not None:
        weight = weight * torch.as_tensor(present, device=values.device).float()
    count = weight.sum(0).clamp(min=1.0)  # (G,)
    center = (values * weight).sum(0) / count
    spread = ((values - center).pow(2) * weight).sum(0) / count
    return center, spread.sqrt().clamp(min=min_std)
