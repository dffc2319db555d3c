"""Scout training speed: vectorised ensemble vs the plain loop, on this machine.

Prints scout-steps per second for each path at several scout counts, their ratio, and the
achieved GFLOP/s as a fraction of a 4096² fp32 matmul measured in the same process (the
machine's practical peak). FLOPs are counted analytically (matmuls only, backward = 2× forward).

Run: ``python benchmarks/bench_scouts.py [--scouts 8 32] [--steps 6] [--threads 2] [--tune-malloc]``

``--tune-malloc`` re-runs the script with glibc told to keep freed memory (no ``munmap`` / trim of
the large activation temporaries, which otherwise page-fault on every step); tcmalloc or jemalloc
via ``LD_PRELOAD`` have the same effect.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.train import ScoutConfig, train_scouts


@dataclass(frozen=True)
class Task:
    indices: np.ndarray
    labels: np.ndarray


def matmul_gflops(size: int = 4096, repeats: int = 3) -> float:
    """Best-of-``repeats`` fp32 GFLOP/s of a ``size × size`` matmul."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def flops_per_scout_step(cfg: EncoderConfig, batch_size: int) -> float:
    """Matmul FLOPs of one forward + backward pass of one scout on one batch."""
    t, d, f, h = cfg.n_tokens, cfg.d_model, cfg.ff_dim, cfg.value_dim
    per_layer = 2 * t * d * 3 * d + 2 * 2 * t * t * d + 2 * t * d * d + 2 * 2 * t * d * f
    embed = 2 * cfg.n_genes * (h + h * d)
    return 3.0 * batch_size * (cfg.n_layers * per_layer + embed)


def make_tasks(n_scouts: int, n_samples: int, rng: np.random.Generator) -> list[Task]:
    tasks = []
    for _ in range(n_scouts):
        indices = rng.choice(n_samples, size=96, replace=False)
        tasks.append(Task(indices, rng.integers(0, 2, size=96)))
    return tasks


def time_scouts(
    cfg, values, tasks, steps: int, batch_size: int, vectorized: bool
) -> tuple[float, float]:
    """Wall and process-CPU seconds for ``steps`` steps of every scout (after a warm-up run).

    CPU seconds divided by the thread count are what the run would take on an idle machine;
    wall seconds also count time lost to other processes.
    """
    encoder, head = ExpressionEncoder(cfg, seed=0), ClassificationHead(cfg.d_model, 2, seed=1)
    warm = ScoutConfig(steps=1, batch_size=batch_size, vectorized=vectorized)
    train_scouts(encoder, head, values, tasks[:2], config=warm, seed=0)
    config = ScoutConfig(steps=steps, batch_size=batch_size, vectorized=vectorized)
    wall, cpu = time.perf_counter(), time.process_time()
    train_scouts(encoder, head, values, tasks, config=config, seed=0)
    return time.perf_counter() - wall, time.process_time() - cpu


MALLOC_KEEP = {
    "MALLOC_MMAP_THRESHOLD_": str(2**35),
    "MALLOC_TRIM_THRESHOLD_": str(2**35),
    "MALLOC_TOP_PAD_": str(2**30),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scouts", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--genes", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--tune-malloc", action="store_true")
    args = parser.parse_args()
    if args.tune_malloc and not all(os.environ.get(k) == v for k, v in MALLOC_KEEP.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_KEEP})
    torch.set_num_threads(args.threads)
    cfg = EncoderConfig(n_genes=args.genes, d_model=args.d_model, n_layers=args.layers)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(512, args.genes)).astype(np.float32)
    peak = matmul_gflops()
    flops = flops_per_scout_step(cfg, args.batch_size)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); "
        f"fp32 matmul 4096²: {peak:.0f} GFLOP/s; malloc tuned: {args.tune_malloc}"
    )
    print(
        f"genes={args.genes} d_model={args.d_model} layers={args.layers} "
        f"batch={args.batch_size} steps={args.steps}; {flops / 1e9:.2f} GFLOP per scout-step"
    )
    print(
        f"{'scouts':>6} {'path':>10} {'scout-steps/s':>14} {'GFLOP/s':>9} "
        f"{'of peak':>8} {'vec/loop':>9} {'idle-machine steps/s':>21} {'vec/loop':>9}"
    )
    for n_scouts in args.scouts:
        tasks = make_tasks(n_scouts, len(values), rng)
        rates, cpu_rates = {}, {}
        for path, vectorized in (("loop", False), ("vectorised", True)):
            wall, cpu = time_scouts(cfg, values, tasks, args.steps, args.batch_size, vectorized)
            rates[path] = n_scouts * args.steps / wall
            cpu_rates[path] = n_scouts * args.steps / (cpu / args.threads)
            gflops = rates[path] * flops / 1e9
            is_vec = path == "vectorised"
            ratio = f"{rates[path] / rates['loop']:.2f}" if is_vec else ""
            cpu_ratio = f"{cpu_rates[path] / cpu_rates['loop']:.2f}" if is_vec else ""
            print(
                f"{n_scouts:>6} {path:>10} {rates[path]:>14.1f} {gflops:>9.1f} "
                f"{gflops / peak:>8.1%} {ratio:>9} {cpu_rates[path]:>21.1f} {cpu_ratio:>9}"
            )


if __name__ == "__main__":
    main()
