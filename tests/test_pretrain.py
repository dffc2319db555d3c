"""Masked pre-training: learns planted structure, is seeded, resumes bit-identically."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from gtlomics.nn import EncoderConfig, ExpressionEncoder
from gtlomics.train import CheckpointConfig, PretrainConfig, pretrain

pretrain_module = importlib.import_module("gtlomics.train.pretrain")


def log_cpm_top_genes(counts: np.ndarray, n_genes: int) -> np.ndarray:
    """log1p(CPM) of the ``n_genes`` most variable genes, float32."""
    counts = np.asarray(counts, dtype=np.float64)
    log_cpm = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e6)
    top = np.sort(np.argsort(-log_cpm.var(axis=0))[:n_genes])
    return log_cpm[:, top].astype(np.float32)


def _small_values() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)


def _small_encoder() -> ExpressionEncoder:
    return ExpressionEncoder(EncoderConfig(n_genes=16, d_model=16, n_heads=2, n_layers=1))


SMALL = PretrainConfig(epochs=3, batch_size=8, holdout_fraction=0.25)


def test_masked_pretraining_beats_the_mean_predictor_on_planted_structure(synthetic_corpus):
    values = log_cpm_top_genes(synthetic_corpus.X, 64)
    encoder = ExpressionEncoder(EncoderConfig(n_genes=64, d_model=32, n_heads=4, n_layers=1))
    config = PretrainConfig(
        epochs=20, batch_size=32, lr=1e-2, mask_fraction=0.3, holdout_fraction=0.2
    )
    result = pretrain(encoder, values, config=config, seed=0)
    first, last = result.history[0], result.history[-1]
    assert len(result.history) == 20
    assert last.baseline_loss == pytest.approx(first.baseline_loss)
    assert last.holdout_loss < 0.5 * last.baseline_loss
    assert last.train_loss < first.train_loss


def test_same_seed_same_weights_and_other_seed_differs():
    runs = []
    for seed in (1, 1, 2):
        encoder = _small_encoder()
        pretrain(encoder, _small_values(), config=SMALL, seed=seed)
        runs.append(encoder.state_dict())
    for name, tensor in runs[0].items():
        assert torch.equal(tensor, runs[1][name]), name
    assert not torch.equal(runs[0]["gene_embedding"], runs[2]["gene_embedding"])


def test_absent_genes_are_never_targets():
    values = _small_values()
    present = np.ones(16, dtype=bool)
    present[:4] = False
    values[:, :4] = np.nan  # absent genes carry no usable values
    result = pretrain(_small_encoder(), values, config=SMALL, seed=0, present=present)
    assert all(np.isfinite([h.train_loss, h.holdout_loss]).all() for h in result.history)


def test_config_validation():
    with pytest.raises(ValueError, match="mask_fraction"):
        PretrainConfig(mask_fraction=0.0)
    with pytest.raises(ValueError, match="holdout_fraction"):
        PretrainConfig(holdout_fraction=1.0)


class _Crash(Exception):
    pass


def test_resume_after_crash_equals_uninterrupted(tmp_path, monkeypatch):
    config = PretrainConfig(epochs=3, batch_size=8, holdout_fraction=0.25, warmup_fraction=0.3)
    reference = _small_encoder()
    expected = pretrain(reference, _small_values(), config=config, seed=4)

    real_save = pretrain_module.save_checkpoint

    def save_then_crash(path, state):
        real_save(path, state)
        raise _Crash  # killed right after a mid-epoch checkpoint

    checkpoint = CheckpointConfig(tmp_path / "pretrain.pt", every_n_steps=5)
    monkeypatch.setattr(pretrain_module, "save_checkpoint", save_then_crash)
    with pytest.raises(_Crash):
        pretrain(_small_encoder(), _small_values(), config=config, seed=4, checkpoint=checkpoint)
    monkeypatch.setattr(pretrain_module, "save_checkpoint", real_save)
    resumed_encoder = _small_encoder()
    resumed = pretrain(
        resumed_encoder, _small_values(), config=config, seed=4, checkpoint=checkpoint
    )
    assert resumed.history == expected.history
    for name, tensor in reference.state_dict().items():
        assert torch.equal(resumed_encoder.state_dict()[name], tensor), name
    for name, tensor in expected.head.state_dict().items():
        assert torch.equal(resumed.head.state_dict()[name], tensor), name
