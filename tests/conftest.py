"""Shared fixtures: synthetic data, the path to ../shared/data (skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gtlomics.datasets.synthetic import SyntheticDesign

REPO_ROOT = Path(__file__).resolve().parents[1]

# fixtures shared across test modules: tiny foundations/classifiers, and the loopback mirror server
pytest_plugins = ["gtl_support", "mirror_server"]


def suite_threads() -> int:
    """Torch intra-op threads of every test: $GTLOMICS_TEST_THREADS, else 1.

    The test models are tiny: extra intra-op threads only add overhead (and thrash on a busy
    2-core machine). Results are bit-identical only at a fixed thread count, so processes a test
    spawns run with the count of the process that spawns them (``torch.get_num_threads()``).
    """
    return int(os.environ.get("GTLOMICS_TEST_THREADS", "1"))


@pytest.fixture(autouse=True, scope="session")
def _session_torch_threads():
    """Run the session on :func:`suite_threads` torch threads; restore the count at the end."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(suite_threads())
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _private_caches(monkeypatch, tmp_path_factory):
    """Give every test its own cache folders (never the user's: no default foundation from
    ``~/.cache`` or ``$GTLOMICS_FOUNDATION``) and no auto foundation in memory."""
    from gtlomics.foundation import auto
    from gtlomics.foundation.default import ENV_VAR

    monkeypatch.setenv(auto.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
    monkeypatch.delenv(ENV_VAR, raising=False)
    auto.clear_memory_cache()


@pytest.fixture(autouse=True)
def _torch_threads_per_test(_session_torch_threads):
    """Set the session's thread count again around every test.

    Third-party code can reset the OpenMP pool torch shares (numba's pool start does), and a
    later test, or a module fixture set up between tests, must not inherit that.
    """
    import torch

    torch.set_num_threads(suite_threads())
    yield
    torch.set_num_threads(suite_threads())


def shared_data_dir() -> Path:
    """Where the real public test data lives: $GTLOMICS_SHARED_DATA or ../shared/data."""
    return Path(os.environ.get("GTLOMICS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path}; set GTLOMICS_SHARED_DATA to use it")
    return path


@pytest.fixture(scope="session")
def synthetic_design() -> SyntheticDesign:
    """A small synthetic biology shared by the tests (6 clusters, 200 genes)."""
    return SyntheticDesign.random(n_genes=200, n_clusters=6, n_modules=12, random_state=0)


@pytest.fixture(scope="session")
def synthetic_corpus(synthetic_design):
    """300 unlabelled-style samples from the shared synthetic design (counts in .X)."""
    return synthetic_design.sample(300, random_state=1)


@pytest.fixture()
def synthetic_fewshot(synthetic_design):
    """12 samples, 6 treated vs 6 control, from one cluster: the few-shot shape."""
    return synthetic_design.sample(12, clusters=[0], random_state=2)
