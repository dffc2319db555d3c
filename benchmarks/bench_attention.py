"""Attention over gene tokens: fused ``scaled_dot_product_attention`` vs explicit softmax.

Forward + backward of multi-head self-attention on ``(B, H, T, D/H)`` queries, keys and values,
at several token counts. Prints the median time of each path, their ratio, and the memory the
explicit path's ``(B, H, T, T)`` score matrix needs. On CPU the times are process-CPU seconds per
thread (robust on a shared machine; the fused path's wall time is printed too). On CUDA it also
runs in bf16 (the training path's autocast dtype) and prints absolute wall times; CPU is fp32.

Run: ``python benchmarks/bench_attention.py [--tokens 256 1024 2048] [--batch 8] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, T)
    return scores.softmax(dim=-1) @ v


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_attention(attention, shape, dtype, device, repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of forward + backward (after one warm-up).

    On a shared CPU, CPU seconds / threads is what the call would take on an idle machine.
    """
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (
        torch.randn(shape, generator=gen, device=device, dtype=dtype).requires_grad_()
        for _ in range(3)
    )
    walls, cpus = [], []
    for i in range(repeats + 1):
        synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        attention(q, k, v).sum().backward()
        synchronize(device)
        if i:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    dtypes = [torch.float32, torch.bfloat16] if device.type == "cuda" else [torch.float32]
    print(f"torch {torch.__version__}, {name}, {args.threads} thread(s); forward + backward")
    print(f"batch={args.batch} heads={args.heads} head_dim={args.head_dim}")
    clock = "wall ms" if device.type == "cuda" else "CPU ms/thread"
    print(
        f"{'tokens':>6} {'dtype':>9} {'fused ' + clock:>19} {'explicit ' + clock:>22} "
        f"{'explicit/fused':>15} {'fused wall ms':>14} {'scores MiB':>11}"
    )
    for n_tokens in args.tokens:
        shape = (args.batch, args.heads, n_tokens, args.head_dim)
        for dtype in dtypes:
            fused_wall, fused_cpu = time_attention(
                fused_attention, shape, dtype, device, args.repeats
            )
            explicit_wall, explicit_cpu = time_attention(
                explicit_attention, shape, dtype, device, args.repeats
            )
            if device.type == "cuda":
                fused, explicit = fused_wall, explicit_wall
            else:
                fused, explicit = fused_cpu / args.threads, explicit_cpu / args.threads
            scores_mib = args.batch * args.heads * n_tokens**2 * dtype.itemsize / 2**20
            print(
                f"{n_tokens:>6} {str(dtype).removeprefix('torch.'):>9} {fused * 1e3:>19.1f} "
                f"{explicit * 1e3:>22.1f} {explicit / fused:>15.2f} {fused_wall * 1e3:>14.1f} "
                f"{scores_mib:>11.0f}"
            )


if __name__ == "__main__":
    main()
