"""Bad input to GTLClassifier.fit / predict: one clear error each, naming problem and fix."""

from __future__ import annotations

import dataclasses
import json
import shutil

import anndata as ad
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from gtlomics.classifier import GTLClassifier
from gtlomics.expression import DuplicateGeneWarning
from gtlomics.foundation import ENV_VAR, FoundationIntegrityError, FoundationVersionError

FAST = {"epochs": 1, "batch_size": 8, "random_state": 0}


@pytest.fixture()
def adata(gtl):
    return gtl.fewshot(12)


@pytest.fixture()
def clf(foundation):
    return GTLClassifier(foundation=foundation, **FAST)


def _with_value(adata, value):
    X = np.asarray(adata.X, dtype=np.float64).copy()
    X[3, 5] = value
    out = adata.copy()
    out.X = X
    return out


@pytest.mark.parametrize(("value", "message"), [(np.nan, "NaN"), (np.inf, "infinity")])
def test_nan_and_inf(clf, adata, value, message):
    with pytest.raises(ValueError, match=message):
        clf.fit(_with_value(adata, value))


def test_negative_values(clf, adata):
    with pytest.raises(
        ValueError, match=r"Negative values in data passed to GTLClassifier.*counts"
    ):
        clf.fit(_with_value(adata, -1.0))


def test_non_numeric_values(clf, adata):
    frame = adata.to_df().astype(object)
    frame.iloc[0, 0] = "high"
    with pytest.raises(ValueError, match=r"could not convert string to float"):
        clf.fit(frame, adata.obs["condition"])


def test_complex_dtype(clf, adata):
    with pytest.raises(ValueError, match=r"Complex data not supported"):
        clf.fit(np.asarray(adata.X) + 1j, adata.obs["condition"])


def test_log_data_declared_as_counts(clf, adata):
    logged = adata.copy()
    logged.X = np.log1p(np.asarray(adata.X) / np.asarray(adata.X).sum(1, keepdims=True) * 1e4)
    with pytest.raises(ValueError, match=r"input_scale='counts' but the values look already log"):
        clf.set_params(input_scale="counts").fit(logged)


def test_negative_counts_name_the_real_scale(clf, adata):
    shifted = np.asarray(adata.X, dtype=float)
    shifted[0, 0] = -1.0
    with pytest.raises(ValueError, match=r"Negative values.*input_scale='real'"):
        clf.fit(shifted, adata.obs["condition"])


def test_single_class(clf, adata):
    with pytest.raises(ValueError, match=r"Only one class .*'treated'.* at least 2 classes"):
        clf.fit(adata, ["treated"] * 12)


def test_class_with_one_sample(clf, adata):
    labels = ["a"] * 11 + ["b"]
    with pytest.raises(ValueError, match=r"Classes \['b'\] have fewer than 2 labelled samples"):
        clf.fit(adata, labels)


def test_all_labels_missing(clf, adata):
    with pytest.raises(ValueError, match=r"All 12 labels are missing"):
        clf.fit(adata, [None] * 12)


def test_continuous_labels(clf, adata):
    with pytest.raises(ValueError, match=r"Unknown label type"):
        clf.fit(adata, np.linspace(0, 1, 12))


def test_mismatched_label_length(clf, adata):
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[12, 11\]"):
        clf.fit(adata, adata.obs["condition"].to_numpy()[:11])


def test_missing_label_key(clf, adata):
    with pytest.raises(ValueError, match=r"label_key='spaceflight' is not a column of adata.obs"):
        clf.set_params(label_key="spaceflight").fit(adata)


def test_y_required_for_arrays(clf, adata):
    with pytest.raises(ValueError, match=r"requires y to be passed, but the target y is None"):
        clf.fit(np.asarray(adata.X))


def test_missing_layer_and_gene_column(clf, adata):
    with pytest.raises(ValueError, match=r"layer='raw' not found in adata.layers"):
        clf.set_params(layer="raw").fit(adata)
    with pytest.raises(ValueError, match=r"gene_column='symbol' is not a column of adata.var"):
        clf.set_params(layer=None, gene_column="symbol").fit(adata)


