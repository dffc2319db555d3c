"""Time one few-shot fold: GTLClassifier fit + predict on 12 samples × 2,048 genes.

A small foundation is built first on a synthetic corpus (its build time is printed but is not the
point: pre-training and scouting are kept short so the script runs in a minute or two). Then the
three arms (scratch, pre-trained only, GTL) are each fitted on 12 synthetic samples (6 treated,
6 control) with the classifier's default schedule and asked to predict 12 held-out samples.

Usage::

    python benchmarks/bench_fewshot_fold.py [--n-genes 2048] [--vocab 512] [--epochs 30]

The input always has ``--n-genes`` genes; the models see ``--vocab`` gene tokens (the foundation's
most variable genes, or for the scratch arm the training fold's). Attention cost grows with the
square of ``--vocab``, which is what separates a "small" foundation (seconds) from the default.

All data are synthetic (gtlomics.datasets.synthetic).
"""

from __future__ import annotations

import argparse
import time

import torch

from gtlomics.classifier import GTLClassifier
from gtlomics.datasets.synthetic import SyntheticDesign
from gtlomics.foundation import Foundation, FoundationPreset, build_foundation, get_preset
from gtlomics.train import PretrainConfig, ScoutConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-genes", type=int, default=2048, help="genes in the input data")
    parser.add_argument(
        "--vocab",
        type=int,
        default=512,
        help="foundation vocabulary (gene tokens); 512 is the 'small' preset, 2048 the default",
    )
    parser.add_argument("--corpus-samples", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=2)
    return parser.parse_args()


def build_benchmark_foundation(args: argparse.Namespace, design: SyntheticDesign) -> Foundation:
    preset = FoundationPreset(
        n_genes=args.vocab,
        d_model=args.d_model,
        n_layers=args.n_layers,
        n_heads=4,
        n_scouts=4,
        pretrain=PretrainConfig(epochs=1, batch_size=16),
        scouts=ScoutConfig(steps=3, batch_size=8),
        cousin_tasks=get_preset("tiny").cousin_tasks,
    )
    corpus = design.sample(args.corpus_samples, random_state=1)
    start = time.perf_counter()
    foundation = build_foundation(corpus, preset=preset, random_state=0)
    print(f"foundation build (short, synthetic): {time.perf_counter() - start:6.1f} s")
    return foundation


def time_arm(name: str, clf: GTLClassifier, train, test, repeats: int) -> float:
    fits, predicts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        clf.fit(train)
        fits.append(time.perf_counter() - start)
        start = time.perf_counter()
        clf.predict_proba(test)
        predicts.append(time.perf_counter() - start)
    fit_s, predict_s = min(fits), min(predicts)
    per_epoch = fit_s / clf.epochs
    print(
        f"{name:<11} fit {fit_s:6.2f} s ({per_epoch * 1000:6.1f} ms/epoch)   "
        f"predict 12: {predict_s:5.2f} s   fit+predict {fit_s + predict_s:6.2f} s"
    )
    return fit_s


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    design = SyntheticDesign.random(n_genes=args.n_genes, n_clusters=6, random_state=0)
    foundation = build_benchmark_foundation(args, design)
    train = design.sample(12, clusters=[0], random_state=2)
    test = design.sample(12, clusters=[0], random_state=3)
    print(
        f"fold: 12 train + 12 test samples × {args.n_genes} genes, {args.vocab} gene tokens, "
        f"d_model={args.d_model}, "
        f"{args.n_layers} layers, {args.epochs} epochs, {args.threads} threads "
        f"(best of {args.repeats})"
    )
    shared = {"epochs": args.epochs, "random_state": 0}
    arms = {
        "scratch": GTLClassifier(
            foundation=None,
            d_model=args.d_model,
            n_layers=args.n_layers,
            n_genes=args.vocab,
            **shared,
        ),
        "pretrained": GTLClassifier(foundation=foundation, guidance="none", **shared),
        "gtl": GTLClassifier(foundation=foundation, **shared),
    }
    fit_s = {name: time_arm(name, clf, train, test, args.repeats) for name, clf in arms.items()}
    print(
        f"ratios: gtl/pretrained fit {fit_s['gtl'] / fit_s['pretrained']:.2f} "
        f"(cost of guided updates), scratch/pretrained fit "
        f"{fit_s['scratch'] / fit_s['pretrained']:.2f}"
    )


if __name__ == "__main__":
    main()
