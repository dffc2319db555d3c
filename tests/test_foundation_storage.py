"""Checked directories: atomic saves, checksums and format versions (no model needed)."""

from __future__ import annotations

import json

import pytest
import torch

from gtlomics.foundation.storage import (
    FoundationIntegrityError,
    FoundationVersionError,
    load_tensors,
    read_checked_dir,
    save_tensors,
    write_checked_dir,
)

FORMAT = "test.format"


def _writer(folder):
    save_tensors(folder / "weights.safetensors", {"w": torch.arange(6.0).reshape(2, 3)})
    (folder / "notes.txt").write_text("hello\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.txt").write_text("deep\n")


def _save(path, **kwargs):
    return write_checked_dir(path, _writer, format_name=FORMAT, format_version=2, **kwargs)


def _read(path, supported=2):
    return read_checked_dir(path, format_name=FORMAT, supported_version=supported)


def test_round_trip_lists_every_file_with_its_sha256(tmp_path):
    path = _save(tmp_path / "saved")
    record = _read(path)
    assert set(record["files"]) == {"weights.safetensors", "notes.txt", "sub/deep.txt"}
    assert record["format_version"] == 2 and record["library_version"]
    assert torch.equal(
        load_tensors(path / "weights.safetensors")["w"], torch.arange(6.0).reshape(2, 3)
    )


def test_failed_save_leaves_nothing_behind(tmp_path):
    def broken(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match=r"disk full"):
        write_checked_dir(tmp_path / "saved", broken, format_name=FORMAT, format_version=1)
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_needs_overwrite(tmp_path):
    path = _save(tmp_path / "saved")
    with pytest.raises(FileExistsError, match=r"overwrite=True"):
        _save(path)
    _save(path, overwrite=True)
    _read(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_edited_file_is_detected(tmp_path):
    path = _save(tmp_path / "saved")
    (path / "notes.txt").write_text("hellO\n")
    with pytest.raises(FoundationIntegrityError, match=r"Checksum mismatch for .*notes.txt"):
        _read(path)


def test_truncated_weights_are_detected(tmp_path):
    path = _save(tmp_path / "saved")
    data = (path / "weights.safetensors").read_bytes()
    (path / "weights.safetensors").write_bytes(data[:-7])
    with pytest.raises(FoundationIntegrityError, match=r"truncated or edited"):
        _read(path)


def test_missing_file_and_missing_checksums(tmp_path):
    path = _save(tmp_path / "saved")
    (path / "sub" / "deep.txt").unlink()
    with pytest.raises(FoundationIntegrityError, match=r"incomplete: missing sub/deep.txt"):
        _read(path)
    (path / "checksums.json").unlink()
    with pytest.raises(FoundationIntegrityError, match=r"has no checksums.json"):
        _read(path)


def test_not_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No saved gtlomics directory"):
        _read(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("supported", "message"),
    [(1, "Upgrade gtlomics"), (3, "older .* format version 2.*Rebuild it")],
)
def test_incompatible_format_version(tmp_path, supported, message):
    path = _save(tmp_path / "saved")
    with pytest.raises(FoundationVersionError, match=message):
        _read(path, supported=supported)


def test_other_format_is_refused(tmp_path):
    path = _save(tmp_path / "saved")
    with pytest.raises(FoundationVersionError, match=r"not a 'other.format' one"):
        read_checked_dir(path, format_name="other.format", supported_version=2)


def test_malformed_checksums(tmp_path):
    path = _save(tmp_path / "saved")
    (path / "checksums.json").write_text(json.dumps({"files": "nope"}))
    with pytest.raises(FoundationIntegrityError, match=r"malformed"):
        _read(path)
