"""Pre-training from a backed .h5ad in chunks vs loading the whole corpus: peak memory.

Writes a synthetic-count corpus of ``--samples × --genes`` (CSR) to a temporary ``.h5ad``, then in
fresh subprocesses (so each peak RSS is its own) runs

* ``stream``: :func:`gtlomics.train.pretrain` on
  :class:`gtlomics.corpus.H5adCorpus` with ``--chunk`` rows per chunk (``--epochs`` epochs);
* ``in-memory``: ``read_h5ad`` + ``prepare_expression`` of the whole file, then
  :func:`gtlomics.train.pretrain` with the same settings.

and prints peak RSS, the tracemalloc peak of numpy/Python allocations, wall time and samples/s.
The corpus is several times the chunk size, so the streaming peak should stay near the baseline
(interpreter + torch + one chunk) while the in-memory peak grows with the corpus.

Run: ``python benchmarks/bench_streaming.py [--samples 40000] [--genes 512] [--chunk 2000]``
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
from pathlib import Path

import numpy as np


def write_corpus(path: Path, n_samples: int, n_genes: int) -> None:
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    means = rng.gamma(0.6, 8.0, size=n_genes)
    blocks = []
    for start in range(0, n_samples, 5000):  # build in blocks: the writer is not the point
        n = min(5000, n_samples - start)
        blocks.append(sp.csr_matrix(rng.poisson(means, size=(n, n_genes)).astype(np.float32)))
    adata = ad.AnnData(sp.vstack(blocks).tocsr())
    adata.var_names = [f"g{i}" for i in range(n_genes)]
    adata.write_h5ad(path)


def warm_up_imports(path: str, vocab) -> None:
    """Import what both modes use before tracing: anndata, h5py and pandas for the reader, and
    the parts of torch a first training step loads lazily (tens of MiB of Python objects that
    would otherwise count as the first mode's data)."""
    from gtlomics.corpus import ArrayCorpus, H5adCorpus
    from gtlomics.nn import EncoderConfig, ExpressionEncoder
    from gtlomics.train import PretrainConfig, pretrain

    for _ in H5adCorpus(path, vocab, chunk_size=8).chunks():
        break
    tiny = np.ones((8, 4), dtype=np.float32)
    config = PretrainConfig(epochs=1, batch_size=4)
    pretrain(
        ExpressionEncoder(EncoderConfig(n_genes=4, d_model=4, n_heads=1)),
        tiny,
        config=config,
        seed=0,
    )
    encoder = ExpressionEncoder(EncoderConfig(n_genes=4, d_model=4, n_heads=1))
    pretrain(encoder, ArrayCorpus(tiny, chunk_size=4), config=config, seed=0)


def run_mode(mode: str, path: str, chunk: int, epochs: int, n_genes: int) -> dict:
    import torch

    from gtlomics.corpus import H5adCorpus
    from gtlomics.expression import GeneVocab, prepare_expression
    from gtlomics.nn import EncoderConfig, ExpressionEncoder
    from gtlomics.train import PretrainConfig, pretrain

    torch.set_num_threads(1)
    vocab = GeneVocab(tuple(f"g{i}" for i in range(n_genes)))
    encoder = ExpressionEncoder(EncoderConfig(n_genes=n_genes, d_model=16, n_heads=2, n_layers=1))
    config = PretrainConfig(epochs=epochs, batch_size=64, holdout_fraction=0.01)
    warm_up_imports(path, vocab)
    tracemalloc.start()
    start = time.perf_counter()
    if mode == "stream":
        corpus = H5adCorpus(path, vocab, chunk_size=chunk)
        result = pretrain(encoder, corpus, config=config, seed=0)
        n_samples = corpus.n_samples
    else:
        import anndata as ad

        prepared = prepare_expression(ad.read_h5ad(path), vocab)
        result = pretrain(encoder, prepared.values, config=config, seed=0)
        n_samples = prepared.values.shape[0]
    wall = time.perf_counter() - start
    _, traced = tracemalloc.get_traced_memory()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "peak_rss_mib": rss_kib / 1024,
        "traced_mib": traced / 2**20,
        "wall_s": wall,
        "samples_per_s": n_samples * epochs / wall,
        "holdout_loss": result.final.holdout_loss,
        "baseline_loss": result.final.baseline_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40000)
    parser.add_argument("--genes", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--mode", choices=["stream", "in-memory"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # child process
        print(json.dumps(run_mode(args.mode, args.path, args.chunk, args.epochs, args.genes)))
        return
    dense_mib = args.samples * args.genes * 4 / 2**20
    print(
        f"corpus {args.samples} × {args.genes} (dense float32 {dense_mib:.0f} MiB), chunk "
        f"{args.chunk} rows ({args.samples / args.chunk:.0f}× smaller), {args.epochs} epoch(s), "
        "encoder d_model=16 1 layer, 1 thread"
    )
    print(
        f"{'mode':>10} {'peak RSS MiB':>13} {'traced MiB':>11} {'wall s':>7} {'samples/s':>10} "
        f"{'holdout/baseline':>17}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.h5ad"
        write_corpus(path, args.samples, args.genes)
        rows = {}
        for mode in ("stream", "in-memory"):
            command = [
                sys.executable, __file__, "--mode", mode, "--path", str(path),
                "--chunk", str(args.chunk), "--epochs", str(args.epochs),
                "--genes", str(args.genes),
            ]  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            row = rows[mode] = json.loads(out.strip().splitlines()[-1])
            print(
                f"{mode:>10} {row['peak_rss_mib']:>13.0f} {row['traced_mib']:>11.1f} "
                f"{row['wall_s']:>7.1f} {row['samples_per_s']:>10.0f} "
                f"{row['holdout_loss'] / row['baseline_loss']:>17.3f}"
            )
    ratio = rows["in-memory"]["traced_mib"] / rows["stream"]["traced_mib"]
    print(f"in-memory / stream traced peak: {ratio:.1f}×")


if __name__ == "__main__":
    main()
