"""Time the first ``GTLClassifier().fit`` without a default foundation, and the fit that reuses it.

Without a default foundation, ``GTLClassifier()`` builds a small "auto" foundation from the
samples given to ``fit`` and caches it by their values. This script times, in one process with
empty caches (foundation cache and numba's UMAP compile cache in a fresh temporary folder):

* the first fit: reads nothing cached, builds the auto foundation, fine-tunes;
* a second fit on the same samples with the same seed: reuses the foundation from memory.

Data: OSD-758 (35 mouse retina samples × 56,748 genes, Space Flight vs Ground Control) from the
local copy in ``../shared/data/osdr`` (``--data-dir``), read the way ``load_osdr`` reads a mirror.

Usage::

    python benchmarks/bench_first_fit.py [--data-dir ../shared/data] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="gtlomics-first-fit-"))
    # Empty caches, set before gtlomics (and numba) are imported.
    os.environ["GTLOMICS_CACHE"] = str(scratch / "cache")
    os.environ["NUMBA_CACHE_DIR"] = str(scratch / "numba")
    os.environ["XDG_CACHE_HOME"] = str(scratch / "xdg")
    os.environ.pop("GTLOMICS_FOUNDATION", None)

    import torch

    from gtlomics import GTLClassifier
    from gtlomics.datasets import load_osdr

    if args.threads:
        torch.set_num_threads(args.threads)
    adata = load_osdr("OSD-758", base_url=str(args.data_dir / "osdr"), cache_dir=scratch / "osdr")
    labels = adata.obs["spaceflight"].astype(str).to_numpy()
    print(
        f"OSD-758: {adata.n_obs} samples × {adata.n_vars} genes; torch threads "
        f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}"
    )
    times = {}
    for name in ("first fit (builds the auto foundation)", "second fit (reuses it)"):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        GTLClassifier(random_state=args.seed).fit(adata, labels)
        times[name] = (time.perf_counter() - start_wall, time.process_time() - start_cpu)
    print(f"{'fit':<42}{'wall s':>9}{'CPU s':>9}")
    for name, (wall, cpu) in times.items():
        print(f"{name:<42}{wall:>9.1f}{cpu:>9.1f}")
    first, second = (wall for wall, _ in times.values())
    print(f"first/second wall time: {first / second:.1f}x")


if __name__ == "__main__":
    main()
