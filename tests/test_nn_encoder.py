"""The encoder, heads and config: shapes, gradients, masking, seeding, round trips."""

from __future__ import annotations

import pytest
import torch

from gtlomics.nn import (
    ClassificationHead,
    EncoderConfig,
    ExpressionEncoder,
    GTLModel,
    MaskedExpressionHead,
)

CFG = EncoderConfig(n_genes=32, d_model=16, n_heads=2, n_layers=2)


def _values(n: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, CFG.n_genes, generator=torch.Generator().manual_seed(seed))


def test_config_round_trip_and_validation():
    cfg = EncoderConfig(n_genes=10, d_model=8, n_heads=2, pooling="mean", use_cls=False)
    assert EncoderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="not divisible"):
        EncoderConfig(n_genes=10, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="use_cls=True"):
        EncoderConfig(n_genes=10, use_cls=False, pooling="cls")
    with pytest.raises(ValueError, match="Unknown EncoderConfig keys"):
        EncoderConfig.from_dict({"n_genes": 3, "bogus": 1})


@pytest.mark.parametrize("use_cls,pooling", [(True, "cls"), (True, "mean"), (False, "mean")])
def test_shapes(use_cls, pooling):
    cfg = EncoderConfig(n_genes=32, d_model=16, n_heads=2, use_cls=use_cls, pooling=pooling)
    enc = ExpressionEncoder(cfg)
    values = _values()
    features = enc.forward_features(values)
    assert features.shape == (5, 32 + int(use_cls), 16)
    assert enc(values).shape == (5, 16)
    assert MaskedExpressionHead(16)(enc.gene_features(features)).shape == (5, 32)
    assert GTLModel(enc, ClassificationHead(16, 3))(values).shape == (5, 3)


def test_wrong_gene_count_is_a_clear_error():
    with pytest.raises(ValueError, match="align the genes"):
        ExpressionEncoder(CFG)(torch.zeros(2, 31))


def test_every_parameter_gets_a_finite_gradient():
    model = GTLModel(ExpressionEncoder(CFG), ClassificationHead(16, 2))
    present = torch.ones(CFG.n_genes, dtype=torch.bool)
    present[:3] = False  # absent genes exercise the mask embedding
    loss = model(_values(), present).logsumexp(-1).sum()
    loss.backward()
    for name, param in model.named_parameters():
        assert name.startswith(("encoder.", "head."))
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_absent_genes_equal_masked_tokens_and_ignore_their_values():
    enc = ExpressionEncoder(CFG).eval()
    values = _values()
    present = torch.ones(CFG.n_genes, dtype=torch.bool)
    present[[1, 7]] = False
    mask = (~present).expand(5, -1)
    corrupted = values.clone()
    corrupted[:, [1, 7]] = float("nan")  # absent genes may carry anything
    by_presence = enc.forward_features(corrupted, present)
    by_mask = enc.forward_features(values, mask=mask)
    # bit for bit: the same batch through the same kernels; only which tokens carry the mask
    # embedding is decided another way
    torch.testing.assert_close(by_presence, by_mask, rtol=0, atol=0)
    assert not torch.allclose(by_mask, enc.forward_features(values))


def test_seeded_init_is_repeatable_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = ExpressionEncoder(CFG, seed=3), ExpressionEncoder(CFG, seed=3), ExpressionEncoder(CFG)
    assert torch.equal(state, torch.get_rng_state())
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.gene_embedding, c.gene_embedding)
    head_a, head_b = ClassificationHead(16, 2, seed=1), ClassificationHead(16, 2, seed=1)
    assert torch.equal(head_a.linear.weight, head_b.linear.weight)


def test_state_dict_round_trip_gives_identical_outputs():
    enc = ExpressionEncoder(CFG, seed=1)
    enc.set_gene_standardization(torch.full((32,), 0.5), torch.full((32,), 2.0))
    clone = ExpressionEncoder(EncoderConfig.from_dict(CFG.to_dict()), seed=9)
    clone.load_state_dict(enc.state_dict())
    values = _values()
    assert torch.equal(enc.eval()(values), clone.eval()(values))


def test_gene_standardization_is_applied():
    enc = ExpressionEncoder(CFG).eval()
    values = _values()
    shifted = ExpressionEncoder(CFG).eval()
    shifted.set_gene_standardization(torch.full((32,), 3.0), torch.full((32,), 2.0))
    torch.testing.assert_close(shifted(values * 2.0 + 3.0), enc(values))
    with pytest.raises(ValueError, match="positive"):
        shifted.set_gene_standardization(torch.zeros(32), torch.zeros(32))
