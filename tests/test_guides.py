"""GuideValues: normalisation, degenerate spreads, transforms, summaries, persistence."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder, GTLModel
from gtlomics.train import GuideValues, adapt_guides


def _guides() -> GuideValues:
    return GuideValues(
        raw={
            "a": torch.tensor([0.0, 1.0, 2.0, 4.0]),
            "b": torch.tensor([[3.0, 3.0], [3.0, 3.0]]),  # zero range within the tensor
            "c": torch.tensor([8.0]),
        },
        n_scouts=5,
    )


def test_global_normalisation_uses_one_range():
    norm = _guides().normalized("global")
    torch.testing.assert_close(norm["a"], torch.tensor([0.0, 0.125, 0.25, 0.5]))
    torch.testing.assert_close(norm["b"], torch.full((2, 2), 0.375))
    torch.testing.assert_close(norm["c"], torch.tensor([1.0]))


def test_per_tensor_normalisation_and_zero_range_gives_one():
    norm = _guides().normalized("per_tensor")
    torch.testing.assert_close(norm["a"], torch.tensor([0.0, 0.25, 0.5, 1.0]))
    assert torch.equal(norm["b"], torch.ones(2, 2))
    assert torch.equal(norm["c"], torch.ones(1))
    flat = GuideValues({"x": torch.zeros(3)}, n_scouts=1).normalized("global")
    assert torch.equal(flat["x"], torch.ones(3))


def test_transforms_floor_power_sparsify():
    norm = _guides().normalized("per_tensor", power=2.0, floor=0.2)
    torch.testing.assert_close(norm["a"], 0.2 + 0.8 * torch.tensor([0.0, 0.0625, 0.25, 1.0]))
    sparse = _guides().normalized("per_tensor", sparsify_below=0.3)
    torch.testing.assert_close(sparse["a"], torch.tensor([0.0, 0.0, 0.5, 1.0]))
    for values in _guides().normalized("global", power=0.5).values():
        assert values.min() >= 0 and values.max() <= 1
    with pytest.raises(ValueError, match="mode"):
        _guides().normalized("per_layer")


def test_summary_describes_each_tensor():
    records = {r.name: r for r in _guides().summary("per_tensor")}
    assert records["a"].numel == 4
    assert records["a"].frac_near_0 == pytest.approx(0.25)
    assert records["a"].frac_near_1 == pytest.approx(0.25)
    assert records["a"].mean == pytest.approx(0.4375)
    assert records["b"].median == 1.0


def test_summary_by_layer_pools_the_layer_tensors():
    guides = GuideValues(
        raw={
            "encoder.blocks.0.attn.qkv.weight": torch.zeros(3),
            "encoder.blocks.0.ff.fc_in.bias": torch.full((1,), 4.0),
            "head.linear.weight": torch.full((2,), 2.0),
        },
        n_scouts=1,
    )
    records = {r.name: r for r in guides.summary("global", by="layer")}
    assert set(records) == {"encoder.blocks.0", "head.linear"}
    assert records["encoder.blocks.0"].numel == 4
    assert records["encoder.blocks.0"].mean == pytest.approx(0.25)
    assert records["head.linear"].median == pytest.approx(0.5)


def test_state_dict_round_trip_through_safetensors(tmp_path):
    guides = _guides()
    save_file(guides.state_dict(), tmp_path / "guides.safetensors")
    loaded = GuideValues.from_state_dict(load_file(tmp_path / "guides.safetensors"))
    assert loaded.n_scouts == 5
    assert loaded.raw.keys() == guides.raw.keys()
    for name, tensor in guides.raw.items():
        assert torch.equal(loaded.raw[name], tensor)
    with pytest.raises(ValueError, match="n_scouts"):
        GuideValues.from_state_dict({"a": torch.ones(1)})


def test_adapt_guides_gives_one_to_a_reshaped_head():
    cfg = EncoderConfig(n_genes=8, d_model=8, n_heads=2, n_layers=1)
    scouts_model = GTLModel(ExpressionEncoder(cfg), ClassificationHead(8, 2))
    guides = {n: torch.full_like(p, 0.3) for n, p in scouts_model.named_parameters()}
    downstream = GTLModel(ExpressionEncoder(cfg), ClassificationHead(8, 3))
    adapted = adapt_guides(guides, downstream)
    assert adapted.keys() == dict(downstream.named_parameters()).keys()
    assert torch.equal(adapted["head.linear.weight"], torch.ones(3, 8))
    assert torch.equal(adapted["head.linear.bias"], torch.ones(3))
    assert torch.equal(adapted["encoder.gene_embedding"], torch.full((8, 8), 0.3))
