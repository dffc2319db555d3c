"""Pre-train → cousin tasks from planted clusters → scouts: guides carry structure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from test_pretrain import log_cpm_top_genes

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.train import PretrainConfig, ScoutConfig, pretrain, train_scouts

CLUSTER_PAIRS = [(0, 1), (2, 3), (4, 5), (0, 3), (1, 4), (2, 5)]


@dataclass(frozen=True)
class Task:
    indices: np.ndarray
    labels: np.ndarray


@pytest.fixture(scope="module")
def scouted(synthetic_corpus):
    values = log_cpm_top_genes(synthetic_corpus.X, 64)
    clusters = synthetic_corpus.obs["cluster"].cat.codes.to_numpy()
    encoder = ExpressionEncoder(EncoderConfig(n_genes=64, d_model=32, n_heads=4, n_layers=1))
    config = PretrainConfig(
        epochs=12, batch_size=32, lr=1e-2, mask_fraction=0.3, holdout_fraction=0.2
    )
    pretrain(encoder, values, config=config, seed=0)
    tasks = []
    for low, high in CLUSTER_PAIRS:
        indices = np.flatnonzero(np.isin(clusters, [low, high]))
        tasks.append(Task(indices, (clusters[indices] == high).astype(np.int64)))
    head = ClassificationHead(32, 2, seed=1)
    result = train_scouts(
        encoder, head, values, tasks, config=ScoutConfig(steps=20, batch_size=16), seed=0
    )
    return result


def test_scouts_learn_their_cousin_tasks(scouted):
    assert (scouted.losses[:, -3:].mean(axis=1) < scouted.losses[:, :3].mean(axis=1)).all()


def test_guides_are_not_uniform(scouted):
    guides = scouted.guides.normalized("global")
    every = torch.cat([g.flatten() for g in guides.values()])
    assert every.min() == 0.0 and every.max() == 1.0
    assert every.std() > 0.1
    means = {r.name: r.mean for r in scouted.guides.summary("global")}
    moved = [m for n, m in means.items() if n != "encoder.mask_embedding"]
    assert max(moved) > 4 * min(moved)  # tensors differ, not just elements


def test_guides_reflect_the_architecture(scouted):
    guides = scouted.guides.normalized("global")
    d_model = 32
    key_bias = guides["encoder.blocks.0.attn.qkv.bias"][d_model : 2 * d_model]
    assert key_bias.max() < 0.05  # softmax ignores a key bias: scouts never move it
    assert guides["encoder.mask_embedding"].max() == 0.0  # no gene masked while scouting
    query_bias = guides["encoder.blocks.0.attn.qkv.bias"][:d_model]
    assert query_bias.mean() > 0.1
