"""Pre-training throughput: samples/s and model FLOP utilisation (MFU).

Times :func:`gtlomics.train.pretrain` (masked-expression modelling, AdamW) on random data and
prints samples per second and achieved matmul GFLOP/s as a fraction of a 4096² matmul measured in
the same process: fp32 on CPU; on CUDA both fp32 and bf16 autocast (the default there), with the
bf16 fraction being the MFU. FLOPs are counted analytically (matmuls only, backward = 2× forward).
The alternatives timed side by side: on CPU 1 vs all threads; on CUDA fp32 vs bf16. On CPU the
"idle" rate uses process-CPU time per thread (robust on a shared machine); GFLOP/s use it too.

Run: ``python benchmarks/bench_pretrain.py [--genes 256] [--d-model 64] [--layers 2]
[--batch-size 32] [--samples 512]``; GPU target: ``--genes 2048 --d-model 256 --layers 4``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from bench_common import matmul_gflops, sync

from gtlomics.nn import EncoderConfig, ExpressionEncoder
from gtlomics.nn.flops import encoder_training_flops
from gtlomics.train import PretrainConfig, pretrain
from gtlomics.train.runtime import resolve_device


def flops_per_sample(cfg: EncoderConfig) -> float:
    """Matmul FLOPs of forward + backward for one sample (encoder + masked head)."""
    masked_head = 2 * cfg.n_genes * cfg.d_model
    return encoder_training_flops(cfg) + 3.0 * masked_head


def samples_per_second(cfg, values: torch.Tensor, config: PretrainConfig) -> tuple[float, float]:
    """Training samples/s of one ``pretrain`` call after a 1-epoch warm-up: by wall time, and
    by process-CPU time per thread (what an idle machine would give; CUDA: wall twice)."""
    pretrain(
        ExpressionEncoder(cfg),
        values[: 2 * config.batch_size],
        config=replace(config, epochs=1),
        seed=0,
    )
    sync(values.device)
    wall, cpu = time.perf_counter(), time.process_time()
    pretrain(ExpressionEncoder(cfg), values, config=config, seed=0)
    sync(values.device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n_done = len(values) * config.epochs
    if values.device.type == "cuda":
        return n_done / wall, n_done / wall
    return n_done / wall, n_done / (cpu / torch.get_num_threads())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cfg = EncoderConfig(n_genes=args.genes, d_model=args.d_model, n_layers=args.layers)
    rng = np.random.default_rng(0)
    values = torch.from_numpy(
        rng.gamma(1.0, 1.0, size=(args.samples, args.genes)).astype(np.float32)
    )
    values = values.to(device)
    config = PretrainConfig(epochs=args.epochs, batch_size=args.batch_size, holdout_fraction=0.0)
    flops = flops_per_sample(cfg)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"torch {torch.__version__}, {name}; genes={args.genes} d_model={args.d_model} "
        f"layers={args.layers} batch={args.batch_size}; {flops / 1e9:.2f} GFLOP per sample"
    )
    print(
        f"{'variant':>16} {'wall samples/s':>15} {'idle samples/s':>15} {'GFLOP/s':>9} "
        f"{'peak GFLOP/s':>13} {'of peak':>8} {'ratio':>6}"
    )
    first = None
    for label, dtype, bf16, threads in variants(device):
        if threads:
            torch.set_num_threads(threads)
        peak = matmul_gflops(device, dtype)[1]
        wall_rate, rate = samples_per_second(cfg, values, replace(config, autocast_bf16=bf16))
        first = first or rate
        gflops = rate * flops / 1e9
        print(
            f"{label:>16} {wall_rate:>15.1f} {rate:>15.1f} {gflops:>9.1f} {peak:>13.0f} "
            f"{gflops / peak:>8.1%} {rate / first:>6.2f}"
        )


def variants(device: torch.device) -> list[tuple[str, torch.dtype, bool, int | None]]:
    """(label, matmul dtype, bf16 autocast, threads) of each timed variant."""
    if device.type == "cuda":
        return [("fp32", torch.float32, False, None), ("bf16 autocast", torch.bfloat16, True, None)]
    n_threads = torch.get_num_threads()
    out = [("fp32 1 thread", torch.float32, False, 1)]
    if n_threads > 1:
        out.append((f"fp32 {n_threads} threads", torch.float32, False, n_threads))
    return out


if __name__ == "__main__":
    main()