def test_empty_and_duplicate_gene_ids(clf, adata):
    empty = adata.copy()
    empty.var_names = ["", *adata.var_names[1:]]
    with pytest.raises(ValueError, match=r"Gene id at position 0 is empty"):
        clf.fit(empty)
    duplicated = adata.copy()
    duplicated.var_names = [adata.var_names[1], *adata.var_names[1:]]
    with pytest.warns(DuplicateGeneWarning, match=r"summed"):
        clf.fit(duplicated)


def test_zero_overlap_with_foundation_genes(clf, adata):
    renamed = adata.copy()
    renamed.var_names = [f"ENSMUSG{i:011d}" for i in range(adata.n_vars)]
    with pytest.raises(ValueError, match=r"Only 0 of 64 foundation genes .* same id type"):
        clf.fit(renamed)


def test_predict_with_zero_overlap(clf, adata):
    clf.fit(adata)
    renamed = adata.copy()
    renamed.var_names = [f"other{i}" for i in range(adata.n_vars)]
    with pytest.raises(ValueError, match=r"Only 0 of 64 vocabulary genes"):
        clf.predict(renamed)


def test_predict_before_fit(clf, adata):
    with pytest.raises(NotFittedError, match=r"not fitted yet"):
        clf.predict(adata)


def test_predict_with_wrong_number_of_features(adata):
    clf = GTLClassifier(foundation=None, d_model=8, n_heads=2, n_layers=1, **FAST)
    clf.fit(np.asarray(adata.X), adata.obs["condition"])
    with pytest.raises(ValueError, match=r"X has 63 features, but GTLClassifier is expecting 64"):
        clf.predict(np.asarray(adata.X)[:, 1:])


def test_invalid_parameters(adata):
    with pytest.raises(InvalidParameterError, match=r"'guidance' parameter .* must be a str among"):
        GTLClassifier(guidance="blog").fit(adata)
    with pytest.raises(ValueError, match=r"d_model=10 is not divisible by n_heads=4"):
        GTLClassifier(foundation=None, d_model=10, n_heads=4, **FAST).fit(adata)


def test_foundation_without_guides_needs_guidance_none(foundation, adata):
    unguided = dataclasses.replace(foundation, guides=None)
    with pytest.raises(ValueError, match=r"no guide values .* guidance='none'"):
        GTLClassifier(foundation=unguided, **FAST).fit(adata)
    GTLClassifier(foundation=unguided, guidance="none", **FAST).fit(adata)


def test_foundation_from_an_incompatible_version(foundation_dir, adata, tmp_path):
    copy = shutil.copytree(foundation_dir, tmp_path / "future")
    record = json.loads((copy / "checksums.json").read_text())
    record["format_version"], record["library_version"] = 99, "9.0.0"
    (copy / "checksums.json").write_text(json.dumps(record))
    with pytest.raises(FoundationVersionError, match=r"written by gtlomics 9.0.0 .* Upgrade"):
        GTLClassifier(foundation=str(copy), **FAST).fit(adata)


def test_tampered_foundation_weights(foundation_dir, adata, tmp_path):
    copy = shutil.copytree(foundation_dir, tmp_path / "tampered")
    weights = copy / "encoder.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(FoundationIntegrityError, match=r"Checksum mismatch .*encoder.safetensors"):
        GTLClassifier(foundation=str(copy), **FAST).fit(adata)


def test_default_foundation_variable_naming_no_directory(adata, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=rf"{ENV_VAR}=.*names no directory"):
        GTLClassifier(**FAST).fit(adata)


def test_cuda_requested_without_cuda(clf, adata):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match=r"CUDA is not available; use device='cpu'"):
        clf.set_params(device="cuda").fit(adata)


def test_sample_without_counts(clf, adata):
    empty = adata.copy()
    X = np.asarray(empty.X).copy()
    X[0] = 0
    empty.X = X
    with pytest.raises(ValueError, match=r"samples have no counts"):
        clf.fit(empty)


def test_anndata_without_samples(clf, adata):
    with pytest.raises(ValueError, match=r"0 sample"):
        clf.fit(ad.AnnData(np.zeros((0, 64), dtype=np.float32)), [])
