"""The real multi-study benchmark: every labelled task in ../shared/data, every arm, same folds.

Tasks (REAL data; each task's foundation is built from the OTHER count sets only, every corpus
study standardised on its own):

* ``osd758``: OSD-758 retina, Space Flight vs Ground Control, stratified 5-fold × 2 repeats.
  Corpus: curatedAdipoRNA + Benayoun aging + Weger liver.
* ``adipo``: curatedAdipoRNA stage 0 vs 3, leave-one-study-out. Corpus: OSD-758 + aging + liver.
* ``aging``: Benayoun aging, 3 vs 29 months (five tissues), stratified 4-fold × 2 repeats.
  Corpus: OSD-758 + curatedAdipoRNA + liver.
* ``neutrophil_sex`` / ``neutrophil_age``: Benayoun neutrophils (log2 DESeq2 values, not
  counts), female vs male and 4 vs 20 months, stratified 4-fold grouped by animal × 2 repeats.
  Corpus: all four count sets (the neutrophil set is normalised, so it never joins a corpus).

Arms: logistic regression (C by inner CV), linear SVM, random forest, k-NN, the transformer from
scratch, the linear probe on frozen embeddings, pre-trained only, GTL, and GTL's two controls
(shuffled and constant guides). Every neural arm is the default ``GTLClassifier`` but for the one
parameter that makes the arm. Sizes are fixed in advance (below), the same for every task.

Per task and arm: mean per-fold AUROC, pooled out-of-fold AUROC and log-loss (mean over
repeats), the mean sd of test-fold probabilities (a collapsed model has ~0), and a permutation
p-value of the first repeat's pooled AUROC (labels permuted 2,000 times over fixed out-of-fold
predictions: is the ranking better than chance? It does not refit, so it ignores fold-to-fold
dependence).

Run (one process per task group; each writes a report to ``OUT/<task>/``; then ``--collect``
writes the table to ``OUT/results.md``)::

    OMP_NUM_THREADS=1 .venv/bin/python examples/multi_study_benchmark.py --tasks osd758,aging
    OMP_NUM_THREADS=1 .venv/bin/python examples/multi_study_benchmark.py \\
        --tasks adipo,neutrophil_sex,neutrophil_age
    .venv/bin/python examples/multi_study_benchmark.py --collect
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ARMS = (
    "logreg",
    "linear_svm",
    "random_forest",
    "knn",
    "scratch",
    "probe",
    "pretrained",
    "gtl",
    "gtl_shuffled",
    "gtl_constant",
)
N_PERMUTATIONS = 2000


@dataclass(frozen=True)
class Task:
    """One labelled task: dataset, labels, protocol, and the datasets its corpus leaves out."""

    name: str
    dataset: str
    label_key: str
    classes: tuple[str, ...] | None
    protocol: str
    group_key: str | None
    n_splits: int
    n_repeats: int
    title: str


TASKS = {
    task.name: task
    for task in (
        Task("osd758", "OSD-758", "spaceflight", None, "kfold", None, 5, 2,
             "OSD-758 retina: Space Flight vs Ground Control"),
        Task("adipo", "curatedAdipoRNA", "stage", ("0", "3"), "logo", "study", 0, 1,
             "curatedAdipoRNA: stage 0 vs 3, leave-one-study-out"),
        Task("aging", "Benayoun-aging", "age_months", ("3", "29"), "kfold", None, 4, 2,
             "Benayoun aging: 3 vs 29 months, five tissues"),
        Task("neutrophil_sex", "neutrophils", "sex", None, "group_kfold", "animal", 4, 2,
             "Benayoun neutrophils: female vs male, folds grouped by animal"),
        Task("neutrophil_age", "neutrophils", "age", None, "group_kfold", "animal", 4, 2,
             "Benayoun neutrophils: 4 vs 20 months, folds grouped by animal"),
    )
}  # fmt: skip

FOUNDATION_SIZES = {
    "n_genes": 512,
    "d_model": 32,
    "n_layers": 1,
    "n_heads": 4,
    "n_scouts": 16,
    "pretrain_epochs": 10,
    "scout_steps": 30,
}
COUNT_SETS = ("OSD-758", "curatedAdipoRNA", "Benayoun-aging", "Weger-liver")


def load_datasets(data_dir: Path, cache_dir: Path | None) -> dict:
    """Every real set, Ensembl ids; ``obs['study']`` names each sample's study for the corpus."""
    from gtlomics.datasets import (
        harmonize_to_ensembl,
        load_benayoun_aging,
        load_benayoun_neutrophils,
        load_curated_adipo,
        load_osdr,
        load_weger_liver,
    )

    genes = data_dir / "genes"
    maps = {"map_path": genes / "mouse_gene_map.csv.gz"}
    aliases = {"aliases_path": genes / "mouse_symbol_aliases.csv.gz"}
    sets = {
        "OSD-758": load_osdr("OSD-758", base_url=str(data_dir / "osdr"), cache_dir=cache_dir),
        "curatedAdipoRNA": harmonize_to_ensembl(
            load_curated_adipo(data_dir / "corpus" / "curated_adipo"), **maps, **aliases
        ),
        "Benayoun-aging": harmonize_to_ensembl(
            load_benayoun_aging(data_dir / "corpus" / "benayoun_aging"), **maps, from_="refseq"
        ),
        "Weger-liver": load_weger_liver(data_dir / "corpus" / "weger_liver"),
        "neutrophils": harmonize_to_ensembl(
            load_benayoun_neutrophils(data_dir / "labelled" / "benayoun_neutrophils"),
            **maps,
            **aliases,
        ),
    }
    for name, adata in sets.items():
        adata.obs["age_months"] = adata.obs.get("age_months", pd.Series(dtype=str)).astype(str)
        within = {"curatedAdipoRNA": "study", "Benayoun-aging": "tissue"}.get(name)
        sub = adata.obs[within].astype(str) if within else name
        adata.obs["study"] = (name + ":" + pd.Series(sub, index=adata.obs_names)).astype(str)
    return sets


