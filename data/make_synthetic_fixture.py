"""Write the project's own small generated fixture: a SYNTHETIC few-shot study as ``.h5ad``.

Nothing here is measured: the counts come from :class:`gtlomics.datasets.SyntheticDesign` (see
``data/README.md`` for the recipe). The file is regenerated on demand rather than committed::

    python data/make_synthetic_fixture.py --out data/synthetic_fewshot.h5ad
"""

from __future__ import annotations

import argparse

from gtlomics.datasets import SyntheticDesign


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic few-shot study (.h5ad).")
    parser.add_argument("--out", default="data/synthetic_fewshot.h5ad")
    parser.add_argument("--n-samples", type=int, default=24)
    parser.add_argument("--n-genes", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    design = SyntheticDesign.random(
        n_genes=args.n_genes, n_condition_genes=40, random_state=args.seed
    )
    study = design.sample(args.n_samples, clusters=[0], random_state=args.seed + 1)
    study.write_h5ad(args.out)
    print(f"wrote {args.out}: {study.n_obs} SYNTHETIC samples x {study.n_vars} genes")


if __name__ == "__main__":
    main()
