"""Shared helpers of the foundation and classifier tests: one tiny foundation per session.

Building even a tiny foundation costs seconds (UMAP's numba compile the first time in a process),
so it is built once, lazily, and reused by every test module that loads this file as a plugin
(``tests/conftest.py`` loads it as a plugin).
"""

from __future__ import annotations

import functools

import anndata as ad
import pytest

from gtlomics.datasets.synthetic import SyntheticDesign
from gtlomics.foundation import PRESETS, Foundation, FoundationPreset, build_foundation
from gtlomics.train import PretrainConfig, ScoutConfig

N_GENES = 64

# Smaller than the "tiny" preset: for tests that build several foundations of their own.
MICRO_PRESET = FoundationPreset(
    n_genes=32,
    d_model=8,
    n_layers=1,
    n_heads=2,
    n_scouts=2,
    pretrain=PretrainConfig(epochs=1, batch_size=32),
    scouts=ScoutConfig(steps=3, batch_size=8),
    cousin_tasks=PRESETS["tiny"].cousin_tasks,
)


@functools.cache
def design() -> SyntheticDesign:
    """A small synthetic biology: 6 tissue-like clusters, 64 genes, a condition effect."""
    return SyntheticDesign.random(
        n_genes=N_GENES,
        n_clusters=6,
        n_modules=8,
        n_condition_genes=16,
        condition_effect=1.5,
        random_state=0,
    )


@functools.cache
def corpus() -> ad.AnnData:
    """200 unlabelled-style synthetic samples (counts)."""
    return design().sample(200, random_state=1)


@functools.cache
def tiny_foundation() -> Foundation:
    """The session's tiny foundation (d_model 16, 1 layer, 4 scouts), built on :func:`corpus`."""
    return build_foundation(corpus(), preset=PRESETS["tiny"], random_state=0)


def fewshot(n_samples: int = 12, *, random_state: int = 2) -> ad.AnnData:
    """A few-shot study from one cluster of the same biology: treated vs control."""
    return design().sample(n_samples, clusters=[0], random_state=random_state)


@pytest.fixture(scope="session")
def gtl():
    """This module: ``gtl.design()``, ``gtl.corpus()``, ``gtl.fewshot(n)`` in tests."""
    import gtl_support

    return gtl_support


@pytest.fixture(scope="session")
def foundation() -> Foundation:
    return tiny_foundation()


@pytest.fixture(scope="session")
def foundation_dir(tmp_path_factory, foundation) -> str:
    path = tmp_path_factory.mktemp("foundation") / "tiny"
    foundation.save(path)
    return str(path)
