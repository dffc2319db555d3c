"""Bad input to Foundation.build / Foundation.load: one clear error each, nothing half-written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from gtlomics.foundation import (
    Foundation,
    FoundationIntegrityError,
    FoundationVersionError,
)
from gtl_support import corpus, foundation, foundation_dir, one_torch_thread  # noqa: F401


def _frame(n_samples: int = 20) -> pd.DataFrame:
    return corpus()[:n_samples].to_df().copy()  # never write into the shared corpus


def test_too_few_samples():
    with pytest.raises(ValueError, match="corpus has 5 samples; a foundation needs at least 8"):
        Foundation.build(_frame(5), preset="tiny")


@pytest.mark.parametrize(
    ("value", "message"), [(np.nan, "NaN or infinite"), (-3.0, "negative")]
)
def test_bad_values_name_sample_and_gene(value, message):
    frame = _frame()
    frame.iloc[2, 4] = value
    with pytest.raises(ValueError, match=f"{message} expression values, first at sample '{frame.index[2]}', gene "):
        Foundation.build(frame, preset="tiny")


def test_non_numeric_columns():
    frame = _frame()
    frame["tissue"] = "muscle"
    with pytest.raises(TypeError, match="not numeric .*'tissue'"):
        Foundation.build(frame, preset="tiny")


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown foundation preset 'huge'; choose from"):
        Foundation.build(_frame(), preset="huge")


def test_load_edited_config_and_missing_file(foundation_dir, tmp_path):
    edited = shutil.copytree(foundation_dir, tmp_path / "edited")
    config = json.loads((edited / "config.json").read_text())
    config["encoder"]["d_model"] = 32
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(FoundationIntegrityError, match="Checksum mismatch .*config.json"):
        Foundation.load(edited)
    incomplete = shutil.copytree(foundation_dir, tmp_path / "incomplete")
    (incomplete / "guides.safetensors").unlink()
    with pytest.raises(FoundationIntegrityError, match="missing guides.safetensors"):
        Foundation.load(incomplete)


def test_load_older_format(foundation_dir, tmp_path):
    old = shutil.copytree(foundation_dir, tmp_path / "old")
    record = json.loads((old / "checksums.json").read_text())
    record["format_version"] = 0
    (old / "checksums.json").write_text(json.dumps(record))
    with pytest.raises(FoundationVersionError, match="older gtlomics.foundation format .*Rebuild"):
        Foundation.load(old)


def test_load_a_classifier_directory_as_foundation(foundation, tmp_path):
    from gtlomics.classifier import GTLClassifier
    from gtl_support import fewshot

    clf = GTLClassifier(foundation=foundation, epochs=1, random_state=0).fit(fewshot(12))
    clf.save(tmp_path / "clf")
    with pytest.raises(FoundationVersionError, match="holds a 'gtlomics.classifier' save"):
        Foundation.load(tmp_path / "clf")


def test_save_refuses_to_overwrite(foundation, foundation_dir):
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        foundation.save(foundation_dir)