def corpus_for(sets: dict, dataset: str):
    """Every count set but ``dataset``, stacked on shared genes; ``obs['study']`` kept."""
    from gtlomics.evaluation.data import concat_datasets

    if dataset not in sets:
        raise KeyError(f"No dataset {dataset!r}; have {sorted(sets)}.")
    names = [name for name in COUNT_SETS if name != dataset]
    corpus = concat_datasets({name: sets[name] for name in names})
    corpus.obs["study"] = pd.Categorical(
        [s for name in names for s in sets[name].obs["study"].astype(str)]
    )
    return corpus, names


def reference_spec(seed: int):
    """The shared README's reference: OSD-758 leave-one-out, tuned logistic regression."""
    from gtlomics.evaluation import BaselineConfig
    from gtlomics.evaluation.experiment import ExperimentSpec

    return ExperimentSpec(
        label_key="spaceflight",
        arms=("logreg",),
        protocol="loo",
        n_repeats=1,
        random_state=seed,
        baseline=BaselineConfig(n_genes=2000),
        title="OSD-758 leave-one-out, logistic regression (reference numbers check)",
        data_note="REAL data. Reference (shared data README): AUROC 0.79, accuracy 0.71.",
    )


def build_task_foundation(sets: dict, task: Task, seed: int, value_encoding: str):
    """A foundation on every count set except the task's own, each study standardised alone."""
    from dataclasses import replace

    from gtlomics.expression import PreprocessingConfig
    from gtlomics.foundation import build_foundation, get_preset
    from gtlomics.train import PretrainConfig, ScoutConfig

    corpus, names = corpus_for(sets, task.dataset)
    sizes = FOUNDATION_SIZES
    preset = replace(
        get_preset("small"),
        n_genes=sizes["n_genes"],
        d_model=sizes["d_model"],
        n_layers=sizes["n_layers"],
        n_heads=sizes["n_heads"],
        n_scouts=sizes["n_scouts"],
        pretrain=PretrainConfig(epochs=sizes["pretrain_epochs"], batch_size=16),
        scouts=ScoutConfig(steps=sizes["scout_steps"], batch_size=16),
    )
    description = f"{' + '.join(names)} ({corpus.n_obs} real samples; {task.dataset} excluded)"
    print(f"[{task.name}] foundation on {description}, {corpus.n_vars} genes", flush=True)
    foundation = build_foundation(
        corpus,
        preset=preset,
        preprocessing=PreprocessingConfig(value_encoding=value_encoding),
        corpus_description=description,
        random_state=seed,
        batch_key="study",
    )
    return foundation, description


def run_task(sets: dict, task: Task, out: Path, seed: int, value_encoding: str, arms=ARMS) -> None:
    """Evaluate ``arms`` on one task and write its report to ``out/<task>``."""
    from gtlomics.evaluation import BASELINE_NAMES, ENCODING_BASELINE_NAMES
    from gtlomics.evaluation.experiment import ExperimentSpec, run_experiment

    foundation, description = None, "none (baselines only)"
    if set(arms) - {*BASELINE_NAMES, *ENCODING_BASELINE_NAMES}:
        foundation, description = build_task_foundation(sets, task, seed, value_encoding)
    spec = ExperimentSpec(
        label_key=task.label_key,
        arms=tuple(arms),
        classes=task.classes,
        protocol=task.protocol,
        n_splits=task.n_splits or 5,
        group_key=task.group_key,
        n_repeats=task.n_repeats,
        random_state=seed,
        title=f"{task.title} (REAL data)",
        data_note=f"REAL data. Foundation corpus: {description}. Sizes: {FOUNDATION_SIZES}. "
        f"Value encoding: {value_encoding}.",
    )
    adata = sets[task.dataset]
    adata.obs[task.label_key] = adata.obs[task.label_key].astype(str)
    run_experiment(spec, adata, out / task.name, foundation=foundation)
    print(task_summary(out / task.name).to_string(index=False), flush=True)


