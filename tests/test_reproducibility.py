"""Same ``random_state`` → bit-identical results on CPU at every public entry point.

Each entry point runs twice, each time after seeding numpy's, torch's and Python's *global*
generators differently. The two results must be bit-identical (so nothing depends on global random
state) and every global generator must be exactly where the run found it (so nothing draws from
it). The global states are restored after each check.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from gtl_support import MICRO_PRESET
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from gtlomics.classifier import GTLClassifier
from gtlomics.foundation import Foundation, build_foundation

FAST = {"epochs": 2, "batch_size": 8, "random_state": 7}
SCRATCH = {"foundation": None, "d_model": 8, "n_heads": 2, "n_layers": 1, "n_genes": 32}
TINY_BUILD = MICRO_PRESET


def _global_states() -> tuple[torch.Tensor, list, tuple]:
    np_state = np.random.get_state()
    return torch.random.get_rng_state(), [np_state[1].tolist(), *np_state[2:]], random.getstate()


def _run_under_other_global_seeds(run: Callable[[], Any]) -> list[Any]:
    """Run ``run`` twice after different global seeds; check it left every global RNG alone."""
    saved = (torch.random.get_rng_state(), np.random.get_state(), random.getstate())
    results = []
    try:
        for global_seed in (1, 2):
            torch.manual_seed(global_seed)
            np.random.seed(global_seed)
            random.seed(global_seed)
            before = _global_states()
            results.append(run())
            after = _global_states()
            assert torch.equal(after[0], before[0]), "torch's global generator was used"
            assert after[1] == before[1], "numpy's global generator was used"
            assert after[2] == before[2], "Python's global generator was used"
    finally:
        torch.random.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])
    return results


def _assert_identical(first: Any, second: Any, where: str = "result") -> None:
    """Bit-identical comparison of nested arrays, tensors, mappings, sequences and dataclasses."""
    if isinstance(first, torch.Tensor):
        assert torch.equal(first, second), where
    elif isinstance(first, np.ndarray):
        np.testing.assert_array_equal(first, second, err_msg=where, strict=True)
    elif isinstance(first, dict):
        assert first.keys() == second.keys(), where
        for key in first:
            _assert_identical(first[key], second[key], f"{where}[{key!r}]")
    elif isinstance(first, (list, tuple)):
        assert len(first) == len(second), where
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            _assert_identical(a, b, f"{where}[{i}]")
    elif dataclasses.is_dataclass(first):
        _assert_identical(dataclasses.asdict(first), dataclasses.asdict(second), where)
    else:
        assert first == second, where


def _foundation_record(foundation: Foundation) -> dict[str, Any]:
    return {
        "genes": foundation.vocab.genes,
        "encoder": dict(foundation.encoder_state),
        "head_init": dict(foundation.head_init),
        "guides": foundation.guides.raw,
        "provenance": foundation.provenance,
    }


def _predictions(clf: GTLClassifier, adata) -> dict[str, np.ndarray]:
    return {
        "proba": clf.predict_proba(adata),
        "embedding": clf.transform(adata),
        "history": np.asarray(clf.history_["train_loss"]),
    }


def test_cousin_tasks(gtl):
    from gtlomics.expression import GeneVocab, prepare_expression
    from gtlomics.scouts import ClusterScoutGenerator

    data = gtl.corpus()[:80]
    values = prepare_expression(data, GeneVocab.from_list(data.var_names)).values

    def run():
        scouts = ClusterScoutGenerator(
            n_pca=10, n_components=4, n_clusters=5, n_tasks=4, n_epochs=30, random_state=3
        ).fit(values)
        return {"embedding": scouts.embedding_, "labels": scouts.labels_, "tasks": scouts.tasks_}

    first, second = _run_under_other_global_seeds(run)
    _assert_identical(first, second)


def test_foundation_build_and_the_classifier_on_it(gtl):
    corpus, adata = gtl.corpus()[:60], gtl.fewshot(12)

    def run():
        foundation = build_foundation(corpus, preset=TINY_BUILD, random_state=5)
        clf = GTLClassifier(foundation=foundation, **FAST).fit(adata)
        return _foundation_record(foundation), _predictions(clf, adata)

    first, second = _run_under_other_global_seeds(run)
    _assert_identical(first, second)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"guidance": "scouts", "guide_normalize": "per_tensor"}, id="gtl"),
        pytest.param({"guidance": "none", "optimizer": "sgd"}, id="pretrained"),
        pytest.param({**SCRATCH, "early_stopping": True}, id="scratch-early-stopping"),
    ],
)
def test_classifier_arms(gtl, foundation, params):
    adata = gtl.fewshot(12)
    params = {"foundation": foundation, **FAST, **params}

    def run():
        return _predictions(GTLClassifier(**params).fit(adata), adata)

    first, second = _run_under_other_global_seeds(run)
    _assert_identical(first, second)


def test_a_random_state_instance_seeds_like_sklearn(gtl, foundation):
    """A fresh ``RandomState(7)`` repeats; the estimator draws its seed from it (sklearn rule)."""
    adata = gtl.fewshot(12)

    def run():
        params = {**FAST, "random_state": np.random.RandomState(7)}
        return _predictions(GTLClassifier(foundation=foundation, **params).fit(adata), adata)

    first, second = _run_under_other_global_seeds(run)
    _assert_identical(first, second)


def test_cross_validation(gtl, foundation):
    adata = gtl.fewshot(16, random_state=4)
    labels = adata.obs["condition"].to_numpy()

    def run():
        cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
        clf = GTLClassifier(foundation=foundation, **FAST)
        return cross_val_predict(clf, adata, labels, cv=cv, method="predict_proba")

    first, second = _run_under_other_global_seeds(run)
    _assert_identical(first, second)


def test_a_sample_is_predicted_the_same_alone_or_in_any_batch(gtl, foundation):
    adata = gtl.fewshot(12)
    clf = GTLClassifier(foundation=foundation, **FAST).fit(adata)
    everything = clf.predict_proba(adata)
    order = np.random.default_rng(0).permutation(adata.n_obs)
    np.testing.assert_array_equal(clf.predict_proba(adata[order]), everything[order])
    np.testing.assert_array_equal(clf.predict_proba(adata[[5]]), everything[[5]])


def test_foundation_build_from_the_command_line(gtl, tmp_path):
    from gtlomics.cli import main

    corpus = tmp_path / "corpus.h5ad"
    gtl.corpus()[:24].write_h5ad(corpus)
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        args = ["-q", "foundation", "build", "--input", str(corpus), "--out", str(out)]
        assert main([*args, "--preset", "tiny", "--n-genes", "16", "--n-scouts", "2"]) == 0
        outputs.append(Foundation.load(out))
    _assert_identical(*(_foundation_record(f) for f in outputs))
