"""``foundation="auto"``: one build per distinct set of samples, reused from memory and disk."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from gtlomics import GTLClassifier
from gtlomics.expression import read_expression
from gtlomics.foundation import ENV_VAR, auto

FAST = {"n_genes": 32, "epochs": 1, "batch_size": 8}


@pytest.fixture()
def builds(monkeypatch, gtl):
    """Auto builds use the micro preset; returns the list of seeds each real build ran with."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(auto, "AUTO_PRESET", gtl.MICRO_PRESET)
    seeds: list[int] = []
    real_build = auto.build_foundation

    def counting_build(corpus, **kwargs):
        seeds.append(kwargs["random_state"])
        return real_build(corpus, **kwargs)

    monkeypatch.setattr(auto, "build_foundation", counting_build)
    return seeds


@pytest.fixture()
def fake_builds(monkeypatch, gtl):
    """Auto builds return the session's tiny foundation at once; returns their seeds."""
    seeds: list[int] = []

    def fake_build(corpus, **kwargs):
        seeds.append(kwargs["random_state"])
        return gtl.tiny_foundation()

    monkeypatch.setattr(auto, "build_foundation", fake_build)
    return seeds


def _corpus(gtl, n_samples: int = 12, random_state: int = 3):
    return read_expression(gtl.fewshot(n_samples, random_state=random_state))


def test_grid_search_builds_one_foundation_per_fold_not_per_candidate(builds, gtl):
    data = gtl.fewshot(24, random_state=4)
    search = GridSearchCV(
        GTLClassifier(**FAST, random_state=0),
        {"lr": [1e-3, 3e-3, 1e-2]},
        cv=StratifiedKFold(3),
        refit=False,
    )
    search.fit(data, data.obs["condition"].to_numpy())
    assert len(builds) == 3  # 3 folds × 3 candidates would be 9 without the cache
    assert len(list(auto.auto_cache_dir().iterdir())) == 3


def test_a_new_session_loads_the_disk_cache_and_predicts_the_same(builds, gtl, caplog):
    data = gtl.fewshot(16, random_state=5)
    first = GTLClassifier(**FAST, random_state=0).fit(data)
    auto.clear_memory_cache()  # what a new process starts with
    with caplog.at_level(logging.INFO, logger="gtlomics"):
        second = GTLClassifier(**FAST, random_state=0).fit(data)
    assert len(builds) == 1
    assert f"from the disk cache at {auto.auto_cache_dir()}" in caplog.text
    np.testing.assert_array_equal(first.predict_proba(data), second.predict_proba(data))


def test_changed_values_genes_or_seed_miss_the_cache(fake_builds, gtl):
    corpus = _corpus(gtl)
    auto.auto_foundation(corpus, max_genes=32, random_state=0)
    auto.auto_foundation(corpus, max_genes=32, random_state=1)
    changed = corpus.values.copy()
    changed[0, 0] += 1
    edited = read_expression(changed, gene_ids=corpus.gene_ids)
    auto.auto_foundation(edited, max_genes=32, random_state=0)
    renamed = read_expression(corpus.values, gene_ids=[f"g{i}" for i in range(corpus.shape[1])])
    auto.auto_foundation(renamed, max_genes=32, random_state=0)
    auto.auto_foundation(corpus, max_genes=16, random_state=0)
    assert len(fake_builds) == 5
    as_float32 = read_expression(corpus.values.astype(np.float32), gene_ids=corpus.gene_ids)
    assert auto.auto_foundation(as_float32, max_genes=32, random_state=0).source != "built"
    assert len(fake_builds) == 5


def test_unseeded_fits_share_one_build(fake_builds, gtl):
    corpus = _corpus(gtl)
    first = auto.auto_foundation(corpus, max_genes=32, random_state=None)
    second = auto.auto_foundation(corpus, max_genes=32, random_state=None)
    assert fake_builds == [auto.UNSEEDED_BUILD_SEED]
    assert (first.source, second.source) == ("built", "memory")
    assert second.foundation is first.foundation


def test_memory_keeps_only_the_most_recent_foundations(fake_builds, gtl, tmp_path, monkeypatch):
    monkeypatch.setenv(auto.CACHE_ENV, str(tmp_path / "unwritable"))
    (tmp_path / "unwritable").write_text("a file where the cache folder should be")
    corpus = _corpus(gtl)
    for seed in range(auto.MEMORY_SLOTS + 1):
        assert auto.auto_foundation(corpus, max_genes=32, random_state=seed).path is None
    newest = auto.auto_foundation(corpus, max_genes=32, random_state=auto.MEMORY_SLOTS)
    assert newest.source == "memory"
    assert auto.auto_foundation(corpus, max_genes=32, random_state=0).source == "built"
    assert len(fake_builds) == auto.MEMORY_SLOTS + 2


def test_a_damaged_disk_entry_is_rebuilt_with_a_warning(fake_builds, gtl, caplog):
    corpus = _corpus(gtl)
    built = auto.auto_foundation(corpus, max_genes=32, random_state=0)
    (built.path / "genes.txt").write_text("edited\n")
    auto.clear_memory_cache()
    with caplog.at_level(logging.WARNING, logger="gtlomics"):
        again = auto.auto_foundation(corpus, max_genes=32, random_state=0)
    assert again.source == "built" and len(fake_builds) == 2
    assert f"Ignoring the cached auto foundation at {built.path}" in caplog.text
    auto.clear_memory_cache()
    assert auto.auto_foundation(corpus, max_genes=32, random_state=0).source == "disk"


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(auto.CACHE_ENV, str(tmp_path / "gtl"))
    assert auto.auto_cache_dir() == tmp_path / "gtl" / "foundations" / "auto"
    monkeypatch.delenv(auto.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert auto.auto_cache_dir() == tmp_path / "xdg" / "gtlomics" / "foundations" / "auto"


def test_key_depends_on_values_not_on_their_storage():
    values = np.random.default_rng(0).poisson(3, size=(300, 20)).astype(np.float32)
    ids = [f"g{i}" for i in range(20)]

    def key(matrix, seed=0, device="cpu"):
        return auto.auto_foundation_key(matrix, ids, auto.AUTO_PRESET, seed, device)

    assert key(values) == key(values.astype(np.float64)) == key(np.asfortranarray(values))
    assert key(sp.csr_matrix(values)) == key(sp.csc_matrix(values)) == key(sp.coo_matrix(values))
    assert len({key(values), key(values, seed=1), key(values, device="cuda")}) == 3
