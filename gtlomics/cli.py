"""``gtlomics`` command line: parsing only; the work happens in the library.

Commands::

    gtlomics demo [--out DIR] [--tiny]
    gtlomics foundation build --input CORPUS.h5ad --out DIR [--preset small] ...
    gtlomics foundation build --input BIG.h5ad --stream [--chunk-size N] [--n-subsample N] ...
    torchrun --nproc_per_node K -m gtlomics foundation build --input C.h5ad --distributed ...
    gtlomics evaluate --data X.h5ad --label-key KEY [--protocol kfold|loo|logo|cross] ...
    gtlomics datasets list-osdr [--catalog TSV] [--tissue TEXT]
    gtlomics datasets fetch-osdr OSD-105 --out OSD-105.h5ad [--base-url URL]

``-q/--quiet`` (before the command) silences status lines and progress bars.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

__all__ = ["build_parser", "main"]

DEFAULT_ARMS = (
    "logreg,linear_svm,random_forest,knn,scratch,probe,pretrained,gtl,gtl_shuffled,gtl_constant"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    say = (lambda message: None) if args.quiet else _print
    try:
        args.handler(args, say)
    except (ValueError, KeyError, OSError) as error:  # OSError: missing files, downloads
        message = " ".join(str(error).strip("'\"").split())
        print(f"gtlomics: error: {message}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="gtlomics", description="Guided transfer learning for few-shot bulk RNA-seq."
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines or bars")
    commands = parser.add_subparsers(title="commands")
    _add_demo(commands)
    _add_foundation(commands)
    _add_evaluate(commands)
    _add_datasets(commands)
    return parser


def _add_demo(commands) -> None:
    demo = commands.add_parser("demo", help="few-shot comparison on SYNTHETIC data (minutes)")
    demo.add_argument("--out", default="gtlomics-report", help="report directory")
    demo.add_argument("--seed", type=int, default=0, help="root seed")
    demo.add_argument(
        "--tiny", action="store_true", help="seconds-long preset for tests (results meaningless)"
    )
    demo.set_defaults(handler=_run_demo)


def _add_foundation(commands) -> None:
    foundation = commands.add_parser("foundation", help="build foundations")
    actions = foundation.add_subparsers(title="actions")
    build = actions.add_parser("build", help="pre-train, scout and save a foundation")
    build.add_argument("--input", required=True, help="unlabelled corpus (.h5ad)")
    build.add_argument("--out", help="directory (default: the user's default foundation)")
    build.add_argument("--preset", default="small", choices=["tiny", "small", "default"])
    build.add_argument("--layer", help="AnnData layer with counts (default .X)")
    build.add_argument("--gene-column", help="var column with gene ids (default var_names)")
    build.add_argument("--n-genes", type=int, help="vocabulary size (most variable genes)")
    build.add_argument("--n-scouts", type=int, help="number of scouts / cousin tasks")
    build.add_argument(
        "--batch-key", help="obs column naming each sample's study: standardise studies alone"
    )
    build.add_argument(
        "--value-encoding",
        choices=["log", "rank"],
        help="values as log-CPM (default) or per-sample rank normal scores",
    )
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--checkpoint-dir", help="resumable checkpoints")
    build.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda:N")
    build.add_argument("--overwrite", action="store_true")
    build.add_argument(
        "--stream", action="store_true", help="read the .h5ad chunk by chunk (larger than memory)"
    )
    build.add_argument("--chunk-size", type=int, help="--stream: rows read at a time (8192)")
    build.add_argument("--n-subsample", type=int, help="most rows clustered for cousin tasks")
    build.add_argument(
        "--distributed",
        action="store_true",
        help="under torchrun: every rank builds its share; rank 0 saves",
    )
    build.add_argument("--pretrain-epochs", type=int, help="override the preset's epochs")
    build.add_argument("--scout-steps", type=int, help="override the preset's scout steps")
    build.add_argument("--timings", help="write the phase wall times (JSON) here")
    build.set_defaults(handler=_run_foundation_build)


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="compare arms on labelled data")
    evaluate.add_argument("--data", required=True, help="labelled samples (.h5ad, raw counts)")
    evaluate.add_argument("--label-key", required=True, help="obs column with the labels")
    evaluate.add_argument("--classes", help="comma-separated classes to keep (default all)")
    evaluate.add_argument(
        "--protocol", default="kfold", choices=["kfold", "group_kfold", "loo", "logo", "cross"]
    )
    evaluate.add_argument("--group-key", help="obs column of groups (group_kfold, logo, cross)")
    evaluate.add_argument("--test-data", help="second .h5ad: cross-dataset, fit --data, test this")
    evaluate.add_argument("--train-group", help="cross: group to fit on")
    evaluate.add_argument("--test-group", help="cross: group to test on")
    evaluate.add_argument("--n-splits", type=int, default=5)
    evaluate.add_argument("--repeats", type=int, default=3, help="seeds")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma-separated ({DEFAULT_ARMS})")
    evaluate.add_argument("--foundation", help="foundation directory (default: user default)")
    evaluate.add_argument("--n-genes", type=int, default=2000, help="baseline gene count")
    evaluate.add_argument("--layer", help="AnnData layer with raw counts (default .X)")
    evaluate.add_argument("--epochs", type=int, help="fine-tuning epochs of neural arms")
    evaluate.add_argument("--out", default="gtlomics-report", help="report directory")
    evaluate.set_defaults(handler=_run_evaluate)


def _add_datasets(commands) -> None:
    datasets = commands.add_parser("datasets", help="find and fetch real data")
    actions = datasets.add_subparsers(title="actions")
    listing = actions.add_parser("list-osdr", help="mouse RNA-seq studies in an OSDR catalogue")
    listing.add_argument("--catalog", required=True, help="selected_sample_metadata.tsv(.gz)")
    listing.add_argument("--tissue", help="keep studies whose material type contains this")
    listing.add_argument("--min-flight", type=int, default=0)
    listing.add_argument("--min-ground", type=int, default=0)
    listing.set_defaults(handler=_run_list_osdr)
    fetch = actions.add_parser("fetch-osdr", help="download one OSDR study as .h5ad")
    fetch.add_argument("accession", help="e.g. OSD-105")
    fetch.add_argument("--out", required=True, help="output .h5ad")
    fetch.add_argument("--base-url", help="OSDR API root or a mirror (directory / file:// URL)")
    fetch.add_argument("--cache-dir", help="download cache")
    fetch.set_defaults(handler=_run_fetch_osdr)


# --------------------------------------------------------------------------------- handlers


def _run_demo(args, say: Callable[[str], None]) -> None:
    from gtlomics.evaluation.demo import REAL_DATA_HINT, SYNTHETIC_BANNER, DemoConfig, run_demo

    config = replace(DemoConfig.tiny() if args.tiny else DemoConfig(), random_state=args.seed)
    say(SYNTHETIC_BANNER)
    outcome = run_demo(config, args.out, progress=not args.quiet, say=say)
    _print_summary(outcome.result, say)
    say(f"Report: {outcome.report.summary_md} (plots in {outcome.report.directory / 'plots'})")
    say(SYNTHETIC_BANNER)
    say(REAL_DATA_HINT)


def _run_foundation_build(args, say) -> None:
    """``foundation build``: in memory, or ``--stream``ed from the file; ``--distributed``
    joins the ``torchrun`` job (every rank builds, rank 0 saves)."""
    from gtlomics.foundation import default_foundation_dir

    if args.chunk_size is not None and not args.stream:
        raise ValueError("--chunk-size: only for --stream builds; add --stream.")
    out = Path(args.out) if args.out else default_foundation_dir()
    _check_build_paths(out, args)
    if not args.distributed:
        _build_and_save(args, out, say)
        return
    import torch.distributed as dist

    from gtlomics.train.distributed import init_distributed

    context = init_distributed()
    try:
        _build_and_save(args, out, say if context.is_main else (lambda message: None))
        if dist.is_initialized():  # tear down together: gloo can abort a rank that leaves early
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _build_and_save(args, out: Path, say) -> None:
    import json
    from dataclasses import asdict

    from gtlomics.corpus import CorpusSizes
    from gtlomics.corpus.h5ad import read_h5ad_whole
    from gtlomics.expression import PreprocessingConfig, ReadSettings
    from gtlomics.foundation import build_foundation, get_preset, record_build_timings
    from gtlomics.foundation.build import DEFAULT_VALUE_ENCODING
    from gtlomics.train.distributed import process_group_context

    corpus = args.input if args.stream else read_h5ad_whole(args.input)
    how = "streamed chunk by chunk" if args.stream else f"{corpus.n_obs} samples"
    say(f"Building a foundation ({args.preset}) from {args.input} ({how})...")
    sizes = {"chunk_size": args.chunk_size, "n_subsample": args.n_subsample}
    main_rank = process_group_context(join=args.distributed).is_main
    encoding = args.value_encoding or DEFAULT_VALUE_ENCODING
    with record_build_timings() as timings:
        foundation = build_foundation(
            corpus,
            preset=_preset(get_preset(args.preset), args),
            n_genes=args.n_genes,
            n_scouts=args.n_scouts,
            preprocessing=PreprocessingConfig(value_encoding=encoding),
            corpus_description=None if args.stream else f"{Path(args.input).name} ({how})",
            random_state=args.seed,
            progress=not args.quiet and main_rank,
            checkpoint_dir=args.checkpoint_dir,
            device=args.device,
            distributed=args.distributed,
            batch_key=args.batch_key,
            sizes=CorpusSizes(**{k: v for k, v in sizes.items() if v is not None}),
            reading=ReadSettings(layer=args.layer, gene_column=args.gene_column),
        )
    if not main_rank:
        return
    saved = foundation.save(out, overwrite=args.overwrite)
    if args.timings:
        Path(args.timings).write_text(json.dumps(asdict(timings), indent=2) + "\n")
    say(f"Saved foundation to {saved} ({foundation.provenance.n_samples} samples)")


def _preset(plan, args):
    """The preset with ``--pretrain-epochs`` and ``--scout-steps`` applied."""
    if args.pretrain_epochs is not None:
        plan = replace(plan, pretrain=replace(plan.pretrain, epochs=args.pretrain_epochs))
    if args.scout_steps is not None:
        plan = replace(plan, scouts=replace(plan.scouts, steps=args.scout_steps))
    return plan


def _check_build_paths(out: Path, args) -> None:
    """Refuse, before hours of training, what would make the build fail at the end."""
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} already exists; pass --overwrite to replace it or another --out.")
    checkpoints = Path(args.checkpoint_dir) if args.checkpoint_dir else None
    if checkpoints is not None and checkpoints.exists() and not checkpoints.is_dir():
        raise ValueError(f"--checkpoint-dir {checkpoints} is a file; pass a checkpoint folder.")
    if args.n_scouts is not None and args.n_scouts < 1:
        raise ValueError(f"--n-scouts must be at least 1, got {args.n_scouts}.")


def _run_evaluate(args, say) -> None:
    from gtlomics.corpus.h5ad import read_h5ad_whole
    from gtlomics.evaluation.arms import BASELINE_NAMES
    from gtlomics.evaluation.data import concat_datasets
    from gtlomics.evaluation.experiment import resolve_foundation, run_experiment

    adata = read_h5ad_whole(args.data)
    spec = _experiment_spec(args)
    if args.test_data:
        train_name, test_name = Path(args.data).stem, Path(args.test_data).stem
        adata = concat_datasets({train_name: adata, test_name: read_h5ad_whole(args.test_data)})
        spec = replace(
            spec, protocol="cross", group_key="dataset", train_group=train_name,
            test_group=test_name,
        )  # fmt: skip
    pretrained_arms = [arm for arm in spec.arms if arm not in (*BASELINE_NAMES, "scratch")]
    foundation = resolve_foundation(args.foundation) if pretrained_arms else None
    say(f"Evaluating {', '.join(spec.arms)} on {adata.n_obs} samples of {args.data}...")
    outcome = run_experiment(spec, adata, args.out, foundation=foundation, progress=not args.quiet)
    _print_summary(outcome.result, say)
    say(f"Report: {outcome.report.summary_md}")


def _experiment_spec(args):
    from gtlomics.evaluation.baselines import BaselineConfig
    from gtlomics.evaluation.experiment import ExperimentSpec

    gtl_params = {"layer": args.layer}
    if args.epochs is not None:
        gtl_params["epochs"] = args.epochs
    return ExperimentSpec(
        label_key=args.label_key,
        arms=tuple(name.strip() for name in args.arms.split(",") if name.strip()),
        classes=tuple(args.classes.split(",")) if args.classes else None,
        protocol=args.protocol,
        n_splits=args.n_splits,
        group_key=args.group_key,
        train_group=args.train_group,
        test_group=args.test_group,
        n_repeats=args.repeats,
        random_state=args.seed,
        baseline=BaselineConfig(n_genes=args.n_genes, layer=args.layer),
        gtl_params=tuple(gtl_params.items()),
        title=f"gtlomics evaluation of {Path(args.data).name} ({args.label_key})",
    )


def _run_list_osdr(args, say) -> None:
    from gtlomics.datasets.osdr_catalog import list_osdr_studies

    table = list_osdr_studies(
        args.catalog, tissue=args.tissue, min_flight=args.min_flight, min_ground=args.min_ground
    )
    _print(table.to_string(index=False))


def _run_fetch_osdr(args, say) -> None:
    from gtlomics.datasets.osdr import OSDR_URL, load_osdr

    base_url = args.base_url or OSDR_URL
    adata = load_osdr(
        args.accession, base_url=base_url, cache_dir=args.cache_dir, progress=not args.quiet
    )
    adata.write_h5ad(args.out)
    say(f"Wrote {adata.n_obs} samples × {adata.n_vars} genes to {args.out}")


def _print_summary(result, say) -> None:
    from gtlomics.evaluation.report import format_table, pooled_table, summary_table

    say("\nScores per fold (mean ± sd over folds × repeats):")
    say(format_table(summary_table(result)))
    say("\nPooled out-of-fold scores (mean ± sd over repeats):")
    say(format_table(pooled_table(result)))


def _print(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
