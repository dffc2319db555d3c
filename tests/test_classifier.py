"""GTLClassifier behaviour a user relies on: AnnData in, scikit-learn tools around it."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_predict,
    cross_val_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from gtlomics.classifier import GTLClassifier
from gtlomics.foundation import ENV_VAR, Foundation

FAST = {"epochs": 3, "batch_size": 8, "random_state": 0}
SCRATCH = {"foundation": None, "d_model": 8, "n_heads": 2, "n_layers": 1, **FAST}


@pytest.fixture(scope="module")
def adata(gtl):
    return gtl.fewshot(12)


@pytest.fixture(scope="module")
def fitted(adata, foundation):
    return GTLClassifier(foundation=foundation, **FAST).fit(adata)


def test_fit_on_anndata_reads_labels_and_sets_fitted_state(fitted, adata, foundation):
    assert fitted.classes_.tolist() == ["control", "treated"]
    assert fitted.feature_names_in_.tolist() == adata.var_names.tolist()
    assert fitted.n_features_in_ == adata.n_vars
    assert len(fitted.history_["train_loss"]) == 3
    assert fitted.device_ == torch.device("cpu")
    assert fitted.foundation_ is foundation


def test_prediction_methods_agree(fitted, adata):
    proba = fitted.predict_proba(adata)
    margin = fitted.decision_function(adata)
    assert proba.shape == (12, 2) and margin.shape == (12,)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (fitted.predict(adata) == fitted.classes_[proba.argmax(axis=1)]).all()
    assert ((margin > 0) == (proba[:, 1] > 0.5)).all()
    assert fitted.transform(adata).shape == (12, 16)
    labels = adata.obs["condition"].to_numpy()
    assert fitted.score(adata, labels) == np.mean(fitted.predict(adata) == labels)  # accuracy


def test_three_arms_are_one_parameter_apart(adata, foundation):
    def proba(**params):
        return (
            GTLClassifier(**{"foundation": foundation, **FAST, **params})
            .fit(adata)
            .predict_proba(adata)
        )

    gtl, pretrained = proba(), proba(guidance="none")
    scratch = proba(foundation=None)
    assert not np.array_equal(gtl, pretrained)
    assert not np.array_equal(gtl, scratch)
    np.testing.assert_array_equal(proba(guide_strength=0.0), pretrained)


def test_multiclass_string_and_integer_labels(gtl, foundation):
    data = gtl.design().sample(18, clusters=[0, 1, 2], random_state=3)
    tissues = data.obs["cluster"].astype(str).to_numpy()
    clf = GTLClassifier(foundation=foundation, label_key="cluster", **FAST).fit(data)
    assert clf.classes_.tolist() == sorted(set(tissues))
    assert clf.predict_proba(data).shape == (18, 3)
    assert clf.decision_function(data).shape == (18, 3)
    codes = pd.Series(tissues).astype("category").cat.codes.to_numpy() + 10
    assert GTLClassifier(foundation=foundation, **FAST).fit(data, codes).classes_.tolist() == [
        10,
        11,
        12,
    ]


def test_samples_with_missing_labels_are_not_fine_tuned_on(adata, foundation):
    labels = adata.obs["condition"].astype(object).to_numpy()
    labels[:2] = None
    clf = GTLClassifier(foundation=foundation, **FAST).fit(adata, labels)
    full = GTLClassifier(foundation=foundation, **FAST).fit(adata[2:], labels[2:])
    assert clf.classes_.tolist() == ["control", "treated"]
    np.testing.assert_array_equal(clf.predict_proba(adata), full.predict_proba(adata))


def test_cross_val_score_and_predict_on_anndata(adata, foundation):
    clf = GTLClassifier(foundation=foundation, **FAST)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    labels = adata.obs["condition"].to_numpy()
    scores = cross_val_score(clf, adata, labels, cv=cv)
    predicted = cross_val_predict(clf, adata, labels, cv=cv)
    assert set(predicted) <= {"control", "treated"} and len(predicted) == 12
    # Both fit the same seeded clone on each fold: each fold's score is the accuracy of the
    # predictions cross_val_predict made for that fold's held-out samples.
    folds = [test for _, test in cv.split(adata, labels)]
    accuracies = [np.mean(predicted[test] == labels[test]) for test in folds]
    np.testing.assert_array_equal(scores, accuracies)


def test_pipeline_on_arrays(adata):
    X, y = np.asarray(adata.X), adata.obs["condition"].to_numpy()
    pipe = Pipeline([("cpm", FunctionTransformer(_per_million)), ("gtl", GTLClassifier(**SCRATCH))])
    assert pipe.fit(X, y).predict(X).shape == (12,)


def _per_million(X):
    return X / X.sum(axis=1, keepdims=True) * 1e6


def test_grid_search_over_guide_strength(adata, foundation):
    search = GridSearchCV(
        GTLClassifier(foundation=foundation, **FAST),
        {"guide_strength": [0.0, 1.0]},
        cv=StratifiedKFold(2),
    )
    search.fit(adata, adata.obs["condition"])
    best = search.best_params_["guide_strength"]
    # The refitted model is the one a user gets by setting the chosen strength directly.
    direct = GTLClassifier(foundation=foundation, guide_strength=best, **FAST).fit(adata)
    assert search.best_estimator_.guide_strength == best
    np.testing.assert_array_equal(search.predict_proba(adata), direct.predict_proba(adata))


def test_clone_and_pickle_round_trip(fitted, adata):
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params() and not hasattr(fresh, "model_")
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(adata), fitted.predict_proba(adata))


def test_save_load_gives_identical_probabilities(fitted, adata, tmp_path):
    fitted.save(tmp_path / "clf")
    loaded = GTLClassifier.load(tmp_path / "clf")
    np.testing.assert_array_equal(loaded.predict_proba(adata), fitted.predict_proba(adata))
    assert loaded.get_params()["epochs"] == 3
    assert loaded.classes_.tolist() == fitted.classes_.tolist()


def test_genes_are_aligned_by_name_and_missing_genes_masked(fitted, adata):
    shuffled = adata[:, np.random.default_rng(0).permutation(adata.n_vars)]
    np.testing.assert_array_equal(fitted.predict_proba(shuffled), fitted.predict_proba(adata))
    missing = adata[:, 10:]  # 10 foundation genes absent: masked tokens
    proba = fitted.predict_proba(missing)
    assert proba.shape == (12, 2) and np.isfinite(proba).all()
    assert not np.array_equal(proba, fitted.predict_proba(adata))


def test_fit_on_data_missing_some_genes(adata, foundation):
    clf = GTLClassifier(foundation=foundation, **FAST).fit(adata[:, 5:])
    assert clf.predict(adata).shape == (12,)


def test_same_random_state_gives_identical_predictions_without_global_rng(adata, foundation):
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first = GTLClassifier(foundation=foundation, **FAST).fit(adata).predict_proba(adata)
    second = GTLClassifier(foundation=foundation, **FAST).fit(adata).predict_proba(adata)
    other = GTLClassifier(foundation=foundation, **{**FAST, "random_state": 1}).fit(adata)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other.predict_proba(adata))


def test_sparse_and_dataframe_inputs_match_dense(adata, foundation):
    dense = GTLClassifier(foundation=foundation, **FAST).fit(adata)
    sparse = adata.copy()
    sparse.X = sp.csr_matrix(sparse.X)
    np.testing.assert_array_equal(dense.predict_proba(sparse), dense.predict_proba(adata))
    frame = adata.to_df()
    clf = GTLClassifier(foundation=foundation, **FAST).fit(frame, adata.obs["condition"])
    np.testing.assert_array_equal(clf.predict_proba(frame), dense.predict_proba(adata))
    assert clf.feature_names_in_.tolist() == adata.var_names.tolist()


def test_foundation_as_saved_directory(adata, foundation, foundation_dir):
    from_dir = GTLClassifier(foundation=foundation_dir, **FAST).fit(adata)
    from_object = GTLClassifier(foundation=foundation, **FAST).fit(adata)
    np.testing.assert_array_equal(from_dir.predict_proba(adata), from_object.predict_proba(adata))


def test_auto_uses_the_configured_default_foundation(adata, foundation_dir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, foundation_dir)
    clf = GTLClassifier(**FAST).fit(adata)
    assert clf.foundation_.vocab == Foundation.load(foundation_dir).vocab


def test_auto_builds_a_small_foundation_from_the_fit_samples(gtl, monkeypatch, tmp_path, caplog):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = gtl.fewshot(16, random_state=5)
    labels = data.obs["condition"].astype(object).to_numpy()
    labels[:4] = np.nan  # unlabelled samples still feed the foundation
    with caplog.at_level(logging.INFO, logger="gtlomics"):
        clf = GTLClassifier(n_genes=32, **FAST).fit(data, labels)
    assert "using a small one built from the 16 samples given to fit (4 unlabelled)" in caplog.text
    assert "Built the auto foundation of these 16 samples" in caplog.text
    assert clf.foundation_.provenance.n_samples == 16
    assert len(clf.foundation_.vocab) == 32
    assert clf.predict(data).shape == (16,)


def test_verbose_shows_progress_and_default_is_quiet(adata, capsys):
    GTLClassifier(**SCRATCH).fit(adata)
    assert capsys.readouterr().err == ""
    GTLClassifier(**{**SCRATCH, "verbose": 1}).fit(adata)
    assert "epoch" in capsys.readouterr().err


def test_import_gtlomics_is_light_and_exposes_the_public_api():
    import subprocess
    import sys

    code = (
        "import sys, gtlomics; "
        "heavy = ('torch', 'sklearn', 'umap', 'scanpy', 'anndata'); "
        "print([m for m in heavy if m in sys.modules]); "
        "print(all(getattr(gtlomics, name) is not None for name in gtlomics.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, exposed = out.stdout.split("\n")[:2]
    assert heavy == "[]"
    assert exposed == "True"
