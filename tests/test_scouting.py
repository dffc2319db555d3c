"""Scouting: shared start, no aliasing, vectorised == loop, different task sizes, resume."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.train import CheckpointConfig, ScoutConfig, scout_batch_schedule, train_scouts

scouting = importlib.import_module("gtlomics.train.scouting")
passes = importlib.import_module("gtlomics.train.scout_passes")

CFG = EncoderConfig(n_genes=32, d_model=16, n_heads=2, n_layers=2)


@dataclass(frozen=True)
class Task:
    indices: np.ndarray
    labels: np.ndarray


def _data(dtype=np.float32) -> tuple[np.ndarray, list[Task]]:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(80, CFG.n_genes)).astype(dtype)
    tasks = []
    for i, size in enumerate([12, 20, 30, 7]):  # different sizes, one smaller than a batch
        indices = rng.choice(80, size=size, replace=False)
        labels = np.arange(size) % 2
        values[indices[labels == 1], i] += 2.0  # something to learn
        tasks.append(Task(indices, labels))
    return values, tasks


def _start(dtype=torch.float32):
    return ExpressionEncoder(CFG, seed=0).to(dtype), ClassificationHead(16, 2, seed=1).to(dtype)


def _run(vectorized: bool, dtype=np.float32, **overrides):
    values, tasks = _data(dtype)
    encoder, head = _start(torch.float64 if dtype == np.float64 else torch.float32)
    config = ScoutConfig(steps=8, batch_size=8, vectorized=vectorized, **overrides)
    return train_scouts(encoder, head, values, tasks, config=config, seed=3)


def test_schedule_is_seeded_and_stays_inside_each_task():
    _, tasks = _data()
    schedule = scout_batch_schedule(tasks, steps=5, batch_size=8, seed=1)
    assert schedule.shape == (4, 5, 8)
    for i, task in enumerate(tasks):
        assert set(schedule[i].ravel()) <= set(task.indices)
    assert np.array_equal(schedule, scout_batch_schedule(tasks, steps=5, batch_size=8, seed=1))
    assert not np.array_equal(schedule, scout_batch_schedule(tasks, steps=5, batch_size=8, seed=2))


def test_vectorised_equals_loop_in_float64_with_adam():
    vec, loop = _run(True, np.float64), _run(False, np.float64)
    for name, raw in loop.guides.raw.items():
        torch.testing.assert_close(vec.guides.raw[name], raw, rtol=1e-7, atol=1e-14, msg=name)
    np.testing.assert_allclose(vec.losses, loop.losses, rtol=1e-9)


def test_gradient_clipping_is_per_scout():
    vec = _run(True, np.float64, grad_clip=0.01, optimizer="sgd", lr=0.5)
    loop = _run(False, np.float64, grad_clip=0.01, optimizer="sgd", lr=0.5)
    unclipped = _run(False, np.float64, grad_clip=None, optimizer="sgd", lr=0.5)
    for name, raw in loop.guides.raw.items():
        torch.testing.assert_close(vec.guides.raw[name], raw, rtol=1e-7, atol=1e-14, msg=name)
    head = "head.linear.weight"
    assert not torch.allclose(loop.guides.raw[head], unclipped.guides.raw[head])  # clip was active


def test_vectorised_equals_loop_in_float32_with_sgd():
    vec = _run(True, optimizer="sgd", lr=0.05)
    loop = _run(False, optimizer="sgd", lr=0.05)
    vec_norm, loop_norm = vec.guides.normalized(), loop.guides.normalized()
    for name, guide in loop_norm.items():
        torch.testing.assert_close(vec_norm[name], guide, rtol=0, atol=1e-5, msg=name)


def test_vectorised_chunks_equal_one_pass():
    whole, chunked = _run(True, np.float64), _run(True, np.float64, chunk_size=3)
    for name, raw in whole.guides.raw.items():
        torch.testing.assert_close(chunked.guides.raw[name], raw, rtol=1e-9, atol=1e-16)


@pytest.mark.parametrize("vectorized", [True, False])
def test_start_is_not_aliased_and_every_parameter_has_a_nonzero_guide(vectorized):
    values, tasks = _data()
    encoder, head = _start()
    before = {
        n: p.detach().clone() for n, p in [*encoder.named_parameters(), *head.named_parameters()]
    }
    config = ScoutConfig(steps=5, batch_size=8, vectorized=vectorized)
    present = np.ones(CFG.n_genes, dtype=bool)
    present[0] = False  # so the mask embedding is trained too
    result = train_scouts(encoder, head, values, tasks, config=config, seed=0, present=present)
    expected = {f"encoder.{n}" for n, _ in encoder.named_parameters()}
    expected |= {f"head.{n}" for n, _ in head.named_parameters()}
    assert set(result.guides.raw) == expected
    assert result.guides.n_scouts == len(tasks)
    for name, raw in result.guides.raw.items():
        assert torch.isfinite(raw).all() and raw.sum() > 0, name
    for name, param in [*encoder.named_parameters(), *head.named_parameters()]:
        assert torch.equal(param, before[name]), f"{name} changed: the start was aliased"
    assert result.losses.shape == (4, 5)


def test_per_sample_presence_agrees_between_paths():
    values, tasks = _data(np.float64)
    present = np.random.default_rng(1).random(values.shape) > 0.2
    results = []
    for vectorized in (True, False):
        encoder, head = _start(torch.float64)
        config = ScoutConfig(steps=4, batch_size=8, vectorized=vectorized)
        results.append(
            train_scouts(encoder, head, values, tasks, config=config, seed=0, present=present)
        )
    for name, raw in results[1].guides.raw.items():
        torch.testing.assert_close(results[0].guides.raw[name], raw, rtol=1e-7, atol=1e-14)
    assert results[0].guides.raw["encoder.mask_embedding"].sum() > 0


def test_bad_tasks_are_reported():
    values, _ = _data()
    encoder, head = _start()
    bad = [Task(np.array([0, 1, 200]), np.array([0, 1, 0]))]
    with pytest.raises(ValueError, match="outside values"):
        train_scouts(encoder, head, values, bad, config=ScoutConfig(steps=1), seed=0)
    bad = [Task(np.array([0, 1]), np.array([0, 2]))]
    with pytest.raises(ValueError, match="labels outside"):
        train_scouts(encoder, head, values, bad, config=ScoutConfig(steps=1), seed=0)


class _Crash(Exception):
    pass


@pytest.mark.parametrize("vectorized,every", [(True, 3), (False, 5)])
def test_resume_after_crash_equals_uninterrupted(tmp_path, monkeypatch, vectorized, every):
    values, tasks = _data()
    config = ScoutConfig(steps=8, batch_size=8, vectorized=vectorized, chunk_size=2)
    reference = train_scouts(*_start(), values, tasks, config=config, seed=5)

    saves = []
    real_save = scouting.save_checkpoint

    def save_then_crash(path, state):
        real_save(path, state)
        saves.append(path)
        if len(saves) == 2:  # killed right after the second checkpoint
            raise _Crash

    checkpoint = CheckpointConfig(tmp_path / "scouts.pt", every_n_steps=every)
    monkeypatch.setattr(scouting, "save_checkpoint", save_then_crash)
    with pytest.raises(_Crash):
        train_scouts(*_start(), values, tasks, config=config, seed=5, checkpoint=checkpoint)
    monkeypatch.setattr(scouting, "save_checkpoint", real_save)
    resumed = train_scouts(*_start(), values, tasks, config=config, seed=5, checkpoint=checkpoint)
    for name, raw in reference.guides.raw.items():
        assert torch.equal(resumed.guides.raw[name], raw), name
    assert np.array_equal(resumed.losses, reference.losses)
    with pytest.raises(ValueError, match="different settings"):
        train_scouts(*_start(), values, tasks, config=config, seed=6, checkpoint=checkpoint)


def test_cpu_batches_light_scouts_and_loops_compute_bound_ones():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    heavy = passes.ScoutCost.of(EncoderConfig(n_genes=256, d_model=64), batch_size=32)
    assert heavy.activation_bytes == 32 * 257 * 256 * 4  # (B, T, d_ff) float32
    assert heavy.step_flops > passes.CPU_ENSEMBLE_MAX_FLOPS
    light = passes.ScoutCost.of(CFG, batch_size=8)
    default = ScoutConfig()
    assert passes.scouts_per_pass(default, 64, cpu, heavy) == 1
    assert passes.scouts_per_pass(default, 64, gpu, heavy) == 64
    assert passes.scouts_per_pass(default, 64, cpu, light) == 64
    third = passes.ScoutCost(activation_bytes=passes.CPU_PASS_BYTES // 3, step_flops=1e9)
    assert passes.scouts_per_pass(default, 64, cpu, third) == 3
    assert passes.scouts_per_pass(ScoutConfig(chunk_size=16), 64, cpu, heavy) == 16
    assert passes.scouts_per_pass(ScoutConfig(vectorized=False), 64, gpu, light) == 1


def test_compute_bound_scouts_on_cpu_train_exactly_like_the_loop(monkeypatch):
    monkeypatch.setattr(passes, "CPU_ENSEMBLE_MAX_FLOPS", 0.0)
    vec, loop = _run(True), _run(False)
    assert np.array_equal(vec.losses, loop.losses)
    for name, guide in loop.guides.raw.items():
        assert torch.equal(vec.guides.raw[name], guide), name


def test_a_checkpoint_from_another_grouping_is_refused(tmp_path, monkeypatch):
    values, tasks = _data()
    config = ScoutConfig(steps=8, batch_size=8)  # all 4 scouts in one CPU pass
    checkpoint = CheckpointConfig(tmp_path / "scouts.pt", every_n_steps=3)
    real_save = scouting.save_checkpoint

    def save_then_crash(path, state):
        real_save(path, state)
        raise _Crash

    monkeypatch.setattr(scouting, "save_checkpoint", save_then_crash)
    with pytest.raises(_Crash):
        train_scouts(*_start(), values, tasks, config=config, seed=5, checkpoint=checkpoint)
    monkeypatch.setattr(scouting, "save_checkpoint", real_save)
    monkeypatch.setattr(passes, "CPU_ENSEMBLE_MAX_FLOPS", 0.0)  # now one scout per group
    with pytest.raises(ValueError, match="different settings"):
        train_scouts(*_start(), values, tasks, config=config, seed=5, checkpoint=checkpoint)
