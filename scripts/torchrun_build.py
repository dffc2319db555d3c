"""Build a Foundation under ``torchrun`` (or plain ``python``: one process).

Every rank calls :func:`gtlomics.foundation.build_foundation` with the same arguments and
``distributed=True``: the corpus
is prepared on every rank, pre-training runs under DistributedDataParallel, rank 0 draws the
cousin tasks and broadcasts them, and the scouts are sharded over the ranks. Rank 0 then saves a
Foundation directory to ``--out`` (load it with ``Foundation.load(out)`` or pass it as
``GTLClassifier(foundation=out)``), writes the phase wall times to ``--timings`` (default:
``<out>.timings.json`` next to the directory) and prints a one-line JSON summary. Other ranks
write nothing.

Examples::

    # one CPU process, synthetic corpus
    python scripts/torchrun_build.py --synthetic 600 --preset tiny --out build/foundation
    # 2 processes on one machine (gloo on CPU, nccl on GPUs)
    torchrun --standalone --nproc_per_node 2 scripts/torchrun_build.py \\
        --h5ad corpus.h5ad --out build/foundation

Sizes come from ``--preset``; ``--genes``, ``--d-model``, ``--layers``, ``--pretrain-epochs``,
``--scouts``, ``--scout-steps``, ``--chunk-size`` and ``--loop`` override parts of it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist

from gtlomics.foundation import PRESETS, Foundation, build_foundation, get_preset
from gtlomics.foundation.presets import FoundationPreset
from gtlomics.foundation.trainers import BuildTimings, record_build_timings
from gtlomics.train.distributed import init_distributed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; size options default to the preset's values."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--h5ad", type=Path, help="corpus file (counts or log1p in X)")
    source.add_argument("--synthetic", type=int, help="number of synthetic samples to simulate")
    parser.add_argument("--out", type=Path, required=True, help="Foundation directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--timings", type=Path, help="JSON of phase times (<out>.timings.json)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--genes", type=int, help="vocabulary size (most variable genes)")
    parser.add_argument("--d-model", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--pretrain-epochs", type=int, help=">= 1")
    parser.add_argument("--scouts", type=int, help="number of cousin tasks, one scout each")
    parser.add_argument("--scout-steps", type=int)
    parser.add_argument("--chunk-size", type=int, help="scouts per ensemble pass")
    parser.add_argument("--loop", action="store_true", help="plain loop instead of the ensemble")
    parser.add_argument("--threads", type=int, help="torch threads per process")
    parser.add_argument("--seed", type=int, default=0, help="random_state of the build")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="resumable checkpoints (a folder every rank sees); rerun the same command to resume",
    )
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="rank 0 only"
    )
    return parser.parse_args(argv)


def build_plan(args: argparse.Namespace) -> FoundationPreset:
    """The preset with the command line's overrides applied."""
    plan = get_preset(args.preset)
    pretrain = plan.pretrain
    if args.pretrain_epochs is not None:
        pretrain = replace(pretrain, epochs=args.pretrain_epochs)
    scouts = replace(plan.scouts, vectorized=not args.loop)
    if args.scout_steps is not None:
        scouts = replace(scouts, steps=args.scout_steps)
    if args.chunk_size is not None:
        scouts = replace(scouts, chunk_size=args.chunk_size)
    sizes = {"n_genes": args.genes, "d_model": args.d_model, "n_layers": args.layers}
    sizes["n_scouts"] = args.scouts
    sizes = {key: value for key, value in sizes.items() if value is not None}
    return replace(plan, pretrain=pretrain, scouts=scouts, **sizes)


def load_corpus(args: argparse.Namespace, n_genes: int):
    """The ``--h5ad`` file, or ``--synthetic`` samples of a seeded synthetic design."""
    if args.h5ad is not None:
        import anndata as ad

        return ad.read_h5ad(args.h5ad)
    from gtlomics.datasets.synthetic import SyntheticDesign

    design = SyntheticDesign.random(n_genes=max(2 * n_genes, 200), random_state=args.seed)
    return design.sample(args.synthetic, random_state=args.seed + 1)


@dataclass(frozen=True)
class BuildSummary:
    """What rank 0 reports: where the foundation went and the wall time of each phase (s)."""

    out: str
    world_size: int
    n_genes: int
    n_scouts: int
    prepare: float
    tasks: float
    pretrain: float
    scouts: float
    save: float
    total: float


def summarise(
    out: Path,
    foundation: Foundation,
    world_size: int,
    phases: BuildTimings,
    *,
    started: float,
    built: float,
    saved: float,
) -> BuildSummary:
    """Phase times; ``prepare`` is the rest of the build: reading, vocabulary, normalising."""
    trained = phases.tasks + phases.pretrain + phases.scouts
    return BuildSummary(
        out=str(out),
        world_size=world_size,
        n_genes=foundation.n_genes,
        n_scouts=foundation.provenance.n_scouts,
        prepare=round(built - started - trained, 3),
        tasks=round(phases.tasks, 3),
        pretrain=round(phases.pretrain, 3),
        scouts=round(phases.scouts, 3),
        save=round(saved - built, 3),
        total=round(saved - started, 3),
    )


def save_outputs(
    args: argparse.Namespace,
    foundation: Foundation,
    world_size: int,
    phases: BuildTimings,
    *,
    started: float,
    built: float,
) -> BuildSummary:
    """Rank 0: the Foundation directory, the timings file and the one-line JSON summary."""
    foundation.save(args.out, overwrite=args.overwrite)
    saved = time.perf_counter()
    summary = summarise(
        args.out, foundation, world_size, phases, started=started, built=built, saved=saved
    )
    timings = args.timings or args.out.with_name(f"{args.out.name}.timings.json")
    timings.parent.mkdir(parents=True, exist_ok=True)
    timings.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    print(json.dumps(asdict(summary)), flush=True)
    return summary


def main(argv: list[str] | None = None) -> None:
    """Build on every rank; save, write timings and print the summary on rank 0."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out.exists() and not args.overwrite:  # fail before the build, not after it
        raise SystemExit(f"{args.out} already exists; pass --overwrite to replace it.")
    context = init_distributed()
    try:
        plan = build_plan(args)
        started = time.perf_counter()
        corpus = load_corpus(args, plan.n_genes)
        with record_build_timings() as phases:
            foundation = build_foundation(
                corpus,
                preset=plan,
                random_state=args.seed,
                progress=args.progress and context.is_main,
                distributed=True,
                checkpoint_dir=args.checkpoint_dir,
            )
        built = time.perf_counter()
        if context.is_main:
            save_outputs(args, foundation, context.world_size, phases, started=started, built=built)
        if dist.is_initialized():  # tear down together: gloo can abort a rank that leaves early
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
