"""CUDA paths: bf16 autocast, fused attention kernels, pinned loading, torch.compile.

Every test is marked ``gpu`` and skipped without CUDA (the default pytest run deselects them;
run ``pytest -m gpu tests/test_gpu_paths.py`` on a GPU machine).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gtlomics.corpus import ArrayCorpus
from gtlomics.foundation import build_foundation
from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.train import PretrainConfig, ScoutConfig, pretrain, train_scouts

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


CFG = EncoderConfig(n_genes=64, d_model=32, n_heads=4, n_layers=2)
CUDA = torch.device("cuda")


@dataclass(frozen=True)
class Task:
    indices: np.ndarray
    labels: np.ndarray


def _values(n_samples: int = 96) -> np.ndarray:
    return (
        np.random.default_rng(0).gamma(1.0, 1.0, size=(n_samples, CFG.n_genes)).astype(np.float32)
    )


def test_flash_attention_kernel_runs_the_encoder_in_bf16():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    encoder = ExpressionEncoder(CFG).to(CUDA)
    values = torch.from_numpy(_values(8)).to(CUDA)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.autocast("cuda", dtype=torch.bfloat16):
        features = encoder.forward_features(values)  # raises if the flash kernel cannot run
    reference = encoder.forward_features(values)
    assert features.dtype == torch.bfloat16
    torch.testing.assert_close(features.float(), reference, rtol=0.05, atol=0.05)


def test_fused_sdpa_matches_explicit_attention_in_bf16():
    gen = torch.Generator(device=CUDA).manual_seed(0)
    q, k, v = (torch.randn(2, 4, 512, 16, generator=gen, device=CUDA) for _ in range(3))
    explicit = (q @ k.transpose(-2, -1) / 4.0).softmax(-1) @ v
    fused = F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    torch.testing.assert_close(fused.float(), explicit, rtol=0.02, atol=0.02)


def test_bf16_pretraining_tracks_fp32_and_learns():
    values = _values()
    config = PretrainConfig(epochs=4, batch_size=16)
    results = {}
    for bf16 in (False, True):
        encoder = ExpressionEncoder(CFG, seed=0)
        values_gpu = torch.from_numpy(values).to(CUDA)
        run_config = replace(config, autocast_bf16=bf16)
        results[bf16] = pretrain(encoder, values_gpu, config=run_config, seed=1)
    bf16, fp32 = results[True].final, results[False].final
    assert np.isfinite(bf16.train_loss) and bf16.holdout_loss < bf16.baseline_loss
    assert abs(bf16.holdout_loss - fp32.holdout_loss) < 0.05 * fp32.holdout_loss


def test_vectorised_scouts_match_the_loop_on_cuda():
    rng = np.random.default_rng(0)
    tasks = [Task(rng.choice(96, 24, replace=False), np.arange(24) % 2) for _ in range(4)]
    values = torch.from_numpy(_values()).to(CUDA)
    out = {}
    for vectorized in (True, False):
        encoder, head = ExpressionEncoder(CFG, seed=0), ClassificationHead(32, 2, seed=1)
        config = ScoutConfig(steps=5, batch_size=8, vectorized=vectorized, autocast_bf16=False)
        out[vectorized] = train_scouts(encoder, head, values, tasks, config=config, seed=2)
    for name, raw in out[False].guides.raw.items():
        torch.testing.assert_close(out[True].guides.raw[name], raw, rtol=1e-3, atol=1e-9)


def test_streaming_pretraining_moves_pinned_chunks_to_cuda():
    encoder = ExpressionEncoder(CFG, seed=0)
    corpus = ArrayCorpus(_values(), chunk_size=32)
    result = pretrain(
        encoder, corpus, config=PretrainConfig(epochs=2, batch_size=16), seed=0, device="cuda"
    )
    assert encoder.gene_embedding.device.type == "cuda"
    assert np.isfinite(result.final.holdout_loss)


def test_compiled_ddp_pretraining_runs_on_cuda():
    encoder = ExpressionEncoder(CFG, seed=0)
    values = torch.from_numpy(_values()).to(CUDA)
    result = pretrain(
        encoder,
        values,
        config=PretrainConfig(epochs=1, batch_size=16),
        seed=0,
        distributed=True,
        compile_model=True,
    )
    assert np.isfinite(result.final.train_loss)


def test_foundation_builds_on_cuda_and_saves_cpu_tensors(tmp_path):
    from gtlomics.datasets.synthetic import SyntheticDesign
    from gtlomics.foundation import Foundation

    corpus = SyntheticDesign.random(n_genes=120, random_state=0).sample(60, random_state=1)
    torch.cuda.reset_peak_memory_stats()
    foundation = build_foundation(corpus, preset="tiny", device="cuda", random_state=0)
    assert torch.cuda.max_memory_allocated() > 0  # it trained on the GPU
    assert foundation.provenance.build_config["device"] == "cuda"
    assert all(t.device.type == "cpu" for t in foundation.encoder_state.values())
    assert all(t.device.type == "cpu" for t in foundation.guides.raw.values())
    assert all(torch.isfinite(t).all() for t in foundation.guides.raw.values())
    assert Foundation.load(foundation.save(tmp_path / "f")).n_genes == foundation.n_genes
