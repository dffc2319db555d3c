"""Pieces the benchmarks share: device synchronisation and the machine's practical matmul peak."""

from __future__ import annotations

import time

import torch


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work (a no-op on CPU), so timers see finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(
    device: torch.device, dtype: torch.dtype = torch.float32, size: int = 4096, repeats: int = 3
) -> tuple[float, float]:
    """Best-of-``repeats`` GFLOP/s of a ``size × size`` matmul in ``dtype`` on ``device``.

    Returns the rate by wall time and the "idle-machine" rate: process-CPU time per thread on
    CPU (robust when other processes share the machine), wall time again on CUDA.
    """
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, generator=gen, device=device).to(dtype)
    b = torch.randn(size, size, generator=gen, device=device).to(dtype)
    a @ b  # warm-up
    sync(device)
    best_wall = best_idle = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        a @ b
        sync(device)
        elapsed = time.perf_counter() - wall
        best_wall = min(best_wall, elapsed)
        if device.type != "cuda":
            elapsed = (time.process_time() - cpu) / torch.get_num_threads()
        best_idle = min(best_idle, elapsed)
    return 2 * size**3 / best_wall / 1e9, 2 * size**3 / best_idle / 1e9
