"""Atomic checkpoints: no torn or stray files, fingerprints guard against mixing runs."""

from __future__ import annotations

import pytest
import torch

from gtlomics.train import CheckpointConfig, load_checkpoint, save_checkpoint


def test_save_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "run" / "state.pt"
    save_checkpoint(path, {"fingerprint": "a", "step": 3, "w": torch.arange(4.0)})
    save_checkpoint(path, {"fingerprint": "a", "step": 4, "w": torch.arange(5.0)})
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]
    state = load_checkpoint(path, fingerprint="a")
    assert state["step"] == 4 and torch.equal(state["w"], torch.arange(5.0))


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "state.pt"
    save_checkpoint(path, {"fingerprint": "a", "step": 1})
    with pytest.raises(Exception):  # noqa: B017 - any pickling error
        save_checkpoint(path, {"fingerprint": "a", "step": lambda: None})
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
    assert load_checkpoint(path, fingerprint="a")["step"] == 1


def test_missing_checkpoint_and_foreign_fingerprint(tmp_path):
    assert load_checkpoint(tmp_path / "none.pt", fingerprint="a") is None
    save_checkpoint(tmp_path / "s.pt", {"fingerprint": "a"})
    with pytest.raises(ValueError, match="different settings"):
        load_checkpoint(tmp_path / "s.pt", fingerprint="b")


def test_checkpoint_config():
    config = CheckpointConfig("x.pt", every_n_steps=4)
    assert [config.due(s) for s in (3, 4, 8)] == [False, True, True]
    with pytest.raises(ValueError, match="every_n_steps"):
        CheckpointConfig("x.pt", every_n_steps=0)
