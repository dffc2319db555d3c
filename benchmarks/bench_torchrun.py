"""torchrun with 1 vs k processes on this machine: same guides, wall time per phase.

Runs ``gtlomics foundation build --distributed`` under ``torchrun --standalone --nproc_per_node k``
for each k (CPU: gloo, one thread per process) on a synthetic corpus written to an ``.h5ad``,
loads the Foundation directory rank 0 saved with
``Foundation.load`` and compares it with the 1-process run: guides (max relative difference per
tensor), encoder weights, and the wall time of each phase (``--timings``).

Run: ``python benchmarks/bench_torchrun.py [--procs 1 2] [--samples 600] [--scouts 16]
[--scout-steps 20] [--pretrain-epochs 1]``.

Every run builds with the "default" preset's model (d_model 64, 2 layers) on ``--genes`` genes.
The cousin tasks (PCA → UMAP → KMeans, including UMAP's numba compile) run on rank 0 while the
other ranks wait; they are the serial part, reported apart. DDP's gradient all-reduce changes the
pre-trained encoder at float round-off, which the scouts carry into the guides; scouting alone
adds only the order in which the ranks' sums are added (~1e-7 relative).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gtlomics.foundation import Foundation


def write_corpus(path: Path, args: argparse.Namespace) -> Path:
    """A seeded synthetic corpus of ``--samples`` samples as an ``.h5ad``."""
    from gtlomics.datasets.synthetic import SyntheticDesign

    design = SyntheticDesign.random(n_genes=max(2 * args.genes, 200), random_state=0)
    design.sample(args.samples, random_state=1).write_h5ad(path)
    return path


def run_build(n_procs: int, corpus: Path, out: Path, args: argparse.Namespace):
    """Build into ``out`` with ``n_procs`` processes; wall time and the phase times."""
    timings = out.with_name(f"{out.name}.timings.json")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={n_procs}", "-m", "gtlomics", "-q", "foundation", "build",
        "--input", str(corpus), "--out", str(out), "--preset", "default",
        "--n-genes", str(args.genes), "--n-scouts", str(args.scouts),
        "--scout-steps", str(args.scout_steps), "--pretrain-epochs", str(args.pretrain_epochs),
        "--device", "cpu", "--distributed", "--timings", str(timings),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"torchrun with {n_procs} processes failed:\n{done.stderr[-4000:]}")
    wall = time.perf_counter() - start
    return wall, json.loads(timings.read_text())


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
    args = parser.parse_args()
    print(f"torch {torch.__version__}; CPU gloo, 1 thread per process; {vars(args)}")
    header = f"{'procs':>5} {'wall s':>7} {'tasks s':>8} {'pretrain s':>10} {'scouts s':>9}"
    print(
        header + f" {'scout speed-up':>15} {'guides max rel diff':>20} {'encoder max abs diff':>21}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        corpus = write_corpus(Path(tmp) / "corpus.h5ad", args)
        for n_procs in args.procs:
            out = Path(tmp) / f"p{n_procs}"
            wall, phases = run_build(n_procs, corpus, out, args)
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
