"""Bad input to GTLClassifier.predict (and sparse fit input), beyond ``test_classifier_errors.py``.

``test_classifier_errors.py`` covers ``fit`` thoroughly; a fitted model meets new data at
``predict``, which must refuse what ``fit`` refuses, with the same messages.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from gtlomics.classifier import GTLClassifier

FAST = {"epochs": 1, "batch_size": 8, "random_state": 0}


@pytest.fixture(scope="module")
def adata(gtl):
    return gtl.fewshot(12)


@pytest.fixture(scope="module")
def fitted(adata, foundation):
    return GTLClassifier(foundation=foundation, **FAST).fit(adata)


def _with_value(adata, value, *, sparse: bool = False):
    X = np.asarray(adata.X, dtype=np.float64).copy()
    X[3, 5] = value
    out = adata.copy()
    out.X = sp.csr_matrix(X) if sparse else X
    return out


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize(("value", "message"), [(np.nan, "NaN"), (np.inf, "infinity")])
def test_predict_refuses_nan_and_inf(fitted, adata, value, message, sparse):
    with pytest.raises(ValueError, match=message):
        fitted.predict(_with_value(adata, value, sparse=sparse))


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_predict_and_fit_refuse_negative_values(fitted, adata, foundation, sparse):
    negative = _with_value(adata, -2.0, sparse=sparse)
    with pytest.raises(ValueError, match="Negative values in data passed to GTLClassifier"):
        fitted.predict_proba(negative)
    with pytest.raises(ValueError, match="Negative values in data passed to GTLClassifier"):
        GTLClassifier(foundation=foundation, **FAST).fit(negative)


def test_predict_refuses_log_values_when_the_model_expects_counts(fitted, adata):
    counts = np.asarray(adata.X, dtype=np.float64)
    logged = adata.copy()
    logged.X = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    assert fitted.preprocessing_.input_scale == "counts"
    with pytest.raises(ValueError, match="input_scale='counts' but the values look already log"):
        fitted.predict(logged)


def test_predict_refuses_non_numeric_and_empty_input(fitted, adata):
    frame = adata.to_df().astype(object)
    frame.iloc[0, 0] = "high"
    clf = GTLClassifier(foundation=fitted.foundation_, **FAST).fit(
        adata.to_df(), adata.obs["condition"]
    )
    with pytest.raises(ValueError, match="could not convert string to float"):
        clf.predict(frame)
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        fitted.predict(adata[:0].copy())


def test_predict_refuses_a_sample_without_counts(fitted, adata):
    empty = adata.copy()
    X = np.asarray(empty.X, dtype=np.float64).copy()
    X[2] = 0
    empty.X = X
    with pytest.raises(ValueError, match=r"1 samples have no counts .*'.*'.*drop them"):
        fitted.predict(empty)


def test_predict_refuses_renamed_dataframe_columns(adata, foundation):
    clf = GTLClassifier(foundation=foundation, **FAST).fit(adata.to_df(), adata.obs["condition"])
    renamed = adata.to_df().rename(columns=lambda name: f"{name}_v2")
    with pytest.raises(ValueError, match="feature names should match those that were passed"):
        clf.predict(renamed)


def test_predict_reads_the_same_layer_as_fit(adata, foundation):
    with_layer = adata.copy()
    with_layer.layers["raw"] = with_layer.X.copy()
    clf = GTLClassifier(foundation=foundation, layer="raw", **FAST).fit(with_layer)
    with pytest.raises(ValueError, match=r"layer='raw' not found in adata.layers"):
        clf.predict(adata)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_foundation_path_that_is_not_a_saved_foundation(adata, tmp_path, kind):
    path = tmp_path / "foundation"
    if kind == "file":
        path.write_text("not a folder")
    with pytest.raises(FileNotFoundError, match=f"No saved gtlomics directory at {path}"):
        GTLClassifier(foundation=str(path), **FAST).fit(adata)


def test_score_with_mismatched_label_length(fitted, adata):
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[5, 12\]"):
        fitted.score(adata, adata.obs["condition"].to_numpy()[:5])