def task_summary(report: Path) -> pd.DataFrame:
    """Per arm, from a written report: per-fold and pooled AUROC, log-loss, spread, perm. p."""
    scores = pd.read_csv(report / "results.csv")
    predictions = pd.read_csv(report / "predictions.csv")
    pooled = pd.read_csv(report / "pooled.csv").groupby("arm", sort=False)
    pooled = pooled[["auroc", "log_loss"]].mean()
    probabilities = sorted(c for c in predictions.columns if c.startswith("proba:"))[-1]
    rows = []
    for arm, per_fold in scores.groupby("arm", sort=False):
        own = predictions[predictions["arm"] == arm]
        rows.append(
            {
                "task": report.name,
                "arm": arm,
                "auroc_per_fold": per_fold["auroc"].mean(),
                "auroc_per_fold_sd": per_fold["auroc"].std(),
                "auroc_pooled": pooled.loc[arm, "auroc"],
                "log_loss_pooled": pooled.loc[arm, "log_loss"],
                "test_proba_sd": own.groupby(["repeat", "fold"])[probabilities].std().mean(),
                "permutation_p": permutation_p(own),
            }
        )
    return pd.DataFrame(rows)


def permutation_p(predictions: pd.DataFrame) -> float:
    """p-value of the first repeat's pooled AUROC against label permutations (fixed scores).

    ``score`` is the positive-class probability, or the decision value of arms without one.
    """
    from sklearn.metrics import roc_auc_score

    first = predictions[predictions["repeat"] == predictions["repeat"].min()]
    positive = sorted(first["y_true"].astype(str).unique())[-1]
    truth = (first["y_true"].astype(str) == positive).to_numpy()
    scores = first["score"].to_numpy(float)
    observed = roc_auc_score(truth, scores)
    rng = np.random.default_rng(0)
    null = [roc_auc_score(rng.permutation(truth), scores) for _ in range(N_PERMUTATIONS)]
    return float((1 + np.sum(np.asarray(null) >= observed)) / (1 + N_PERMUTATIONS))


def collect(out: Path) -> str:
    """One markdown table over every task summary found under ``out``."""
    reports = [out / name for name in TASKS if (out / name / "pooled.csv").is_file()]
    if not reports:
        raise SystemExit(f"No task report under {out}; run some --tasks first.")
    frames = [task_summary(report) for report in reports]
    table = pd.concat(frames)
    lines = [
        "| task | arm | per-fold AUROC | pooled AUROC | pooled log-loss | test-prob sd | perm. p |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.task} | {row.arm} | {row.auroc_per_fold:.3f} ± {row.auroc_per_fold_sd:.3f} "
            f"| {row.auroc_pooled:.3f} | {_cell(row.log_loss_pooled)} | {_cell(row.test_proba_sd)} "
            f"| {row.permutation_p:.4f} |"
        )
    means = table.groupby("arm", sort=False)["auroc_per_fold"].mean()
    lines += ["", "Mean per-fold AUROC over tasks:", ""]
    lines += [f"- {arm}: {value:.3f}" for arm, value in means.items()]
    lines += ["", "GTL against each arm, per-fold AUROC paired over every fold of every task:", ""]
    lines += paired_lines(reports) if "gtl" in table["arm"].to_numpy() else []
    return "\n".join(lines)


def _cell(value: float) -> str:
    """Three decimals, or "–" for an arm without that number (no probabilities)."""
    return "–" if pd.isna(value) else f"{value:.3f}"


def paired_lines(reports: list[Path], challenger: str = "gtl") -> list[str]:
    """Mean paired difference, wins/ties/losses (|d| < 1e-9 is a tie) and two-sided sign test."""
    from scipy.stats import binomtest

    folds = pd.concat(
        pd.read_csv(report / "results.csv").assign(task=report.name) for report in reports
    )
    wide = folds.pivot_table(index=["task", "repeat", "fold"], columns="arm", values="auroc")
    lines = []
    for arm in [a for a in wide.columns if a != challenger]:
        difference = (wide[challenger] - wide[arm]).dropna()
        wins, losses = int((difference > 1e-9).sum()), int((difference < -1e-9).sum())
        ties = len(difference) - wins - losses
        p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
        lines.append(
            f"- {challenger} − {arm}: {difference.mean():+.3f} over {len(difference)} folds, "
            f"wins/ties/losses {wins}/{ties}/{losses}, sign test p = {p:.3g}"
        )
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("GTLOMICS_SHARED_DATA", DEFAULT_DATA))
    parser.add_argument("--out", default="benchmark-report")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=",".join(TASKS), type=lambda s: s.split(","))
    parser.add_argument("--value-encoding", default="log", choices=("log", "rank"))
    parser.add_argument("--collect", action="store_true", help="only write the table")
    parser.add_argument(
        "--arms", default=",".join(ARMS), type=lambda s: tuple(s.split(",")),
        help="subset of arms (same folds); baselines alone need no foundation",
    )  # fmt: skip
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.collect:
        import torch

        torch.set_num_threads(1)
        sets = load_datasets(Path(args.data_dir), args.cache_dir)
        for name in args.tasks:
            run_task(sets, TASKS[name], out, args.seed, args.value_encoding, args.arms)
    table = collect(out)
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
