"""Regression benchmark on REAL data: curatedAdipoRNA hours from induction, leave-one-study-out.

The target is ``obs['time']`` of curatedAdipoRNA (3T3-L1 adipocyte differentiation, hours from
induction; 98 samples from 16 SRA studies); each study is held out once (``study`` groups). The
foundation is built from the OTHER count sets only (OSD-758 retina, Benayoun aging, Weger liver;
curatedAdipoRNA excluded), every corpus study standardised on its own, with the functions of
``examples/multi_study_benchmark.py``.

Arms: ridge regression (alpha by inner CV) and random forest on log-CPM of the most variable
genes, and ``GTLRegressor`` from scratch, pre-trained (unguided) and GTL, one parameter apart.
Reported per arm: mean ± sd of per-fold R², MAE (hours) and Spearman, and the same metrics on
the pooled out-of-fold predictions. A held-out study with one time point has no per-fold R² or
Spearman (NaN, ignored by the per-fold mean); pooled metrics use every prediction.

Run (``--small`` shrinks the foundation and fine-tuning for a busy 2-core machine)::

    OMP_NUM_THREADS=1 .venv/bin/python examples/regression_benchmark.py --small
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import multi_study_benchmark as msb  # the classification benchmark's loaders

ARMS = ("ridge", "random_forest", "scratch", "pretrained", "gtl")
TASK = msb.Task(
    "adipo_time", "curatedAdipoRNA", "time", None, "logo", "study", 0, 1,
    "curatedAdipoRNA: hours from induction, leave-one-study-out",
)  # fmt: skip
SMALL_SIZES = {
    "n_genes": 256,
    "d_model": 32,
    "n_layers": 1,
    "n_heads": 4,
    "n_scouts": 8,
    "pretrain_epochs": 2,
    "scout_steps": 15,
}
SMALL_GTL = {"epochs": 5, "n_readout_genes": 500}
SMALL_BASELINE = {"n_genes": 1000, "n_trees": 100}


def run(data_dir: Path, out: Path, seed: int, small: bool) -> str:
    """Build the foundation, evaluate every arm, write the report; return the markdown table."""
    from gtlomics.evaluation import (
        BaselineConfig,
        evaluate_regression,
        make_protocol,
        regression_arms,
        regression_summary_markdown,
        write_regression_report,
    )

    if small:
        msb.FOUNDATION_SIZES = SMALL_SIZES  # read by build_task_foundation
    sets = msb.load_datasets(data_dir, cache_dir=None)
    foundation, description = msb.build_task_foundation(sets, TASK, seed, "log")
    adata = sets[TASK.dataset]
    y = adata.obs["time"].astype(float).to_numpy()
    baseline = BaselineConfig(**SMALL_BASELINE) if small else BaselineConfig()
    arms = regression_arms(
        ARMS, foundation=foundation, baseline=baseline, gtl_params=SMALL_GTL if small else None
    )
    result = evaluate_regression(
        arms,
        adata,
        y,
        protocol=make_protocol("logo", task="regression"),
        groups=adata.obs["study"].astype(str).to_numpy(),
        random_state=seed,
    )
    write_regression_report(result, out)
    sizes = {**msb.FOUNDATION_SIZES, **(SMALL_GTL if small else {})}
    header = f"REAL data. Foundation corpus: {description}. Sizes: {sizes}; baseline {baseline}."
    table = header + "\n\n" + regression_summary_markdown(result)
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", default=os.environ.get("GTLOMICS_SHARED_DATA", msb.DEFAULT_DATA)
    )
    parser.add_argument("--out", default="regression-report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="small sizes for a busy machine")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    np.set_printoptions(precision=3)
    print(run(Path(args.data_dir), Path(args.out), args.seed, args.small))


if __name__ == "__main__":
    main()
