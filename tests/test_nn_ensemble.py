"""The hand-batched ensemble forward mirrors GTLModel scout by scout."""

from __future__ import annotations

import pytest
import torch
from torch.func import stack_module_state

from gtlomics.nn import (
    ClassificationHead,
    EncoderConfig,
    ExpressionEncoder,
    GTLModel,
    ensemble_logits,
)


@pytest.mark.parametrize("use_cls,pooling", [(True, "cls"), (False, "mean")])
def test_ensemble_matches_individual_models(use_cls, pooling):
    cfg = EncoderConfig(
        n_genes=24, d_model=16, n_heads=2, n_layers=2, use_cls=use_cls, pooling=pooling
    )
    models = [
        GTLModel(ExpressionEncoder(cfg, seed=i), ClassificationHead(16, 2, seed=i))
        for i in range(3)
    ]
    for model in models:
        model.encoder.set_gene_standardization(torch.full((24,), 0.1), torch.full((24,), 1.5))
    params, buffers = stack_module_state(models)
    shared = {name: b[0] for name, b in buffers.items()}
    values = torch.randn(3, 5, 24, generator=torch.Generator().manual_seed(0))
    present = torch.ones(24, dtype=torch.bool)
    present[4] = False
    logits = ensemble_logits(params, shared, cfg, values, present)
    expected = torch.stack([m(values[i], present) for i, m in enumerate(models)])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
