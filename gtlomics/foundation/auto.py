"""The foundation ``GTLClassifier(foundation="auto")`` builds from the samples given to ``fit``.

When the user has no default foundation, every ``fit`` needs one built from its own samples.
Such a build is keyed by what determines its result (the matrix values, the gene ids, the
:data:`AUTO_PRESET` sizes, the vocabulary cap, the seed, the device type and the library and
format versions) and kept twice:

* in memory, for the last :data:`MEMORY_SLOTS` keys of this process, so that the candidates of a
  ``GridSearchCV`` on one fold, or repeated fits on the same samples, share one build;
* on disk, under :func:`auto_cache_dir`, so that another process or session reuses it.

Without a ``random_state`` the build uses seed :data:`UNSEEDED_BUILD_SEED`, which makes the auto
foundation a function of the samples alone (fine-tuning stays unseeded). The folder can be
deleted at any time; it is rebuilt when needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch

from gtlomics._version import __version__
from gtlomics.expression import ExpressionTable
from gtlomics.foundation.build import DEFAULT_VALUE_ENCODING, build_foundation
from gtlomics.foundation.default import default_foundation_dir
from gtlomics.foundation.presets import CousinTaskSettings, FoundationPreset
from gtlomics.foundation.record import FORMAT_VERSION, Foundation
from gtlomics.train import PretrainConfig, ScoutConfig

__all__ = [
    "AUTO_PRESET",
    "CACHE_ENV",
    "MEMORY_SLOTS",
    "UNSEEDED_BUILD_SEED",
    "AutoFoundation",
    "auto_cache_dir",
    "auto_foundation",
    "auto_foundation_key",
    "clear_memory_cache",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "GTLOMICS_CACHE"
MEMORY_SLOTS = 4
UNSEEDED_BUILD_SEED = 0
_KEY_SCHEMA = 1  # bump when what a build produces changes without a version bump

#: Sizes of an auto build: fewer tokens (256 genes), one encoder layer and 8 scouts of 16 steps
#: instead of the "small" preset with ``n_genes=2048``. Measured on OSD-758 (35 samples × 56,748
#: genes), a first ``GTLClassifier().fit`` with empty foundation and numba caches took 26-34 s
#: wall (32-38 s of CPU) on 2 cores at load 1.4, and 82 s (55 s of CPU) at load 6-8
#: (``benchmarks/bench_first_fit.py``, BENCHMARKS.md §7); the "small"
#: preset at 2,048 tokens had not finished after 15 minutes. The token count also sets the cost
#: of every later fine-tuning.
AUTO_PRESET = FoundationPreset(
    n_genes=256,
    d_model=32,
    n_layers=1,
    n_heads=4,
    n_scouts=8,
    pretrain=PretrainConfig(epochs=10, batch_size=32),
    scouts=ScoutConfig(steps=16, batch_size=16),
    cousin_tasks=CousinTaskSettings(n_components=10, n_clusters=12, umap_epochs=200),
)


@dataclass(frozen=True)
class AutoFoundation:
    """An auto foundation and where it came from.

    Attributes
    ----------
    foundation : Foundation
        The foundation.
    key : str
        Its cache key (see :func:`auto_foundation_key`).
    source : {"built", "memory", "disk"}
        Built now, or reused from this process's memory or from the disk cache.
    path : Path or None
        Its folder in the disk cache; None when it could not be written there.
    """

    foundation: Foundation
    key: str
    source: Literal["built", "memory", "disk"]
    path: Path | None


_memory: OrderedDict[str, AutoFoundation] = OrderedDict()


def auto_cache_dir() -> Path:
    """Folder of cached auto foundations.

    ``$GTLOMICS_CACHE/foundations/auto`` when ``GTLOMICS_CACHE`` is set (the datasets' cache root
    too), else ``auto`` beside the default foundation (``$XDG_CACHE_HOME/gtlomics/foundations``
    or ``~/.cache/gtlomics/foundations``).
    """
    root = os.environ.get(CACHE_ENV, "").strip()
    if root:
        return Path(root).expanduser() / "foundations" / "auto"
    return default_foundation_dir().parent / "auto"


def clear_memory_cache() -> None:
    """Forget the auto foundations held in memory (the disk cache stays)."""
    _memory.clear()


def auto_foundation_key(
    matrix: Any, gene_ids: Sequence[str], settings: FoundationPreset, seed: int, device: str
) -> str:
    """Hex digest of everything an auto build's result depends on.

    Parameters
    ----------
    matrix : ndarray or scipy sparse matrix of shape (n_samples, n_genes)
        The samples, hashed by value as float64: the dtype and the sparse format (CSR, CSC,
        COO) do not matter, but a dense and a sparse copy of the same values get two keys.
    gene_ids : sequence of str
        Column ids.
    settings : FoundationPreset
        The build sizes (vocabulary size included).
    seed : int
        Root seed of the build.
    device : str
        Device type the build runs on (a CUDA build differs from a CPU build).
    """
    digest = hashlib.sha256()
    recipe = {
        "schema": _KEY_SCHEMA,
        "library": __version__,
        "format": FORMAT_VERSION,
        "settings": asdict(settings),
        "value_encoding": DEFAULT_VALUE_ENCODING,
        "seed": int(seed),
        "device": device,
        "shape": list(matrix.shape),
    }
    digest.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    digest.update("\n".join(map(str, gene_ids)).encode())
    for block in _value_blocks(matrix):
        digest.update(block)
    return digest.hexdigest()[:32]


def _value_blocks(matrix: Any, rows_per_block: int = 256) -> Iterator[bytes]:
    """The matrix's values as float64 bytes: a dense matrix a block of rows at a time (no
    full-size copy); a sparse one as one canonical float64 CSR copy (its non-zeros only)."""
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        csr.sum_duplicates()  # canonical: sorted indices, no duplicates
        csr.eliminate_zeros()
        arrays = (csr.indptr.astype(np.int64), csr.indices.astype(np.int64), csr.data)
        yield from (array.tobytes() for array in arrays)
        return
    for start in range(0, matrix.shape[0], rows_per_block):
        block = matrix[start : start + rows_per_block]
        yield np.ascontiguousarray(block, dtype=np.float64).tobytes()


def auto_foundation(
    corpus: ExpressionTable,
    *,
    max_genes: int,
    random_state: int | None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> AutoFoundation:
    """The auto foundation of ``corpus``: reused from memory or disk, else built and cached.

    Parameters
    ----------
    corpus : ExpressionTable
        Every sample given to ``fit``, labelled or not (as read by ``read_expression``).
    max_genes : int
        Cap on the vocabulary (``GTLClassifier(n_genes=...)``); :data:`AUTO_PRESET` caps it too.
    random_state : int or None
        Root seed of the build; None uses :data:`UNSEEDED_BUILD_SEED`.
    device : str or torch.device
        Where the build trains.
    progress : bool
        Progress bars while building.

    Returns
    -------
    AutoFoundation
    """
    settings = replace(AUTO_PRESET, n_genes=min(max_genes, AUTO_PRESET.n_genes, corpus.shape[1]))
    seed = UNSEEDED_BUILD_SEED if random_state is None else int(random_state)
    device = torch.device(device)
    key = auto_foundation_key(corpus.values, corpus.gene_ids, settings, seed, device.type)
    found = _reuse(key)
    if found is None:
        found = _build(corpus, settings, seed, device, progress, key)
    else:
        where = "memory" if found.source == "memory" else f"the disk cache at {found.path}"
        logger.info(
            "Reusing the auto foundation of these %d samples from %s.", corpus.shape[0], where
        )
    _remember(found)
    return found


def _reuse(key: str) -> AutoFoundation | None:
    if key in _memory:
        _memory.move_to_end(key)
        return replace(_memory[key], source="memory")
    folder = auto_cache_dir() / key
    if not folder.is_dir():
        return None
    try:
        return AutoFoundation(Foundation.load(folder), key, "disk", folder)
    except (OSError, ValueError) as error:  # damaged or from another format: build again
        logger.warning("Ignoring the cached auto foundation at %s (%s); rebuilding.", folder, error)
        return None


def _build(
    corpus: ExpressionTable,
    settings: FoundationPreset,
    seed: int,
    device: torch.device,
    progress: bool,
    key: str,
) -> AutoFoundation:
    start = time.perf_counter()
    foundation = build_foundation(
        corpus,
        preset=settings,
        corpus_description=f"the {corpus.shape[0]} samples passed to GTLClassifier.fit",
        random_state=seed,
        progress=progress,
        device=device,
    )
    path = _save(foundation, auto_cache_dir() / key)
    logger.info(
        "Built the auto foundation of these %d samples in %.0f s; cached at %s.",
        *(corpus.shape[0], time.perf_counter() - start, path),
    )
    return AutoFoundation(foundation, key, "built", path)


def _save(foundation: Foundation, folder: Path) -> Path | None:
    try:
        return foundation.save(folder, overwrite=True)
    except OSError as error:  # read-only or full cache, or a parallel writer: keep going
        logger.warning(
            "Could not cache the auto foundation at %s (%s); set %s to a writable folder.",
            *(folder, error, CACHE_ENV),
        )
        return None


def _remember(found: AutoFoundation) -> None:
    _memory[found.key] = found
    _memory.move_to_end(found.key)
    while len(_memory) > MEMORY_SLOTS:
        _memory.popitem(last=False)
