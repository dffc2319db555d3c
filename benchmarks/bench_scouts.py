"""Scout training speed: vectorised ensemble vs the plain loop, on this machine.

Prints scout-steps per second for each path at several scout counts, their ratio, and the
achieved GFLOP/s as a fraction of a 4096² fp32 matmul measured in the same process (the
machine's practical peak). FLOPs are counted analytically (matmuls only, backward = 2× forward).
Rates are given by wall time and by process-CPU time per thread ("idle-machine"); GFLOP/s and the
fraction of peak use CPU time for both the scouts and the matmul, so they stay meaningful when
other processes share the machine.

Run: ``python benchmarks/bench_scouts.py [--scouts 8 32 64] [--steps 6] [--threads 2]
[--tune-malloc] [--chunk-size 16] [--skip-loop-above 32]``

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

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.train import ScoutConfig, train_scouts
from gtlomics.train.scouting import scout_activation_bytes, scouts_per_pass


@dataclass(frozen=True)
class Task:
    indices: np.ndarray
    labels: np.ndarray


def matmul_gflops(size: int = 4096, repeats: int = 3) -> tuple[float, float]:
    """Best-of-``repeats`` fp32 GFLOP/s of a ``size × size`` matmul: by wall time, and by
    process-CPU time per thread (the idle-machine figure, robust when the machine is shared)."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    a @ b  # warm-up
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        a @ b
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / torch.get_num_threads())
    return 2 * size**3 / best_wall / 1e9, 2 * size**3 / best_cpu / 1e9


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
    scout_bytes = scout_activation_bytes(cfg, batch_size)
    group = scouts_per_pass(config, len(tasks), torch.device("cpu"), scout_bytes)
    train_scouts(encoder, head, values, tasks[:group], config=replace(config, steps=2), seed=0)
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
    parser.add_argument("--chunk-size", type=int, default=None, help="scouts per ensemble pass")
    parser.add_argument(
        "--skip-loop-above", type=int, default=None, help="time the loop only up to this N"
    )
    args = parser.parse_args()
    if args.tune_malloc and not all(os.environ.get(k) == v for k, v in MALLOC_KEEP.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_KEEP})
    torch.set_num_threads(args.threads)
    cfg = EncoderConfig(n_genes=args.genes, d_model=args.d_model, n_layers=args.layers)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(512, args.genes)).astype(np.float32)
    wall_peak, peak = matmul_gflops()
    flops = flops_per_scout_step(cfg, args.batch_size)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); fp32 matmul 4096²: "
        f"{wall_peak:.0f} GFLOP/s wall, {peak:.0f} GFLOP/s idle-machine (CPU time); "
        f"malloc tuned: {args.tune_malloc}; LD_PRELOAD={os.environ.get('LD_PRELOAD', '')!r}"
    )
    print(
        f"genes={args.genes} d_model={args.d_model} layers={args.layers} "
        f"batch={args.batch_size} steps={args.steps}; {flops / 1e9:.2f} GFLOP per scout-step"
    )
    print(
        f"{'scouts':>6} {'path':>10} {'wall scout-steps/s':>19} {'vec/loop':>9} "
        f"{'idle-machine steps/s':>21} {'GFLOP/s':>8} {'of peak':>8} {'vec/loop':>9}"
    )
    last_loop = None
    for n_scouts in args.scouts:
        tasks = make_tasks(n_scouts, len(values), rng)
        rates, cpu_rates = {}, {}
        for path, vectorized in (("loop", False), ("vectorised", True)):
            if path == "loop" and args.skip_loop_above and n_scouts > args.skip_loop_above:
                continue  # the loop's rate hardly depends on N; reuse the last one
            wall, cpu = time_scouts(
                cfg, values, tasks, args.steps, args.batch_size, vectorized, args.chunk_size
            )
            rates[path] = n_scouts * args.steps / wall
            cpu_rates[path] = n_scouts * args.steps / (cpu / args.threads)
            gflops = cpu_rates[path] * flops / 1e9
            loop_rates = (rates, cpu_rates) if "loop" in rates else last_loop
            is_vec = path == "vectorised" and loop_rates is not None
            ratio = f"{rates[path] / loop_rates[0]['loop']:.2f}" if is_vec else ""
            cpu_ratio = f"{cpu_rates[path] / loop_rates[1]['loop']:.2f}" if is_vec else ""
            print(
                f"{n_scouts:>6} {path:>10} {rates[path]:>19.1f} {ratio:>9} "
                f"{cpu_rates[path]:>21.1f} {gflops:>8.1f} {gflops / peak:>8.1%} {cpu_ratio:>9}"
            )
        last_loop = (rates, cpu_rates) if "loop" in rates else last_loop


if __name__ == "__main__":
    main()
