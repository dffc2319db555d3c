"""Scout training speed: vectorised ensemble vs the plain loop, on this machine.

Prints scout-steps per second for each path at several scout counts, their ratio, and the
achieved GFLOP/s as a fraction of a 4096² fp32 matmul measured in the same process (the
machine's practical peak). FLOPs are counted analytically (matmuls only, backward = 2× forward).
Rates are given by wall time and by process-CPU time per thread ("idle-machine"); GFLOP/s and the
fraction of peak use CPU time for both the scouts and the matmul, so they stay meaningful when
other processes share the machine.

Run: ``python benchmarks/bench_scouts.py [--scouts 8 32 64] [--steps 6] [--repeats 3]
[--threads 2] [--genes 256] [--d-model 64] [--heads 4] [--batch-size 32] [--tune-malloc]
[--chunk-size 3]``

The two paths alternate, ``--repeats`` times each, and the tables give medians. "per pass" is how
many scouts the vectorised path trains together: on CPU the library trains compute-bound scouts
(more than ``CPU_ENSEMBLE_MAX_FLOPS`` per step) one at a time, i.e. with the loop; force the
ensemble with ``--chunk-size``.

``--tune-malloc`` re-runs the script with glibc told to keep freed memory (no ``munmap`` / trim of
the large activation temporaries, which otherwise page-fault on every step); tcmalloc or jemalloc
via ``LD_PRELOAD`` have the same effect.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from bench_common import matmul_gflops, sync

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.nn.flops import encoder_training_flops
from gtlomics.train import ScoutConfig, train_scouts
from gtlomics.train.runtime import resolve_device
from gtlomics.train.scout_passes import ScoutCost, scouts_per_pass


@dataclass(frozen=True)
class Task:
    indices: np.ndarray
    labels: np.ndarray


def make_tasks(n_scouts: int, n_samples: int, rng: np.random.Generator) -> list[Task]:
    tasks = []
    for _ in range(n_scouts):
        indices = rng.choice(n_samples, size=96, replace=False)
        tasks.append(Task(indices, rng.integers(0, 2, size=96)))
    return tasks


def time_scouts(
    cfg, values, tasks, steps: int, batch_size: int, vectorized: bool, chunk_size: int | None
) -> tuple[float, float]:
    """Wall and process-CPU seconds for ``steps`` steps of every scout (after a warm-up run).

    The first steps of a process pay one-off costs (first-touch page faults of the activation
    temporaries, kernel selection) that a real run of ~50 steps amortises; the warm-up keeps them
    out of the comparison.

    CPU seconds divided by the thread count are what the run would take on an idle machine;
    wall seconds also count time lost to other processes.
    """
    encoder, head = ExpressionEncoder(cfg, seed=0), ClassificationHead(cfg.d_model, 2, seed=1)
    config = ScoutConfig(
        steps=steps, batch_size=batch_size, vectorized=vectorized, chunk_size=chunk_size
    )
    # Warm up with one full group, so both paths start with their working set allocated (the
    # ensemble's first step page-faults in temporaries ``E`` times the loop's).
    group = pass_size(cfg, config, len(tasks), values.device)
    train_scouts(encoder, head, values, tasks[:group], config=replace(config, steps=2), seed=0)
    sync(values.device)
    wall, cpu = time.perf_counter(), time.process_time()
    train_scouts(encoder, head, values, tasks, config=config, seed=0)
    sync(values.device)
    wall = time.perf_counter() - wall
    if values.device.type == "cuda":
        return wall, wall * torch.get_num_threads()  # CPU time means nothing for GPU work
    return wall, time.process_time() - cpu


def pass_size(cfg: EncoderConfig, config: ScoutConfig, n_scouts: int, device) -> int:
    """Scouts per pass the library picks on ``device`` for this model and config."""
    cost = ScoutCost.of(cfg, config.batch_size)
    return scouts_per_pass(config, n_scouts, device, cost)


MALLOC_KEEP = {
    "MALLOC_MMAP_THRESHOLD_": str(2**35),
    "MALLOC_TRIM_THRESHOLD_": str(2**35),
    "MALLOC_TOP_PAD_": str(2**30),
}


@dataclass(frozen=True)
class Rates:
    """Median scout-steps per second over the repeats: by wall time and by CPU time/thread."""

    wall: float
    cpu: float


def measure(cfg, values, tasks, args) -> dict[bool, Rates]:
    """Median rates of the loop (``False``) and vectorised (``True``) paths; the two alternate,
    ``args.repeats`` timed runs each, so a slow spell on a shared machine hits both."""
    walls, cpus = {False: [], True: []}, {False: [], True: []}
    for _ in range(args.repeats):
        for vectorized in (False, True):
            wall, cpu = time_scouts(
                cfg, values, tasks, args.steps, args.batch_size, vectorized, args.chunk_size
            )
            walls[vectorized].append(len(tasks) * args.steps / wall)
            cpus[vectorized].append(len(tasks) * args.steps / (cpu / args.threads))
    return {v: Rates(float(np.median(walls[v])), float(np.median(cpus[v]))) for v in walls}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scouts", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path (median)")
    parser.add_argument("--genes", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4, help="attention heads (divide d_model)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--tune-malloc", action="store_true")
    parser.add_argument("--chunk-size", type=int, default=None, help="scouts per ensemble pass")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.tune_malloc and not all(os.environ.get(k) == v for k, v in MALLOC_KEEP.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_KEEP})
    torch.set_num_threads(args.threads)
    cfg = EncoderConfig(
        n_genes=args.genes, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads
    )
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.normal(size=(512, args.genes)).astype(np.float32)).to(device)
    # Scouts train under bf16 autocast on CUDA (ScoutConfig.autocast_bf16): compare with bf16.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    wall_peak, peak = matmul_gflops(device, dtype)
    flops = encoder_training_flops(cfg, args.batch_size)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"torch {torch.__version__}, {where}, {args.threads} thread(s); {dtype} matmul 4096²: "
        f"{wall_peak:.0f} GFLOP/s wall, {peak:.0f} GFLOP/s idle-machine (CPU time on CPU); "
        f"malloc tuned: {args.tune_malloc}; LD_PRELOAD={os.environ.get('LD_PRELOAD', '')!r}"
    )
    print(
        f"genes={args.genes} d_model={args.d_model} layers={args.layers} heads={args.heads} "
        f"batch={args.batch_size} steps={args.steps} repeats={args.repeats} (medians); "
        f"{flops / 1e9:.2f} GFLOP per scout-step"
    )
    print(
        f"{'scouts':>6} {'path':>10} {'per pass':>8} {'wall scout-steps/s':>19} {'vec/loop':>9} "
        f"{'idle-machine steps/s':>21} {'GFLOP/s':>8} {'of peak':>8} {'vec/loop':>9}"
    )
    for n_scouts in args.scouts:
        tasks = make_tasks(n_scouts, len(values), rng)
        config = ScoutConfig(batch_size=args.batch_size, chunk_size=args.chunk_size)
        rates_by_path = measure(cfg, values, tasks, args)
        loop, vec = rates_by_path[False], rates_by_path[True]
        for path, rates, per_pass in (
            ("loop", loop, 1),
            ("vectorised", vec, pass_size(cfg, config, n_scouts, device)),
        ):
            gflops = rates.cpu * flops / 1e9
            ratio = f"{rates.wall / loop.wall:.2f}" if path == "vectorised" else ""
            cpu_ratio = f"{rates.cpu / loop.cpu:.2f}" if path == "vectorised" else ""
            print(
                f"{n_scouts:>6} {path:>10} {per_pass:>8} {rates.wall:>19.1f} {ratio:>9} "
                f"{rates.cpu:>21.1f} {gflops:>8.1f} {gflops / peak:>8.1%} {cpu_ratio:>9}"
            )


if __name__ == "__main__":
    main()
