"""GuidedUpdate scales the realised update, for any optimiser."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder, GTLModel
from gtlomics.train import GuidedUpdate


def _model(seed: int = 0) -> GTLModel:
    cfg = EncoderConfig(n_genes=16, d_model=16, n_heads=2, n_layers=1)
    return GTLModel(ExpressionEncoder(cfg, seed=seed), ClassificationHead(16, 2, seed=seed))


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(8, 16, generator=gen), torch.randint(0, 2, (8,), generator=gen)


def _steps(model: nn.Module, optimizer: torch.optim.Optimizer, n: int) -> None:
    for i in range(n):
        values, labels = _batch(i)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(values), labels).backward()
        optimizer.step()


def _guides(model: nn.Module, value: float) -> dict[str, torch.Tensor]:
    return {n: torch.full_like(p, value) for n, p in model.named_parameters()}


def test_zero_guide_freezes_exactly_under_adamw_with_weight_decay():
    model = _model()
    guides = _guides(model, 1.0)
    frozen = "encoder.blocks.0.attn.qkv.weight"
    guides[frozen] = torch.zeros_like(guides[frozen])
    guides["head.linear.bias"] = torch.tensor([0.0, 1.0])  # element-wise guides
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    with GuidedUpdate(optimizer, model, guides):
        _steps(model, optimizer, 25)
    params = dict(model.named_parameters())
    assert torch.equal(params[frozen], before[frozen])
    assert params["head.linear.bias"][0] == before["head.linear.bias"][0]
    assert params["head.linear.bias"][1] != before["head.linear.bias"][1]
    assert not torch.equal(params["encoder.gene_embedding"], before["encoder.gene_embedding"])


def test_with_plain_sgd_update_scaling_equals_gradient_scaling():
    guided, scaled = _model(), _model()
    guide_tensors = {
        n: torch.rand(p.shape, generator=torch.Generator().manual_seed(i))
        for i, (n, p) in enumerate(guided.named_parameters())
    }
    opt_guided = torch.optim.SGD(guided.parameters(), lr=0.1)
    opt_scaled = torch.optim.SGD(scaled.parameters(), lr=0.1)
    for name, param in scaled.named_parameters():
        param.register_hook(lambda grad, g=guide_tensors[name]: grad * g)
    with GuidedUpdate(opt_guided, guided, guide_tensors):
        _steps(guided, opt_guided, 5)
    _steps(scaled, opt_scaled, 5)
    for (name, a), b in zip(guided.named_parameters(), scaled.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("optimizer_cls", [torch.optim.Adam, torch.optim.AdamW])
def test_adam_update_is_linear_in_the_guide(optimizer_cls):
    updates = {}
    for g in (1.0, 0.5, 0.0):
        model = _model()
        optimizer = optimizer_cls(model.parameters(), lr=1e-2, weight_decay=0.1)
        _steps(model, optimizer, 3)  # same optimiser state for every g
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        with GuidedUpdate(optimizer, model, _guides(model, g)):
            _steps(model, optimizer, 1)
        updates[g] = {n: p.detach() - start[n] for n, p in model.named_parameters()}
    for name, full in updates[1.0].items():
        assert full.abs().sum() > 0, name
        torch.testing.assert_close(updates[0.5][name], 0.5 * full, rtol=1e-4, atol=1e-7)
        assert torch.count_nonzero(updates[0.0][name]) == 0


def test_strength_interpolates_and_remove_unguides():
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    hook = GuidedUpdate(optimizer, model, _guides(model, 0.0), strength=0.0)
    before = model.head.linear.weight.detach().clone()
    _steps(model, optimizer, 1)
    assert not torch.equal(model.head.linear.weight, before)  # strength 0 = unguided
    hook.remove()
    with GuidedUpdate(optimizer, model, _guides(model, 0.0), strength=1.0):
        before = model.head.linear.weight.detach().clone()
        _steps(model, optimizer, 1)
        assert torch.equal(model.head.linear.weight, before)
    _steps(model, optimizer, 1)  # after the context the hooks are gone
    assert not torch.equal(model.head.linear.weight, before)


def test_errors_name_the_parameter():
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    guides = _guides(model, 1.0)
    del guides["head.linear.bias"]
    with pytest.raises(ValueError, match=r"'head.linear.bias' has no guide"):
        GuidedUpdate(optimizer, model, guides)
    guides = _guides(model, 1.0)
    guides["head.linear.weight"] = torch.ones(3, 16)
    with pytest.raises(ValueError, match=r"'head.linear.weight' has shape \(3, 16\)"):
        GuidedUpdate(optimizer, model, guides)
    with pytest.raises(ValueError, match="lacks"):
        GuidedUpdate(optimizer, model, {**_guides(model, 1.0), "linear.weight": torch.ones(1)})


def test_buffers_are_not_guided():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with GuidedUpdate(optimizer, model, _guides(model, 0.0)):
        model(torch.randn(6, 4, generator=torch.Generator().manual_seed(0))).sum().backward()
        optimizer.step()
    assert model[1].num_batches_tracked == 1
    assert model[1].running_mean.abs().sum() > 0
