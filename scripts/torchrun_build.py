"""Build encoder weights and guides under ``torchrun`` (or plain ``python``: one process).

Phases: choose the gene vocabulary and prepare the corpus (every rank, identical), pre-train under
DistributedDataParallel (:func:`gtlomics.train.distributed.pretrain_ddp`), draw cousin tasks on
rank 0 and broadcast them, train the scouts sharded over ranks
(:func:`gtlomics.train.distributed.train_scouts_sharded`), and on rank 0 write
``encoder.safetensors``, ``head_init.safetensors``, ``guides.safetensors``, ``genes.txt`` and
``timings.json`` to ``--out``.

Examples::

    # one CPU process, synthetic corpus
    python scripts/torchrun_build.py --synthetic 600 --out build/
    # 2 processes on one machine (gloo on CPU, nccl on GPUs)
    torchrun --standalone --nproc_per_node 2 scripts/torchrun_build.py --h5ad corpus.h5ad --out b/

``--fast-tasks`` clusters PCA scores with KMeans instead of PCA → UMAP → KMeans (a benchmarking
shortcut that avoids UMAP's numba compile in every run; not the method's cousin tasks).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file

from gtlomics.expression import GeneVocab, prepare_expression
from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.train import PretrainConfig, ScoutConfig

distributed = importlib.import_module("gtlomics.train.distributed")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--h5ad", type=Path, help="corpus file (counts in X)")
    source.add_argument("--synthetic", type=int, help="number of synthetic samples to simulate")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--genes", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--scouts", type=int, default=16)
    parser.add_argument("--scout-steps", type=int, default=20)
    parser.add_argument("--chunk-size", type=int, default=None, help="scouts per ensemble pass")
    parser.add_argument("--loop", action="store_true", help="plain loop instead of the ensemble")
    parser.add_argument("--fast-tasks", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def load_corpus(args: argparse.Namespace):
    if args.h5ad is not None:
        import anndata as ad

        return ad.read_h5ad(args.h5ad)
    from gtlomics.datasets.synthetic import SyntheticDesign

    design = SyntheticDesign.random(n_genes=max(2 * args.genes, 200), random_state=args.seed)
    return design.sample(args.synthetic, random_state=args.seed + 1)


def cousin_tasks(values: np.ndarray, n_tasks: int, seed: int, fast: bool) -> list:
    from gtlomics.scouts import ClusterScoutGenerator, draw_cousin_tasks

    if not fast:
        generator = ClusterScoutGenerator(n_tasks=n_tasks, random_state=seed).fit(values)
        return list(generator.tasks_)
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    scores = PCA(n_components=min(20, values.shape[1]), random_state=seed).fit_transform(values)
    labels = KMeans(n_clusters=12, n_init=3, random_state=seed).fit_predict(scores)
    return draw_cousin_tasks(labels, n_tasks=n_tasks, min_cluster_size=4, seed=seed)


def broadcast_tasks(tasks: list | None) -> list:
    """Rank 0's tasks on every rank (a no-op without a process group)."""
    if not dist.is_initialized():
        return tasks
    box = [tasks]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    context = distributed.init_distributed()
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(args.seed).spawn(5)]
    clock = {"start": time.perf_counter()}
    corpus = load_corpus(args)
    vocab = GeneVocab.from_most_variable(corpus, n_genes=args.genes)
    prepared = prepare_expression(corpus, vocab)
    values = torch.from_numpy(prepared.values).to(context.device)
    cfg = EncoderConfig(n_genes=len(vocab.genes), d_model=args.d_model, n_layers=args.layers)
    encoder = ExpressionEncoder(cfg, seed=seeds[0])
    clock["prepared"] = time.perf_counter()
    if args.pretrain_epochs > 0:  # 0: scout the initial encoder (to time scouting alone)
        config = PretrainConfig(epochs=args.pretrain_epochs)
        distributed.pretrain_ddp(encoder, values, config=config, seed=seeds[1])
    clock["pretrained"] = time.perf_counter()
    tasks = cousin_tasks(prepared.values, args.scouts, seeds[2], args.fast_tasks)
    tasks = broadcast_tasks(tasks if context.is_main else None)
    clock["tasks"] = time.perf_counter()
    head = ClassificationHead(cfg.d_model, 2, seed=seeds[3])
    scout_config = ScoutConfig(
        steps=args.scout_steps, chunk_size=args.chunk_size, vectorized=not args.loop
    )
    result = distributed.train_scouts_sharded(
        encoder, head, values, tasks, config=scout_config, seed=seeds[4]
    )
    clock["scouted"] = time.perf_counter()
    if context.is_main:
        write_outputs(args.out, encoder, head, result, vocab, clock, context.world_size)
    if dist.is_initialized():
        dist.destroy_process_group()


def write_outputs(out: Path, encoder, head, result, vocab, clock: dict, world_size: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.cpu().contiguous() for k, v in encoder.state_dict().items()},
        out / "encoder.safetensors",
    )
    save_file(
        {k: v.cpu().contiguous() for k, v in head.state_dict().items()},
        out / "head_init.safetensors",
    )
    save_file(
        {k: v.cpu().contiguous() for k, v in result.guides.raw.items()}, out / "guides.safetensors"
    )
    (out / "genes.txt").write_text("\n".join(vocab.genes) + "\n")
    names = list(clock)
    phases = {b: clock[b] - clock[a] for a, b in itertools.pairwise(names)}
    (out / "timings.json").write_text(json.dumps({"world_size": world_size, **phases}, indent=2))
    print(json.dumps({"world_size": world_size, **{k: round(v, 2) for k, v in phases.items()}}))


if __name__ == "__main__":
    main()
