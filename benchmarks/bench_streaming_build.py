"""A whole foundation build from a backed .h5ad: streamed vs read into memory, peak memory.

Writes a structured synthetic-count corpus of ``--samples × --genes`` (CSR, counts in ``X`` only)
to a temporary ``.h5ad``, then in fresh subprocesses (so each peak RSS is its own) runs

* ``stream``: :func:`gtlomics.foundation.build_foundation` on the path, ``--chunk`` rows per
  read, cousin tasks on ``--n-subsample`` rows and the vocabulary on ``--vocab-sample`` rows;
* ``in-memory``: ``anndata.read_h5ad`` of the whole file, then
  :func:`gtlomics.foundation.build_foundation`;

both with the ``"tiny"`` preset (``--epochs`` pre-training epochs), on CPU, one thread. Each child
first builds a foundation on a 100-row file, so imports, numba compilation and torch's lazy
initialisation are not counted, then builds twice: once timed, once under tracemalloc (which
slows UMAP about 4×). The table gives the tracemalloc peak of numpy/Python allocations (numba's
and torch's own allocators are not traced: RSS covers them), peak RSS, wall time per phase
(``wall`` includes reading the file and choosing the vocabulary; the streamed ``tasks`` phase
includes its pass over the whole file to draw the subsample), and how
many of the in-memory vocabulary's genes the sampled vocabulary also chose.

Run: ``python benchmarks/bench_streaming_build.py [--samples 20000] [--genes 256] [--chunk 1000]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path


def write_corpus(path: Path, n_samples: int, n_genes: int) -> None:
    """Synthetic counts with 6 tissue-like clusters (cousin tasks need structure), CSR in X."""
    import anndata as ad
    import scipy.sparse as sp

    from gtlomics.datasets.synthetic import SyntheticDesign

    design = SyntheticDesign.random(n_genes=n_genes, n_clusters=6, random_state=0)
    sampled = design.sample(n_samples, random_state=1)
    adata = ad.AnnData(sp.csr_matrix(sampled.X), obs=sampled.obs[[]], var=sampled.var[[]])
    adata.uns["synthetic"] = {"note": "synthetic benchmark corpus"}
    adata.write_h5ad(path)


def preset(epochs: int):
    from gtlomics.foundation import get_preset

    tiny = get_preset("tiny")
    return replace(tiny, pretrain=replace(tiny.pretrain, epochs=epochs))


def build(mode: str, path: Path, args) -> object:
    from gtlomics.corpus import CorpusSizes
    from gtlomics.foundation import build_foundation

    common = {"preset": preset(args.epochs), "random_state": 0, "device": "cpu"}
    if mode == "stream":
        sizes = CorpusSizes(
            chunk_size=args.chunk, n_subsample=args.n_subsample, vocab_sample=args.vocab_sample
        )
        return build_foundation(path, sizes=sizes, **common)
    import anndata as ad

    return build_foundation(ad.read_h5ad(path), **common)


def run_mode(mode: str, path: Path, warm_path: Path, args) -> dict:
    import torch

    from gtlomics.foundation import record_build_timings

    torch.set_num_threads(1)
    warm = argparse.Namespace(**{**vars(args), "chunk": 32, "n_subsample": 60, "vocab_sample": 50})
    build(mode, warm_path, warm)  # imports, numba compilation, torch lazy init: not measured
    start = time.perf_counter()
    with record_build_timings() as phases:  # timed untraced: tracemalloc slows UMAP 4×
        foundation = build(mode, path, args)
    wall = time.perf_counter() - start
    tracemalloc.start()
    build(mode, path, args)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "mode": mode,
        "traced_mib": traced / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": wall,
        "tasks_s": phases.tasks,
        "pretrain_s": phases.pretrain,
        "scouts_s": phases.scouts,
        "genes": list(foundation.vocab.genes),
    }


def child_command(mode: str, path: Path, warm_path: Path, args) -> list[str]:
    return [
        sys.executable, __file__, "--mode", mode, "--path", str(path), "--warm-path",
        str(warm_path), "--chunk", str(args.chunk), "--n-subsample", str(args.n_subsample),
        "--vocab-sample", str(args.vocab_sample), "--epochs", str(args.epochs),
    ]  # fmt: skip


def print_table(rows: dict[str, dict], args) -> None:
    dense_mib = args.samples * args.genes * 4 / 2**20
    print(
        f"corpus {args.samples} × {args.genes} (CSR counts, dense float32 {dense_mib:.0f} MiB), "
        f"chunk {args.chunk} rows ({args.samples / args.chunk:.0f}× smaller), subsample "
        f"{args.n_subsample}, vocab sample {args.vocab_sample}; preset tiny, {args.epochs} "
        "epoch(s), CPU, 1 thread"
    )
    print(
        f"{'mode':>10} {'traced MiB':>11} {'peak RSS MiB':>13} {'wall s':>7} {'tasks s':>8} "
        f"{'pretrain s':>11} {'scouts s':>9}"
    )
    for mode, row in rows.items():
        print(
            f"{mode:>10} {row['traced_mib']:>11.1f} {row['peak_rss_mib']:>13.0f} "
            f"{row['wall_s']:>7.1f} {row['tasks_s']:>8.1f} {row['pretrain_s']:>11.1f} "
            f"{row['scouts_s']:>9.1f}"
        )
    memory, stream = rows["in-memory"], rows["stream"]
    shared = len(set(memory["genes"]) & set(stream["genes"]))
    print(f"in-memory / stream traced peak: {memory['traced_mib'] / stream['traced_mib']:.1f}×")
    print(f"in-memory / stream peak RSS: {memory['peak_rss_mib'] / stream['peak_rss_mib']:.2f}×")
    print(f"vocabulary genes shared: {shared} of {len(memory['genes'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--genes", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--n-subsample", type=int, default=2000)
    parser.add_argument("--vocab-sample", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1, help="pre-training epochs")
    parser.add_argument("--mode", choices=["stream", "in-memory"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warm-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # child process
        print(json.dumps(run_mode(args.mode, args.path, args.warm_path, args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path, warm_path = Path(tmp) / "corpus.h5ad", Path(tmp) / "warm.h5ad"
        write_corpus(path, args.samples, args.genes)
        write_corpus(warm_path, 100, args.genes)
        rows = {}
        for mode in ("stream", "in-memory"):
            command = child_command(mode, path, warm_path, args)
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows[mode] = json.loads(out.strip().splitlines()[-1])
    print_table(rows, args)


if __name__ == "__main__":
    main()
