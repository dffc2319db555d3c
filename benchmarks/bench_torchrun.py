"""torchrun with 1 vs k processes on this machine: same guides, wall time per phase.

Runs ``scripts/torchrun_build.py`` under ``torchrun --standalone --nproc_per_node k`` for each k
(CPU: gloo, one thread per process), loads the Foundation directory rank 0 saved with
``Foundation.load`` and compares it with the 1-process run: guides (max relative difference per
tensor), encoder weights, and the wall time of each phase (from ``<out>.timings.json``).

Run: ``python benchmarks/bench_torchrun.py [--procs 1 2] [--samples 600] [--scouts 16]
[--scout-steps 20] [--pretrain-epochs 1] [--chunk-size 4]`` (no --chunk-size: the library's rule).

Every run builds with the "default" preset's model (d_model 64, 2 layers) on ``--genes`` genes.
The cousin tasks (PCA → UMAP → KMeans, including UMAP's numba compile) run on rank 0 while the
other ranks wait; they are the serial part, reported apart. DDP's gradient all-reduce changes the
pre-trained encoder at float round-off, which the scouts carry into the guides; scouting alone
adds only the order in which the ranks' sums are added (~1e-7 relative).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gtlomics.foundation import Foundation

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "torchrun_build.py"


def run_build(n_procs: int, out: Path, args: argparse.Namespace) -> tuple[float, dict]:
    """Build into ``out`` with ``n_procs`` processes; wall time and the script's phase times."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={n_procs}", str(SCRIPT), "--synthetic", str(args.samples),
        "--out", str(out), "--preset", "default", "--genes", str(args.genes),
        "--scouts", str(args.scouts), "--scout-steps", str(args.scout_steps),
        "--pretrain-epochs", str(args.pretrain_epochs), "--threads", "1", "--no-progress",
    ]  # fmt: skip
    if args.chunk_size is not None:
        command += ["--chunk-size", str(args.chunk_size)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"torchrun with {n_procs} processes failed:\n{done.stderr[-4000:]}")
    wall = time.perf_counter() - start
    return wall, json.loads(out.with_name(f"{out.name}.timings.json").read_text())


def max_relative_difference(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max() / a[k].abs().max().clamp(min=1e-30)) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--genes", type=int, default=128)
    parser.add_argument("--scouts", type=int, default=16)
    parser.add_argument("--scout-steps", type=int, default=20)
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="scouts per pass (default: the library's)"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}; CPU gloo, 1 thread per process; {vars(args)}")
    header = f"{'procs':>5} {'wall s':>7} {'tasks s':>8} {'pretrain s':>10} {'scouts s':>9}"
    print(
        header + f" {'scout speed-up':>15} {'guides max rel diff':>20} {'encoder max abs diff':>21}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        for n_procs in args.procs:
            out = Path(tmp) / f"p{n_procs}"
            wall, phases = run_build(n_procs, out, args)
            foundation = Foundation.load(out)
            reference = reference or (phases, foundation)
            ref_phases, ref = reference
            encoder, ref_encoder = foundation.encoder_state, ref.encoder_state
            enc_diff = max(float((encoder[k] - ref_encoder[k]).abs().max()) for k in encoder)
            guide_diff = max_relative_difference(ref.guides.raw, foundation.guides.raw)
            print(
                f"{n_procs:>5} {wall:>7.1f} {phases['tasks']:>8.2f} {phases['pretrain']:>10.2f} "
                f"{phases['scouts']:>9.2f} {ref_phases['scouts'] / phases['scouts']:>15.2f} "
                f"{guide_diff:>20.2e} {enc_diff:>21.2e}"
            )


if __name__ == "__main__":
    main()
