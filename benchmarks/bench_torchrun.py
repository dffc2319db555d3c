"""torchrun with 1 vs k processes on this machine: same guides, wall time per phase.

Runs ``scripts/torchrun_build.py`` under ``torchrun --standalone --nproc_per_node k`` for each k
(CPU: gloo, one thread per process), then compares every rank-0 output with the 1-process run:
guides (max relative difference per tensor), encoder weights, and the wall time of each phase.

Run: ``python benchmarks/bench_torchrun.py [--procs 1 2] [--samples 600] [--scouts 16]
[--scout-steps 20] [--pretrain-epochs 1] [--chunk-size 4]``

With ``--pretrain-epochs 0`` only scouting runs: every scout then trains bit-identically in
every run (same ``--chunk-size``), and the guides differ only by the order in which the ranks'
sums are added (~1e-7 relative; bit-identical when each rank trains one group). With
pre-training, DDP's gradient all-reduce changes the encoder at float round-off, which the scouts
then carry into the guides.
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
from safetensors.torch import load_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "torchrun_build.py"


def run_build(n_procs: int, out: Path, args: argparse.Namespace) -> tuple[float, dict]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={n_procs}", str(SCRIPT), "--synthetic", str(args.samples),
        "--out", str(out), "--genes", str(args.genes), "--scouts", str(args.scouts),
        "--scout-steps", str(args.scout_steps), "--pretrain-epochs", str(args.pretrain_epochs),
        "--chunk-size", str(args.chunk_size), "--threads", "1", "--fast-tasks",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "timings.json").read_text())


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
    parser.add_argument("--chunk-size", type=int, default=4)
    args = parser.parse_args()
    print(f"torch {torch.__version__}; CPU gloo, 1 thread per process; {vars(args)}")
    header = f"{'procs':>5} {'wall s':>7} {'pretrain s':>10} {'scouts s':>9} {'scout speed-up':>15}"
    print(header + f" {'guides max rel diff':>20} {'encoder max abs diff':>21}")
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {}
        for n_procs in args.procs:
            out = Path(tmp) / f"p{n_procs}"
            wall, phases = run_build(n_procs, out, args)
            guides = load_file(out / "guides.safetensors")
            encoder = load_file(out / "encoder.safetensors")
            outputs.setdefault("ref", (phases, guides, encoder))
            ref_phases, ref_guides, ref_encoder = outputs["ref"]
            enc_diff = max(float((encoder[k] - ref_encoder[k]).abs().max()) for k in encoder)
            print(
                f"{n_procs:>5} {wall:>7.1f} {phases['pretrained']:>10.2f} "
                f"{phases['scouted']:>9.2f} {ref_phases['scouted'] / phases['scouted']:>15.2f} "
                f"{max_relative_difference(ref_guides, guides):>20.2e} {enc_diff:>21.2e}"
            )


if __name__ == "__main__":
    main()
