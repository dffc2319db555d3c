"""Real-data experiments: does GTL beat the baselines on real mouse bulk RNA-seq?

For each evaluation dataset, a foundation is built on the OTHER real corpora of ../shared/data
(unlabelled; the evaluation dataset never enters pre-training or scouting), then every arm is
evaluated on the same folds:

(a) OSD-758 (JAXA MHU-8 retina): Space Flight (23) vs Ground Control (12), repeated stratified
    5-fold CV. Foundation corpus: curatedAdipoRNA + Benayoun aging (symbols / RefSeq → Ensembl).
(b) curatedAdipoRNA: differentiation stage 0 vs 3, leave-one-study-out (16 SRA studies).
    Foundation corpus: OSD-758 + Benayoun aging.

A baseline-only leave-one-out run on OSD-758 reproduces the shared data README's reference
numbers (logistic regression with C by inner CV: AUROC 0.79, accuracy 0.71).

Run (about an hour on 2 CPU cores with the defaults; ``--fast`` for a quick look; the two
experiments can run as separate processes, one thread each)::

    OMP_NUM_THREADS=1 .venv/bin/python examples/real_data_experiments.py --out real-report \
        --experiments reference,osd758 --ablations
    OMP_NUM_THREADS=1 .venv/bin/python examples/real_data_experiments.py --out real-report \
        --experiments adipo

Nothing is chosen on a test fold: genes and C of the baselines by inner CV of the training fold,
a fixed fine-tuning schedule for the neural arms.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from gtlomics.datasets import (
    harmonize_to_ensembl,
    load_benayoun_aging,
    load_curated_adipo,
    load_osdr,
)
from gtlomics.evaluation import BASELINE_NAMES, GTL_ARM_NAMES, BaselineConfig
from gtlomics.evaluation.data import concat_datasets
from gtlomics.evaluation.experiment import ExperimentSpec, run_experiment

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass(frozen=True)
class Sizes:
    """Effort knobs of the experiments (foundation and fine-tuning)."""

    vocab_size: int = 512
    d_model: int = 32
    n_layers: int = 1
    n_scouts: int = 16
    pretrain_epochs: int = 10
    scout_steps: int = 30
    finetune_epochs: int = 30
    n_repeats: int = 2
    n_splits: int = 5

    @classmethod
    def fast(cls) -> Sizes:
        """Minutes, not an hour: smaller model, fewer repeats (numbers are noisier)."""
        return cls(vocab_size=128, n_layers=1, n_scouts=8, pretrain_epochs=3, scout_steps=10,
                   finetune_epochs=10, n_repeats=1, n_splits=3)  # fmt: skip


def load_datasets(data_dir: Path, cache_dir: Path | None = None) -> dict:
    """OSD-758, curatedAdipoRNA and Benayoun aging, all with Ensembl gene ids and raw counts."""
    genes = data_dir / "genes"
    maps = {"map_path": genes / "mouse_gene_map.csv.gz"}
    aliases = {"aliases_path": genes / "mouse_symbol_aliases.csv.gz"}
    osd758 = load_osdr("OSD-758", base_url=str(data_dir / "osdr"), cache_dir=cache_dir)
    adipo = harmonize_to_ensembl(
        load_curated_adipo(data_dir / "corpus" / "curated_adipo"), **maps, **aliases
    )
    aging = harmonize_to_ensembl(
        load_benayoun_aging(data_dir / "corpus" / "benayoun_aging"), **maps, from_="refseq"
    )
    return {"OSD-758": osd758, "curatedAdipoRNA": adipo, "Benayoun-aging": aging}


def corpus_excluding(datasets: dict, exclude: str):
    """Every dataset but ``exclude``, stacked on shared genes (``obs['dataset']`` says which)."""
    if exclude not in datasets:
        raise KeyError(f"No dataset {exclude!r}; have {sorted(datasets)}.")
    return concat_datasets({name: a for name, a in datasets.items() if name != exclude})


def build_corpus_foundation(
    datasets: dict, exclude: str, sizes: Sizes, seed: int, n_scouts: int | None = None
):
    """A foundation pre-trained and scouted on every dataset except ``exclude`` (and its corpus)."""
    from gtlomics.foundation import build_foundation, get_preset
    from gtlomics.train import PretrainConfig, ScoutConfig

    corpus = corpus_excluding(datasets, exclude)
    others = list(corpus.obs["dataset"].cat.categories)
    preset = get_preset("small")
    preset = type(preset)(
        n_genes=sizes.vocab_size,
        d_model=sizes.d_model,
        n_layers=sizes.n_layers,
        n_heads=4,
        n_scouts=n_scouts or sizes.n_scouts,
        pretrain=PretrainConfig(epochs=sizes.pretrain_epochs, batch_size=16),
        scouts=ScoutConfig(steps=sizes.scout_steps, batch_size=16),
        cousin_tasks=preset.cousin_tasks,
    )
    description = f"{' + '.join(others)} ({corpus.n_obs} real samples; {exclude} excluded)"
    print(f"Building a foundation on {description}, {corpus.n_vars} shared genes...", flush=True)
    foundation = build_foundation(
        corpus, preset=preset, corpus_description=description, random_state=seed, progress=True
    )
    return foundation, description, corpus


def osd758_spec(sizes: Sizes, arms: tuple[str, ...], note: str, seed: int) -> ExperimentSpec:
    """OSD-758 Space Flight vs Ground Control, repeated stratified k-fold."""
    return ExperimentSpec(
        label_key="spaceflight",
        arms=arms,
        protocol="kfold",
        n_splits=sizes.n_splits,
        n_repeats=sizes.n_repeats,
        random_state=seed,
        gtl_params=(("epochs", sizes.finetune_epochs),),
        title="OSD-758 retina: Space Flight vs Ground Control (REAL data)",
        data_note=note,
    )


def adipo_spec(sizes: Sizes, arms: tuple[str, ...], note: str, seed: int) -> ExperimentSpec:
    """curatedAdipoRNA stage 0 vs 3, leave-one-study-out."""
    return ExperimentSpec(
        label_key="stage",
        classes=("0", "3"),
        arms=arms,
        protocol="logo",
        group_key="study",
        n_repeats=sizes.n_repeats,
        random_state=seed,
        gtl_params=(("epochs", sizes.finetune_epochs),),
        title="curatedAdipoRNA: stage 0 vs 3, leave-one-study-out (REAL data)",
        data_note=note,
    )


def reference_spec(seed: int) -> ExperimentSpec:
    """The shared README's reference: OSD-758 leave-one-out, logistic regression (+ baselines)."""
    return ExperimentSpec(
        label_key="spaceflight",
        arms=BASELINE_NAMES,
        protocol="loo",
        n_repeats=1,
        random_state=seed,
        baseline=BaselineConfig(n_genes=2000),
        title="OSD-758 leave-one-out, baselines only (reference numbers check)",
        data_note="REAL data. Reference (shared data README): logistic regression AUROC 0.79, "
        "accuracy 0.71.",
    )


