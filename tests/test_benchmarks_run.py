"""The speed benchmarks still run end to end (tiny sizes; nothing here is timed or compared)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

TINY_RUNS = {
    "bench_scouts.py": [
        "--scouts", "3", "--steps", "1", "--repeats", "1", "--threads", "1", "--genes", "16",
        "--d-model", "8", "--heads", "2", "--layers", "1", "--batch-size", "4", "--device", "cpu",
    ],
    "bench_attention.py": ["--tokens", "32", "--batch", "2", "--repeats", "1", "--threads", "1"],
    "bench_pretrain.py": [
        "--genes", "16", "--d-model", "8", "--samples", "32", "--batch-size", "8",
    ],
}  # fmt: skip


@pytest.mark.parametrize("script", sorted(TINY_RUNS))
def test_benchmark_prints_its_comparison_table(script):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *TINY_RUNS[script]],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    header = {"bench_scouts.py": "vec/loop", "bench_attention.py": "explicit/fused"}
    assert header.get(script, "of peak") in done.stdout
