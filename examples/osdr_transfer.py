"""The reference GTL experiment: fit on NASA OSD-105, test on OSD-104 (cross-dataset transfer).

RR-1 mice: OSD-105 is tibialis anterior, OSD-104 soleus; 6 flight (FLT) vs 6 ground-control (GC)
animals each. Both count tables are downloaded from the OSDR public API by
:func:`gtlomics.datasets.load_osdr` (cached), or read from any mirror with ``--base-url`` (a
directory with one ``OSD-<n>/`` folder per study, a ``file://`` URL, or an HTTP server laid out
like the API).

Arms (same split, several seeds): logistic regression (C by inner CV), linear SVM, random forest,
k-NN on log-CPM of the 2,000 most variable training genes, and the GTLClassifier arms (scratch,
pre-trained only, GTL). Without ``--foundation``, a small foundation is built on the TRAINING
study's samples only (labels unused), so nothing of the test study enters pre-training or
scouting. The fine-tuning schedule is fixed in advance: no epoch is chosen on the test study.

Usage::

    python examples/osdr_transfer.py --out osdr-report                 # online
    python examples/osdr_transfer.py --base-url /path/to/mirror ...    # offline mirror
    python examples/osdr_transfer.py --train OSD-758 --test OSD-758 --base-url ../shared/data/osdr
        # code-path check only: one study split in two stratified halves (A → B)
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.model_selection import StratifiedKFold

from gtlomics.datasets import load_osdr
from gtlomics.evaluation import BASELINE_NAMES, GTL_ARM_NAMES, BaselineConfig
from gtlomics.evaluation.data import concat_datasets
from gtlomics.evaluation.experiment import ExperimentSpec, run_experiment

LABEL_KEY = "spaceflight"


def load_pair(args: argparse.Namespace):
    """Training and test studies as one AnnData (``obs['dataset']``), and their two names."""
    options = {"cache_dir": args.cache_dir}
    if args.base_url:
        options["base_url"] = args.base_url
    train = load_osdr(args.train, **options)
    if args.test == args.train:
        names = (f"{args.train}-A", f"{args.train}-B")
        studies = dict(zip(names, stand_in_halves(train, args.seed), strict=True))
    else:
        names = (args.train, args.test)
        studies = {args.train: train, args.test: load_osdr(args.test, **options)}
    return concat_datasets(studies), *names


def stand_in_halves(adata, seed: int):
    """Split one study into two label-stratified halves (a stand-in A/B pair for testing)."""
    labels = adata.obs[LABEL_KEY].astype(str).to_numpy()
    folds = StratifiedKFold(2, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    first, second = next(iter(folds))
    return adata[first].copy(), adata[second].copy()


def training_foundation(combined, train_name: str, args: argparse.Namespace):
    """A small foundation built on the training study only (unlabelled use)."""
    from gtlomics.foundation import build_foundation

    train = combined[combined.obs["dataset"] == train_name].copy()
    print(f"Building a foundation ({args.preset}) on the {train.n_obs} {train_name} samples...")
    return build_foundation(
        train,
        preset=args.preset,
        corpus_description=f"{train_name} samples only (labels unused)",
        random_state=args.seed,
        progress=not args.quiet,
    )


def main(argv=None) -> int:
    """Run the transfer experiment and write the report; returns 0."""
    args = parse_args(argv)
    combined, train_name, test_name = load_pair(args)
    arms = tuple(args.arms.split(","))
    foundation = args.foundation
    if foundation is None and set(arms) & {"pretrained", "gtl"}:
        foundation = training_foundation(combined, train_name, args)
    spec = ExperimentSpec(
        label_key=LABEL_KEY,
        arms=arms,
        protocol="cross",
        group_key="dataset",
        train_group=train_name,
        test_group=test_name,
        n_repeats=args.repeats,
        random_state=args.seed,
        baseline=BaselineConfig(n_genes=args.n_genes),
        gtl_params=(("epochs", args.epochs),),
        title=f"Transfer {train_name} → {test_name}: Space Flight vs Ground Control",
        data_note=f"REAL data from NASA OSDR ({args.base_url or 'public API'}).",
    )
    outcome = run_experiment(spec, combined, args.out, foundation=foundation,
                             progress=not args.quiet)  # fmt: skip
    if not args.quiet:
        print(outcome.report.summary_md.read_text())
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="GTL transfer OSD-105 → OSD-104.")
    parser.add_argument("--train", default="OSD-105")
    parser.add_argument("--test", default="OSD-104")
    parser.add_argument("--base-url", help="OSDR API root or mirror (default: public API)")
    parser.add_argument("--cache-dir", help="download cache")
    parser.add_argument("--foundation", help="saved foundation directory (default: build one)")
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "default"])
    parser.add_argument("--arms", default=",".join((*BASELINE_NAMES, *GTL_ARM_NAMES)))
    parser.add_argument("--epochs", type=int, default=30, help="fixed fine-tuning epochs")
    parser.add_argument("--n-genes", type=int, default=2000, help="baseline gene count")
    parser.add_argument("--repeats", type=int, default=5, help="seeds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="osdr-report")
    parser.add_argument("-q", "--quiet", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
