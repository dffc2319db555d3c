"""The fitted-model record: one object behind the fitted attributes, pickling and save / load."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from gtlomics.classifier import GTLClassifier, GTLRegressor
from gtlomics.classifier.fitted import ClassLabels, FittedModel, TargetScaling

DATA = Path(__file__).parent / "data"
FAST = {"epochs": 2, "batch_size": 8, "random_state": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def adata(gtl):
    return gtl.fewshot(12)


def test_classifier_saved_by_an_earlier_version_loads_and_predicts_the_same(gtl):
    """``classifier_format1`` was written by the estimator before the record existed."""
    loaded = GTLClassifier.load(DATA / "classifier_format1")
    expected = json.loads((DATA / "classifier_format1_proba.json").read_text())["proba"]
    study = gtl.fewshot(8, random_state=5)
    np.testing.assert_allclose(loaded.predict_proba(study), expected, rtol=1e-6, atol=1e-9)
    assert loaded.classes_.tolist() == ["control", "treated"]
    assert loaded.feature_names_in_.tolist() == study.var_names.tolist()
    assert loaded.preprocessing_.input_scale == "counts"
    assert loaded.foundation_ is loaded.get_params()["foundation"] is not None


def test_save_writes_the_format_earlier_versions_wrote(adata, foundation, tmp_path):
    GTLClassifier(foundation=foundation, **FAST).fit(adata).save(tmp_path / "clf")
    new = json.loads((tmp_path / "clf" / "estimator.json").read_text())
    old = json.loads((DATA / "classifier_format1" / "estimator.json").read_text())
    assert list(new) == list(old)
    assert list(new["params"]) == list(old["params"])
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == sorted(
        p.name for p in (DATA / "classifier_format1").iterdir()
    )


def test_fitted_attributes_read_the_one_record(adata, foundation):
    clf = GTLClassifier(foundation=foundation, **FAST).fit(adata)
    record = clf.fitted_
    assert isinstance(record, FittedModel) and isinstance(record.task, ClassLabels)
    assert clf.model_ is record.model and clf.vocab_ is record.vocab
    assert clf.classes_ is record.task.classes and clf.history_ is record.history
    assert clf.foundation_ is foundation and clf.device_ == record.device
    assert clf.preprocessing_.input_scale == "counts"
    assert clf.get_params()["input_scale"] == "auto"  # the resolved scale is fitted state only
    reg = GTLRegressor(foundation=None, d_model=8, n_heads=2, n_layers=1, **FAST)
    reg.fit(adata, np.arange(12.0))
    assert isinstance(reg.fitted_.task, TargetScaling)
    assert (reg.target_mean_, reg.target_scale_) == (5.5, float(np.arange(12.0).std()))


def test_unfitted_estimator_has_no_fitted_attributes():
    clf = GTLClassifier()
    for name in ("model_", "vocab_", "preprocessing_", "history_", "foundation_", "classes_"):
        assert not hasattr(clf, name), name


def test_pickle_keeps_the_record_and_predictions(adata, foundation):
    clf = GTLClassifier(foundation=foundation, n_ensemble=2, **FAST).fit(adata)
    restored = pickle.loads(pickle.dumps(clf))
    assert isinstance(restored.fitted_, FittedModel)
    np.testing.assert_array_equal(restored.predict_proba(adata), clf.predict_proba(adata))


def test_target_scaling_of_a_constant_target_does_not_divide():
    task, standardized = TargetScaling.fit(np.full(4, 3.0))
    assert task.scale == 1.0 and np.array_equal(standardized, np.zeros(4))
    assert TargetScaling.from_dict(task.to_dict()) == task
    labels = ClassLabels.fit(np.array([2, 1, 2, 1]))[0]
    assert ClassLabels.from_dict(labels.to_dict()).classes.dtype == labels.classes.dtype
