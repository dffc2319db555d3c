"""Time PCA → UMAP → KMeans → tasks of ClusterScoutGenerator on synthetic counts.

The first fit in a process includes numba's JIT compile of UMAP and is reported on its own; the
table shows the median wall time of ``--repeats`` warm fits and each step's share of their total.
The process CPU time of each fit is printed too: on a shared machine wall time over CPU time shows
how much the numbers were slowed by other work (a seeded UMAP uses one thread).

Then the fast path for large corpora, :class:`gtlomics.corpus.SubsampledCousinTasks` (cluster a
uniform subsample of ``--subsample`` rows, assign every other row to the nearest cluster
centroid), against the full fit: time ratio, and agreement of the two clusterings over all rows
and with the simulated clusters (adjusted Rand index).

    python benchmarks/bench_cluster_scouts.py                 # 50,000 × 2,000, 3 repeats
    python benchmarks/bench_cluster_scouts.py --n-samples 5000 --repeats 1 --subsample 1000
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.metrics import adjusted_rand_score

from gtlomics.corpus import ArrayCorpus, SubsampledCousinTasks
from gtlomics.datasets import make_synthetic_counts
from gtlomics.expression import GeneVocab, prepare_expression
from gtlomics.scouts import ClusterScoutGenerator, ScoutTimings

STEPS = ("pca_s", "umap_s", "kmeans_s", "tasks_s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=50_000)
    parser.add_argument("--n-genes", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3, help="warm fits after the first")
    parser.add_argument("--n-epochs", type=int, default=None, help="UMAP epochs (default: UMAP's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subsample", type=int, nargs="*", default=[10_000], help="rows clustered")
    return parser.parse_args()


def make_values(n_samples: int, n_genes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic counts, log1p-CPM normalised (the generator's expected input), and the
    simulated cluster of each sample."""
    adata = make_synthetic_counts(n_samples, n_genes=n_genes, random_state=seed)
    vocab = GeneVocab.from_list(adata.var_names)
    return prepare_expression(adata, vocab).values, np.asarray(adata.obs["cluster"])


def timed_fit(values: np.ndarray, args: argparse.Namespace) -> ClusterScoutGenerator:
    scouts = ClusterScoutGenerator(n_epochs=args.n_epochs, random_state=args.seed)
    cpu_start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scouts.fit(values)
    wall = sum(getattr(scouts.timings_, step) for step in STEPS)
    print(f"  fit: {wall:.1f} s wall, {time.process_time() - cpu_start:.1f} s CPU", flush=True)
    return scouts


def compare_subsampled(values, truth, full: ClusterScoutGenerator, full_s: float, args) -> None:
    """Time SubsampledCousinTasks (fit + assigning every row) against the full fit."""
    corpus = ArrayCorpus(values, chunk_size=4096)
    print(f"{'rows fit':>9}{'fit s':>8}{'assign s':>10}{'full/sub':>10}{'ARI vs full':>13}"
          f"{'ARI vs simulated':>18}")  # fmt: skip
    print(f"{len(values):>9}{full_s:>8.1f}{0:>10.1f}{1:>10.2f}{1:>13.3f}"
          f"{adjusted_rand_score(truth, full.labels_):>18.3f}")  # fmt: skip
    for n_rows in args.subsample:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sub = SubsampledCousinTasks(n_subsample=n_rows, seed=args.seed).fit(corpus)
        fit_s = time.perf_counter() - start
        labels = sub.assign(corpus)
        assign_s = time.perf_counter() - start - fit_s
        print(f"{len(sub.rows_):>9}{fit_s:>8.1f}{assign_s:>10.1f}"
              f"{full_s / (fit_s + assign_s):>10.2f}"
              f"{adjusted_rand_score(full.labels_, labels):>13.3f}"
              f"{adjusted_rand_score(truth, labels):>18.3f}", flush=True)  # fmt: skip


def report(first: ScoutTimings, warm: list[ScoutTimings]) -> None:
    medians = {step: float(np.median([getattr(t, step) for t in warm])) for step in STEPS}
    total = sum(medians.values())
    print(f"first fit (includes numba compile): {sum(getattr(first, s) for s in STEPS):.2f} s")
    print(f"{'step':<8}{'median s':>10}{'share':>8}{'first fit s':>13}")
    for step in STEPS:
        name = step.removesuffix("_s")
        share = medians[step] / total
        print(f"{name:<8}{medians[step]:>10.2f}{share:>8.1%}{getattr(first, step):>13.2f}")
    print(f"{'total':<8}{total:>10.2f}{1:>8.0%}")


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    values, truth = make_values(args.n_samples, args.n_genes, args.seed)
    print(f"synthetic data {values.shape}: {time.perf_counter() - start:.1f} s to make", flush=True)
    first = timed_fit(values, args)
    warm = [timed_fit(values, args) for _ in range(args.repeats)]
    report(first.timings_, [fit.timings_ for fit in warm])
    if args.subsample:
        full = warm[-1] if warm else first
        full_s = sum(getattr(full.timings_, step) for step in STEPS)
        compare_subsampled(values, truth, full, full_s, args)


if __name__ == "__main__":
    main()
