"""Shared helpers of the foundation and classifier tests: one tiny foundation per session.

Building even a tiny foundation costs seconds (UMAP's numba compile the first time in a process),
so it is built once, lazily, and reused by every test module that loads this file as a plugin
(``pytest_plugins = ["gtl_support"]``).
"""

from __future__ import annotations

import contextlib
import functools

import anndata as ad
import pytest
import torch

from gtlomics.datasets.synthetic import SyntheticDesign
from gtlomics.foundation import PRESETS, Foundation

N_GENES = 64


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


@contextlib.contextmanager
def single_torch_thread():
    """Tiny models: intra-op threads only add overhead (and thrash on a busy 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@functools.cache
def tiny_foundation() -> Foundation:
    """The session's tiny foundation (d_model 16, 1 layer, 4 scouts), built on :func:`corpus`."""
    with single_torch_thread():
        return Foundation.build(corpus(), preset=PRESETS["tiny"], random_state=0)


def fewshot(n_samples: int = 12, *, random_state: int = 2) -> ad.AnnData:
    """A few-shot study from one cluster of the same biology: treated vs control."""
    return design().sample(n_samples, clusters=[0], random_state=random_state)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: ``pytestmark = pytest.mark.usefixtures(...)``."""
    with single_torch_thread():
        yield


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
