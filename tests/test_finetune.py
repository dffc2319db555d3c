"""Fine-tuning: fixed schedule, inner-split early stopping, guides, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder, GTLModel
from gtlomics.train import FinetuneConfig, GuidanceConfig, GuideValues, finetune
from gtlomics.train.finetune import inner_split


def _model(n_classes: int = 2) -> GTLModel:
    cfg = EncoderConfig(n_genes=16, d_model=16, n_heads=2, n_layers=1)
    return GTLModel(ExpressionEncoder(cfg, seed=0), ClassificationHead(16, n_classes, seed=1))


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 8)
    values = rng.normal(size=(16, 16)).astype(np.float32)
    values[labels == 1, :3] += 1.5
    return values, labels


def _params(model: GTLModel) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_fixed_schedule_learns_and_is_repeatable():
    values, labels = _data()
    config = FinetuneConfig(epochs=20, batch_size=8, lr=3e-3)
    first, second = _model(), _model()
    result = finetune(first, values, labels, config=config, seed=0)
    finetune(second, values, labels, config=config, seed=0)
    assert len(result.history) == 20 and result.best_epoch is None
    assert all(h.inner_val_loss is None for h in result.history)
    assert result.history[-1].train_loss < 0.6 * result.history[0].train_loss
    for name, tensor in _params(first).items():
        assert torch.equal(tensor, _params(second)[name]), name


def test_zero_guides_freeze_the_encoder_and_strength_zero_does_not():
    values, labels = _data()
    model = _model()
    start = _params(model)
    guides = {
        n: torch.zeros_like(p) if n.startswith("encoder.") else torch.ones_like(p)
        for n, p in model.named_parameters()
    }
    config = FinetuneConfig(epochs=3, batch_size=8, weight_decay=0.1)
    finetune(model, values, labels, config=config, seed=0, guides=guides)
    for name, tensor in _params(model).items():
        assert torch.equal(tensor, start[name]) == name.startswith("encoder."), name
    unguided = _model()
    finetune(
        unguided,
        values,
        labels,
        config=config,
        seed=0,
        guides=guides,
        guidance=GuidanceConfig(strength=0.0),
    )
    assert not torch.equal(unguided.encoder.gene_embedding, start["encoder.gene_embedding"])


def test_normalised_guide_values_of_zero_freeze_their_tensor():
    values, labels = _data()
    model = _model()
    raw = {n: torch.ones_like(p) for n, p in model.named_parameters()}
    raw["head.linear.weight"] = torch.zeros_like(raw["head.linear.weight"])
    raw["encoder.gene_embedding"] = torch.zeros_like(raw["encoder.gene_embedding"])
    before = model.head.linear.weight.detach().clone()
    finetune(
        model,
        values,
        labels,
        config=FinetuneConfig(epochs=2),
        seed=0,
        guides=GuideValues(raw, n_scouts=3).normalized(),
    )
    assert torch.equal(model.head.linear.weight, before)


def test_inner_split_is_stratified_and_keeps_training_rows():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1 + [2])
    fit, held = inner_split(labels, 0.34, seed=0)
    assert not set(fit) & set(held) and len(fit) + len(held) == len(labels)
    for cls in (0, 1, 2):
        assert (labels[held] == cls).sum() >= 1 and (labels[fit] == cls).sum() >= 1


def test_early_stopping_watches_the_inner_split_and_restores_the_best():
    values, labels = _data()
    config = FinetuneConfig(
        epochs=40, batch_size=4, lr=3e-2, early_stopping_fraction=0.25, patience=3
    )
    model = _model()
    result = finetune(model, values, labels, config=config, seed=0)
    inner = [h.inner_val_loss for h in result.history]
    assert result.best_epoch == int(np.argmin(inner))
    assert result.stopped_early == (len(result.history) < 40)
    if result.stopped_early:
        assert len(result.history) - 1 - result.best_epoch == config.patience
    _, held = inner_split(labels, 0.25, seed=0)
    with torch.no_grad():
        model.eval()
        logits = model(torch.as_tensor(values[held]))
        loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels[held]))
    assert float(loss) == pytest.approx(min(inner), rel=1e-5)


def test_label_shape_is_checked():
    values, labels = _data()
    with pytest.raises(ValueError, match="labels must have shape"):
        finetune(_model(), values, labels[:-1], config=FinetuneConfig(epochs=1), seed=0)


def test_guidance_config_refuses_bad_values_with_what_to_do():
    with pytest.raises(ValueError, match="'none' for unguided"):
        GuidanceConfig(mode="off")
    with pytest.raises(ValueError, match="normalize must be one of"):
        GuidanceConfig(normalize="layer")
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        GuidanceConfig(strength=1.5)
    assert GuidanceConfig(mode="constant").control == "constant"
    assert GuidanceConfig().control is None and GuidanceConfig().guided