def run_scout_ablation(datasets: dict, sizes: Sizes, out: Path, seed: int) -> None:
    """OSD-758: GTL with guides from 4 vs ``sizes.n_scouts`` scouts (same pre-training seed)."""
    from gtlomics.evaluation import (
        StratifiedKFoldCV,
        baseline_arms,
        evaluate,
        scout_count_arms,
        write_report,
    )

    counts = sorted({4, sizes.n_scouts})
    foundations = {
        n: build_corpus_foundation(datasets, "OSD-758", sizes, seed, n_scouts=n)[0] for n in counts
    }
    arms = baseline_arms(["logreg"]) + scout_count_arms(
        foundations, params={"epochs": sizes.finetune_epochs}
    )
    adata = datasets["OSD-758"]
    result = evaluate(
        arms,
        adata,
        adata.obs["spaceflight"].astype(str).to_numpy(),
        protocol=StratifiedKFoldCV(sizes.n_splits),
        n_repeats=sizes.n_repeats,
        random_state=seed,
    )
    note = f"REAL data. Same pre-training seed; only the number of scouts differs. {sizes}."
    title = "OSD-758: number-of-scouts ablation"
    report = write_report(result, out / "osd758_scouts", title=title, data_note=note,
                          challenger=f"gtl_scouts_{counts[-1]}")  # fmt: skip
    print(report.summary_md.read_text(), flush=True)


def run(args: argparse.Namespace) -> None:
    """Run the selected experiments and write one report directory per experiment."""
    sizes = Sizes.fast() if args.fast else Sizes()
    arms = (*BASELINE_NAMES, *GTL_ARM_NAMES, *(("gtl_per_tensor",) if args.ablations else ()))
    datasets = load_datasets(Path(args.data_dir), args.cache_dir)
    out = Path(args.out)
    if "reference" in args.experiments:
        run_experiment(reference_spec(args.seed), datasets["OSD-758"], out / "osd758_loo_baselines")
    if "scouts" in args.experiments:
        run_scout_ablation(datasets, sizes, out, args.seed)
    plans = {"osd758": ("OSD-758", osd758_spec), "adipo": ("curatedAdipoRNA", adipo_spec)}
    for key, (name, make_spec) in plans.items():
        if key not in args.experiments:
            continue
        foundation, description, corpus = build_corpus_foundation(datasets, name, sizes, args.seed)
        note = f"REAL data. Foundation corpus: {description}. Sizes: {sizes}."
        spec = make_spec(sizes, arms, note, args.seed)
        outcome = run_experiment(
            spec, datasets[name], out / key, foundation=foundation, corpus=corpus
        )
        foundation.save(out / key / "foundation", overwrite=True)
        print(outcome.report.summary_md.read_text(), flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("GTLOMICS_SHARED_DATA", DEFAULT_DATA))
    parser.add_argument("--out", default="real-report")
    parser.add_argument("--cache-dir", default=None, help="download cache for the OSDR loader")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--ablations", action="store_true", help="add per-tensor guides arm")
    parser.add_argument(
        "--experiments", default="reference,osd758,adipo", type=lambda s: s.split(","),
        help="comma-separated subset of reference,osd758,adipo,scouts (scout-count ablation)",
    )  # fmt: skip
    return parser.parse_args(argv)


if __name__ == "__main__":
    run(parse_args())
