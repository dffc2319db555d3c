"""Download cache: atomic placement, checksums, retries, timeouts, local mirrors."""

from __future__ import annotations

import hashlib
import time

import pytest

from gtlomics.datasets.download import (
    DownloadConfig,
    fetch,
    read_url_bytes,
    resolve_cache_dir,
    to_local_path,
)
from gtlomics.datasets.errors import ChecksumMismatchError, DownloadError

FAST = DownloadConfig(timeout_s=2.0, retries=2, backoff_s=0.0)
QC = "sra.recount_qc.SRP014565.MD.gz"
QC_PATH = f"recount3/human/data_sources/sra/metadata/65/SRP014565/{QC}"


@pytest.fixture()
def qc_url(mirror_server) -> str:
    return f"{mirror_server.base_url}/{QC_PATH}"


@pytest.fixture()
def qc_sha256(shared_data) -> str:
    path = shared_data / "recount3_mirror" / QC_PATH
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_cache_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("GTLOMICS_CACHE", str(tmp_path / "env"))
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("GTLOMICS_CACHE")
    assert resolve_cache_dir().parts[-2:] == (".cache", "gtlomics")


def test_env_cache_is_used_and_download_verified(monkeypatch, tmp_path, qc_url, qc_sha256):
    monkeypatch.setenv("GTLOMICS_CACHE", str(tmp_path))
    fetched = fetch(qc_url, relpath=f"x/{QC}", sha256=f"sha256:{qc_sha256.upper()}", config=FAST)
    assert fetched.path == tmp_path / "x" / QC
    assert fetched.verified and fetched.sha256 == qc_sha256
    assert _files(tmp_path) == [f"x/{QC}"]  # no temporary file left


def test_damaged_cache_entry_is_replaced(mirror_server, tmp_path, qc_url, qc_sha256):
    target = tmp_path / "x" / QC
    target.parent.mkdir()
    target.write_bytes(b"half a file")
    fetched = fetch(qc_url, cache_dir=tmp_path, relpath=f"x/{QC}", sha256=qc_sha256, config=FAST)
    assert sha256_of(fetched.path) == qc_sha256
    assert sum(QC in r for r in mirror_server.requests) == 1


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_truncated_body_retried_up_to_limit(mirror_server, tmp_path, qc_url):
    mirror_server.faults.truncate.add(QC)
    with pytest.raises(
        DownloadError, match=r"after 3 attempt\(s\): truncated body \(.*IncompleteRead"
    ):
        fetch(qc_url, cache_dir=tmp_path, config=FAST)
    assert sum(QC in r for r in mirror_server.requests) == 3
    assert _files(tmp_path) == []


def test_truncation_that_heals_on_retry_succeeds(mirror_server, tmp_path, qc_url, qc_sha256):
    mirror_server.faults.truncate_once.add(QC)
    fetched = fetch(qc_url, cache_dir=tmp_path, sha256=qc_sha256, config=FAST)
    assert fetched.verified
    assert sum(QC in r for r in mirror_server.requests) == 2


def test_404_is_not_retried_and_names_url(mirror_server, tmp_path):
    url = f"{mirror_server.base_url}/recount3/nope.gz"
    with pytest.raises(DownloadError, match=rf"{url} answered HTTP 404"):
        fetch(url, cache_dir=tmp_path, config=FAST)
    assert len(mirror_server.requests) == 1


def test_checksum_mismatch_deletes_and_reports_both(tmp_path, qc_url, qc_sha256):
    wrong = "a" * 64
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(qc_url, cache_dir=tmp_path, sha256=wrong, config=FAST)
    message = str(info.value)
    assert QC in message and wrong in message and qc_sha256 in message
    assert _files(tmp_path) == []


def test_hang_times_out_fast(mirror_server, tmp_path, qc_url):
    mirror_server.faults.hang.add(QC)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="giving up"):
        fetch(
            qc_url,
            cache_dir=tmp_path,
            config=DownloadConfig(timeout_s=0.2, retries=1, backoff_s=0.0),
        )
    assert time.monotonic() - start < 2.0
    assert _files(tmp_path) == []


def test_local_files_are_read_in_place(shared_data, qc_sha256):
    path = shared_data / "recount3_mirror" / QC_PATH
    for url in (str(path), path.as_uri()):
        fetched = fetch(url, sha256=qc_sha256)
        assert fetched.path == path and fetched.verified
    with pytest.raises(ChecksumMismatchError, match="mirror file"):
        fetch(path.as_uri(), sha256="b" * 64)
    assert path.is_file()  # never deletes the user's mirror
    with pytest.raises(DownloadError, match="does not exist"):
        read_url_bytes(str(path) + ".missing")


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="64-hex-digit"):
        fetch("/nowhere", sha256="abc")
    with pytest.raises(DownloadError, match="unsupported URL scheme 'ftp'"):
        to_local_path("ftp://example.org/x")
    with pytest.raises(ValueError, match="invalid DownloadConfig"):
        DownloadConfig(timeout_s=0)
