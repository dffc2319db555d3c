"""A foundation build SIGKILLed mid-way and restarted ends bit-identical to an uninterrupted one.

The build runs in a subprocess (this file is also the worker: see :func:`worker_main`) with
``checkpoint_dir`` and a checkpoint after every optimiser step. It is killed twice:

1. with ``SIGKILL`` right after its third pre-training checkpoint is on disk;
2. on restart, with ``SIGKILL`` in the middle of writing its third scouting checkpoint (half the
   bytes are in the temporary file), which must leave the previous checkpoint intact.

A third run completes, and its saved foundation must equal, file by file (sha256), a foundation
built without interruption and without checkpoints in this process with the same seed. Bit for
bit because the layout is the same: the workers run this process's torch and BLAS thread counts.

The worker pauses at a chosen point (a marker file tells the test it is there) so that the kill
lands at a known moment instead of a timing race. UMAP is replaced by a deterministic stand-in
(the PCA coordinates) in the worker and the reference alike: its numba compilation costs ~30 s in
every fresh process; UMAP's own seeded determinism is tested in ``test_scouts.py``.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

TESTS_DIR = Path(__file__).resolve().parent
# A worker's native thread pools, set like this process's (torch's own count is an argument).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SEED = 11
CHECKPOINT_EVERY = 1
PAUSE_S = 300  # a paused worker waits this long for its SIGKILL
MARKER_TIMEOUT_S = 180


class _PcaAsUmap:
    """Deterministic UMAP stand-in: the first ``n_components`` PCA coordinates."""

    def __init__(self, *, n_components: int, **_: object) -> None:
        self.n_components = n_components

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X)[:, : self.n_components].copy()


def _import_pca_as_umap() -> types.SimpleNamespace:
    """Stand-in for ``gtlomics.scouts._import_umap``."""
    return types.SimpleNamespace(UMAP=_PcaAsUmap)


def tiny_corpus():
    """60 synthetic samples of 48 genes."""
    from gtlomics.datasets.synthetic import SyntheticDesign

    design = SyntheticDesign.random(n_genes=48, n_clusters=4, n_modules=6, random_state=0)
    return design.sample(60, random_state=1)


def build_tiny(checkpoint_dir: str | None, corpus_path: str = "-"):
    """The build under test: 8 pre-training steps, 3 scouts × 6 steps, on :func:`tiny_corpus`
    in memory, or streamed from ``corpus_path`` 16 rows at a time (4 chunks, a step each)."""
    from gtlomics.corpus import CorpusSizes
    from gtlomics.foundation import FoundationPreset, build_foundation, get_preset
    from gtlomics.train import PretrainConfig, ScoutConfig

    preset = FoundationPreset(
        n_genes=32,
        d_model=8,
        n_layers=1,
        n_heads=2,
        n_scouts=3,
        pretrain=PretrainConfig(epochs=2, batch_size=16),
        scouts=ScoutConfig(steps=6, batch_size=8),
        cousin_tasks=get_preset("tiny").cousin_tasks,
    )
    return build_foundation(
        tiny_corpus() if corpus_path == "-" else corpus_path,
        preset=preset,
        random_state=SEED,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=CHECKPOINT_EVERY,
        sizes=CorpusSizes(chunk_size=16),
    )


# ------------------------------------------------------------------------------ the worker


def _pause(marker: Path) -> None:
    marker.write_text("paused")
    time.sleep(PAUSE_S)
    raise SystemExit("worker was not killed")


def _torn_save(marker: Path):
    """``torch.save`` that writes half of the bytes, then pauses: a kill mid-write."""
    import io

    def save(state, handle) -> None:
        buffer = io.BytesIO()
        torch.serialization.save(state, buffer)
        data = buffer.getvalue()
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
        _pause(marker)

    return save


def _hook_saves(stage: str, pause: str, counts: dict[str, int], marker: Path) -> None:
    """Count the checkpoint saves of ``stage`` and pause as ``pause`` asks (``how:stage:n``)."""
    module = importlib.import_module(f"gtlomics.train.{stage}")
    real_save = module.save_checkpoint
    how, pause_stage, nth = pause.split(":") if pause != "none" else ("none", "", "0")

    def save(path, state) -> None:
        counts[stage] += 1
        due = pause_stage == stage and counts[stage] == int(nth)
        if due and how == "torn":
            torch.save = _torn_save(marker)
        real_save(path, state)
        if due and how == "after":
            _pause(marker)

    module.save_checkpoint = save


def worker_main(argv: list[str]) -> None:
    """``checkpoint_dir out_dir pause marker threads corpus``: build on ``threads`` torch threads
    (from the ``corpus`` file, or in memory for ``-``), save to ``out_dir``, report save counts."""
    checkpoint_dir, out_dir, pause, marker, threads, corpus_path = argv
    torch.set_num_threads(int(threads))
    importlib.import_module("gtlomics.scouts")._import_umap = _import_pca_as_umap
    counts = {"pretrain": 0, "scouting": 0}
    for stage in counts:
        _hook_saves(stage, pause, counts, Path(marker))
    foundation = build_tiny(checkpoint_dir, corpus_path)
    foundation.save(out_dir)
    (Path(out_dir).parent / "save_counts.json").write_text(json.dumps(counts))


# ------------------------------------------------------------------------------- the test


def _start_worker(
    tmp_path: Path, run: str, pause: str, corpus_path: str
) -> tuple[subprocess.Popen, Path, Path]:
    """Start a worker; its stderr goes to ``<run>.stderr`` (a pipe could fill and block it)."""
    marker = tmp_path / f"{run}.paused"
    out_dir = tmp_path / run / "foundation"
    out_dir.parent.mkdir()
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r}); "
        "from test_kill_resume import worker_main; worker_main(sys.argv[1:])"
    )
    threads = str(torch.get_num_threads())  # the reference's layout: this process's threads
    args = [str(tmp_path / "checkpoints"), str(out_dir), pause, str(marker), threads, corpus_path]
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, threads), "PYTHONPATH": _pythonpath()}
    with open(tmp_path / f"{run}.stderr", "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=stderr, env=env
        )
    return process, marker, out_dir


def _pythonpath() -> str:
    """PYTHONPATH under which a worker imports the ``gtlomics`` this process tests."""
    return os.pathsep.join(filter(None, [str(TESTS_DIR.parent), os.environ.get("PYTHONPATH")]))


def _stderr(marker: Path) -> str:
    return marker.with_suffix(".stderr").read_text(errors="replace")


def _kill_when_paused(process: subprocess.Popen, marker: Path) -> None:
    deadline = time.monotonic() + MARKER_TIMEOUT_S
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"worker ended before pausing:\n{_stderr(marker)}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("worker never reached its pause point")
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def _run_to_completion(tmp_path: Path, run: str, corpus_path: str) -> tuple[Path, dict[str, int]]:
    process, marker, out_dir = _start_worker(tmp_path, run, "none", corpus_path)
    assert process.wait(timeout=MARKER_TIMEOUT_S) == 0, _stderr(marker)
    counts = json.loads((out_dir.parent / "save_counts.json").read_text())
    return out_dir, counts


def _file_digests(folder: Path) -> dict[str, str]:
    return json.loads((folder / "checksums.json").read_text())["files"]


@pytest.fixture(params=["in_memory", "streamed"])
def corpus_path(request, tmp_path) -> str:
    """``-`` (the corpus in memory), or the path of the corpus written once as an ``.h5ad``."""
    if request.param == "in_memory":
        return "-"
    path = tmp_path / "corpus.h5ad"
    tiny_corpus().write_h5ad(path)
    return str(path)


@pytest.fixture()
def reference(tmp_path, monkeypatch, corpus_path) -> Path:
    """The same build, uninterrupted and without checkpoints, in this process.

    On the thread counts the workers get: this process's torch threads, and as many for numpy's
    BLAS (the workers' environment sets it).
    """
    monkeypatch.setattr(
        importlib.import_module("gtlomics.scouts"), "_import_umap", _import_pca_as_umap
    )
    with threadpool_limits(limits=torch.get_num_threads()):
        foundation = build_tiny(None, corpus_path)
    return foundation.save(tmp_path / "reference")


def test_build_killed_twice_resumes_to_the_uninterrupted_foundation(
    tmp_path, reference, corpus_path
):
    checkpoints = tmp_path / "checkpoints"

    # 1. SIGKILL right after the third pre-training checkpoint was written
    process, marker, out_dir = _start_worker(tmp_path, "first", "after:pretrain:3", corpus_path)
    _kill_when_paused(process, marker)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["pretrain.pt"]
    assert torch.load(checkpoints / "pretrain.pt", weights_only=True)["step"] == 3
    assert not out_dir.exists()

    # 2. restart; SIGKILL halfway through writing the third scouting checkpoint
    process, marker, out_dir = _start_worker(tmp_path, "second", "torn:scouting:3", corpus_path)
    _kill_when_paused(process, marker)
    torn = [p for p in checkpoints.iterdir() if p.name.startswith(".scouts.pt.")]
    assert len(torn) == 1 and torn[0].stat().st_size > 0  # the half-written temporary file
    assert torch.load(checkpoints / "scouts.pt", weights_only=True)["ticks"] == 2
    assert torch.load(checkpoints / "pretrain.pt", weights_only=True)["step"] == 8
    assert not out_dir.exists()

    # 3. restart and finish: pre-training is done, scouting resumes at step 3 of 6
    out_dir, saves = _run_to_completion(tmp_path, "third", corpus_path)
    assert saves == {"pretrain": 0, "scouting": 4}
    assert _file_digests(out_dir) == _file_digests(reference)

    from gtlomics.foundation import Foundation

    resumed, expected = Foundation.load(out_dir), Foundation.load(reference)
    for name, raw in expected.guides.raw.items():
        assert torch.equal(resumed.guides.raw[name], raw), name
    for name, weight in expected.encoder_state.items():
        assert torch.equal(resumed.encoder_state[name], weight), name


def test_resume_refuses_checkpoints_of_another_build(tmp_path, monkeypatch):
    """A checkpoint folder reused with another seed is an error, never silently mixed in."""
    scouts = importlib.import_module("gtlomics.scouts")
    monkeypatch.setattr(scouts, "_import_umap", _import_pca_as_umap)
    build_tiny(str(tmp_path))
    monkeypatch.setattr(sys.modules[__name__], "SEED", SEED + 1)
    with pytest.raises(ValueError, match="different settings, data or seed; delete it"):
        build_tiny(str(tmp_path))
