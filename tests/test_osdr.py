"""OSDR loader end to end against a loopback server and directory / file:// mirrors."""

from __future__ import annotations

import hashlib
import lzma
import time

import numpy as np
import pytest

from gtlomics.datasets.download import DownloadConfig
from gtlomics.datasets.errors import (
    ChecksumMismatchError,
    DataFormatError,
    DownloadError,
    LabelMismatchError,
    NoCountsTableError,
)
from gtlomics.datasets.osdr import list_osdr_files, load_osdr, pick_counts_file

COUNTS = "GLDS-664_rna-seq_RSEM_Unnormalized_Counts.csv"
FAST = DownloadConfig(timeout_s=2.0, retries=1, backoff_s=0.0)


@pytest.fixture(scope="module")
def counts_sha256(shared_data) -> str:
    raw = (shared_data / "osdr" / "OSD-758" / f"{COUNTS}.xz").read_bytes()
    return hashlib.sha256(lzma.decompress(raw)).hexdigest()


def _checksum_table(tmp_path, digest: str):
    path = tmp_path / "sizes.tsv"
    path.write_text(f"{COUNTS}\t7147954\tsha256:{digest}\n")
    return path


def _assert_osd758(adata) -> None:
    assert adata.shape[0] == 35
    assert adata.obs["spaceflight"].value_counts().to_dict() == {
        "Space Flight": 23,
        "Ground Control": 12,
    }
    assert (adata.obs["arm"] == adata.obs["name_arm"]).all()
    assert adata.obs["altered_gravity"].nunique() == 5
    assert not any("." in g for g in adata.var_names)
    assert not any(g.startswith("ERCC-") for g in adata.var_names)
    assert adata.obsm["ercc"].shape == (35, 92)
    np.testing.assert_array_equal(adata.X, adata.layers["counts"])


def test_osd758_over_http_matches_acceptance(mirror_server, tmp_path, counts_sha256):
    adata = load_osdr(
        "OSD-758",
        base_url=mirror_server.base_url,
        cache_dir=tmp_path,
        checksums=_checksum_table(tmp_path, counts_sha256),
        download=FAST,
    )
    _assert_osd758(adata)
    sources = adata.uns["osdr"]["source_files"]
    assert sources[COUNTS] == {
        "url": sources[COUNTS]["url"],
        "sha256": counts_sha256,
        "verified": True,
    }
    assert "OSD-758_metadata_OSD-758-ISA.zip" in sources
    assert any(r.startswith("/files/") for r in mirror_server.requests)  # redirect followed


def test_second_load_uses_cache(mirror_server, tmp_path):
    load_osdr("OSD-758", base_url=mirror_server.base_url, cache_dir=tmp_path, download=FAST)
    n_downloads = sum(r.startswith("/files/") for r in mirror_server.requests)
    load_osdr("OSD-758", base_url=mirror_server.base_url, cache_dir=tmp_path, download=FAST)
    assert sum(r.startswith("/files/") for r in mirror_server.requests) == n_downloads


def test_directory_and_file_url_mirrors_agree(shared_data, counts_sha256):
    checksums = {COUNTS: f"sha256:{counts_sha256}"}
    from_dir = load_osdr("OSD-758", base_url=str(shared_data / "osdr"), checksums=checksums)
    from_url = load_osdr("758", base_url=(shared_data / "osdr").as_uri(), round_counts=True)
    _assert_osd758(from_dir)
    assert from_dir.uns["osdr"]["source_files"][f"{COUNTS}.xz"]["verified"]
    np.testing.assert_array_equal(from_url.X, np.rint(from_url.X))
    assert np.abs(from_url.X - from_dir.X).max() <= 0.5


def test_checksum_mismatch_deletes_download_and_names_both_hashes(mirror_server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatchError, match=rf"{COUNTS}.*expected sha256 {wrong}, got"):
        load_osdr(
            "OSD-758",
            base_url=mirror_server.base_url,
            cache_dir=tmp_path,
            checksums=_checksum_table(tmp_path, wrong),
            download=FAST,
        )
    assert not list((tmp_path / "osdr").rglob("*.csv*"))


