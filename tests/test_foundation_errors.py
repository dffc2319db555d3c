"""Bad input to build_foundation / Foundation.load: one clear error each, nothing half-written."""

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
    build_foundation,
)


@pytest.fixture()
def frame(gtl) -> pd.DataFrame:
    """20 corpus samples as a DataFrame (a copy: never write into the shared corpus)."""
    return gtl.corpus()[:20].to_df().copy()


def test_too_few_samples(frame):
    with pytest.raises(ValueError, match=r"corpus has 5 samples; a foundation needs at least 8"):
        build_foundation(frame.iloc[:5], preset="tiny")


@pytest.mark.parametrize(("value", "message"), [(np.nan, "NaN or infinite"), (-3.0, "negative")])
def test_bad_values_name_sample_and_gene(frame, value, message):
    frame.iloc[2, 4] = value
    with pytest.raises(
        ValueError, match=rf"{message} expression values, first at sample '{frame.index[2]}', gene "
    ):
        build_foundation(frame, preset="tiny")


def test_non_numeric_columns(frame):
    frame["tissue"] = "muscle"
    with pytest.raises(TypeError, match=r"not numeric .*'tissue'"):
        build_foundation(frame, preset="tiny")


def test_unknown_preset(frame):
    with pytest.raises(ValueError, match=r"Unknown foundation preset 'huge'; choose from"):
        build_foundation(frame, preset="huge")


def test_load_edited_config_and_missing_file(foundation_dir, tmp_path):
    edited = shutil.copytree(foundation_dir, tmp_path / "edited")
    config = json.loads((edited / "config.json").read_text())
    config["encoder"]["d_model"] = 32
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(FoundationIntegrityError, match=r"Checksum mismatch .*config.json"):
        Foundation.load(edited)
    incomplete = shutil.copytree(foundation_dir, tmp_path / "incomplete")
    (incomplete / "guides.safetensors").unlink()
    with pytest.raises(FoundationIntegrityError, match=r"missing guides.safetensors"):
        Foundation.load(incomplete)


def test_load_older_format(foundation_dir, tmp_path):
    old = shutil.copytree(foundation_dir, tmp_path / "old")
    record = json.loads((old / "checksums.json").read_text())
    record["format_version"] = 0
    (old / "checksums.json").write_text(json.dumps(record))
    with pytest.raises(FoundationVersionError, match=r"older gtlomics.foundation format .*Rebuild"):
        Foundation.load(old)


def test_load_a_classifier_directory_as_foundation(gtl, foundation, tmp_path):
    from gtlomics.classifier import GTLClassifier

    clf = GTLClassifier(foundation=foundation, epochs=1, random_state=0).fit(gtl.fewshot(12))
    clf.save(tmp_path / "clf")
    with pytest.raises(FoundationVersionError, match=r"holds a 'gtlomics.classifier' save"):
        Foundation.load(tmp_path / "clf")


def test_save_refuses_to_overwrite(foundation, foundation_dir):
    with pytest.raises(FileExistsError, match=r"already exists; pass overwrite=True"):
        foundation.save(foundation_dir)