def test_corrupted_bytes_are_caught_by_checksum(mirror_server, tmp_path, counts_sha256):
    mirror_server.faults.corrupt.add(COUNTS)
    with pytest.raises(ChecksumMismatchError, match=counts_sha256):
        load_osdr(
            "OSD-758",
            base_url=mirror_server.base_url,
            cache_dir=tmp_path,
            checksums=_checksum_table(tmp_path, counts_sha256),
            download=FAST,
        )


def test_truncated_download_is_retried_then_fails_leaving_nothing(mirror_server, tmp_path):
    mirror_server.faults.truncate.add(COUNTS)
    with pytest.raises(DownloadError, match=r"2 attempt\(s\).*truncated body"):
        load_osdr("OSD-758", base_url=mirror_server.base_url, cache_dir=tmp_path, download=FAST)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sum(COUNTS in r and r.startswith("/files/") for r in mirror_server.requests) == 2


def test_404_names_the_url(mirror_server, tmp_path):
    mirror_server.faults.missing.add("/files/OSD-758/")
    with pytest.raises(DownloadError, match=r"http://127\.0\.0\.1:\d+/geode-py.*HTTP 404"):
        load_osdr("OSD-758", base_url=mirror_server.base_url, cache_dir=tmp_path, download=FAST)


def test_study_without_counts_table(mirror_server, tmp_path):
    with pytest.raises(NoCountsTableError, match="no unnormalised counts table"):
        load_osdr("OSD-104", base_url=mirror_server.base_url, cache_dir=tmp_path, download=FAST)


def test_unknown_study_is_a_clear_error(mirror_server, tmp_path):
    with pytest.raises(DataFormatError, match="OSD-999"):
        load_osdr("OSD-999", base_url=mirror_server.base_url, cache_dir=tmp_path, download=FAST)


def test_hanging_endpoint_times_out_quickly(mirror_server, tmp_path):
    mirror_server.faults.hang.add("/osdr/data/osd/files/")
    config = DownloadConfig(timeout_s=0.3, retries=1, backoff_s=0.0)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="giving up"):
        load_osdr("OSD-758", base_url=mirror_server.base_url, cache_dir=tmp_path, download=config)
    assert time.monotonic() - start < 3.0


def test_label_mismatch_raises_or_warns(shared_data, tmp_path):
    study = tmp_path / "OSD-758"
    study.mkdir()
    (study / f"{COUNTS}.xz").symlink_to(shared_data / "osdr" / "OSD-758" / f"{COUNTS}.xz")
    table = lzma.decompress((shared_data / "osdr" / "OSD-758" / "s_OSD-758.txt.xz").read_bytes())
    swapped = table.replace(b"\tGround Control\t", b"\tSpace Flight\t", 1)
    (study / "s_OSD-758.txt").write_bytes(swapped)
    with pytest.raises(LabelMismatchError, match=r"MHU-8_RTN_HGC_HGC\d+"):
        load_osdr("OSD-758", base_url=str(tmp_path))
    with pytest.warns(UserWarning, match="disagrees"):
        adata = load_osdr("OSD-758", base_url=str(tmp_path), on_label_mismatch="warn")
    assert (adata.obs["arm"] != adata.obs["name_arm"]).sum() == 1


def test_pick_counts_file_prefers_newest_pipeline():
    names = [
        "GLDS-1_rna_seq_Unnormalized_Counts.csv",
        "GLDS-1_rna_seq_STAR_Unnormalized_Counts_GLbulkRNAseq.csv",
        "GLDS-1_rna_seq_RSEM_Unnormalized_Counts_rRNArm_GLbulkRNAseq.csv",
        "GLDS-1_rna_seq_Normalized_Counts_GLbulkRNAseq.csv",
    ]
    assert pick_counts_file(names) == names[2]
    names.append("GLDS-1_rna_seq_RSEM_Unnormalized_Counts_GLbulkRNAseq.csv")
    assert pick_counts_file(names) == names[-1]
    assert pick_counts_file(names[:1] + names[3:4]) == names[0]
    with pytest.raises(NoCountsTableError):
        pick_counts_file(names[3:4])


def test_listing_uses_real_json_shape(mirror_server):
    files = list_osdr_files("OSD-758", base_url=mirror_server.base_url, download=FAST)
    assert COUNTS in {f.name for f in files}
    assert all("/geode-py/ws/studies/OSD-758/download?" in f.url for f in files)
