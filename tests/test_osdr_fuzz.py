"""Malformed files and API answers fuzzed against the loaders: specific errors, never crashes."""

from __future__ import annotations

import gzip
import json
import lzma

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtlomics.datasets.download import DownloadConfig
from gtlomics.datasets.errors import DataFormatError, DownloadError
from gtlomics.datasets.isa import read_study_table
from gtlomics.datasets.osdr import load_osdr, parse_files_json
from gtlomics.datasets.recount3 import load_recount3
from gtlomics.datasets.tables import CountTable, read_count_table

FUZZ = settings(
    max_examples=40,
    deadline=2000,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
FAST = DownloadConfig(timeout_s=2.0, retries=0)
TAB_SEPARATED = "human/data_sources/sra/metadata/sra.recount_project.MD.gz"
TABLE = '"",FLT_1,GC_1\n"ENSMUSG01",1,2\n"ENSMUSG03",0,7.5\n'
cells = st.sampled_from(["1", "2.5", "", "x", "-3", "nan", "1e400", '"', ",", "\t", "\n", "ENSG1"])
table_text = st.lists(cells, max_size=40).map("".join).map(lambda body: TABLE + body)


def _garble(data: bytes, cut: int, flip: int) -> bytes:
    if not data:
        return data
    cut = cut % (len(data) + 1)
    flipped = bytearray(data[:cut])
    if flipped:
        flipped[flip % len(flipped)] ^= 0x5A
    return bytes(flipped)


@FUZZ
@given(text=table_text)
def test_random_tables_parse_or_raise_format_error(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_text(text)
    try:
        assert isinstance(read_count_table(path), CountTable)
    except DataFormatError as exc:
        assert str(path) in str(exc)


@FUZZ
@given(
    cut=st.integers(0, 10_000),
    flip=st.integers(0, 10_000),
    codec=st.sampled_from([gzip.compress, lzma.compress]),
)
def test_truncated_or_garbled_archives_raise_format_error(tmp_path, cut, flip, codec):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(_garble(codec(TABLE.encode() * 20), cut, flip))
    try:
        read_count_table(path)
    except DataFormatError as exc:
        assert str(path) in str(exc)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_study_table(tmp_path, data):
    path = tmp_path / "s_OSD-1.txt"
    path.write_bytes(data)
    try:
        read_study_table(path)
    except DataFormatError as exc:
        assert str(path) in str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["studies", "OSD-1", "study_files", "file_name", "remote_url", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@FUZZ
@given(answer=json_values)
def test_odd_json_answers_give_format_errors(answer):
    try:
        files = parse_files_json(json.dumps(answer).encode(), 1, "http://x/files/1", "http://x")
    except DataFormatError as exc:
        assert "http://x/files/1" in str(exc)
    else:
        assert all(isinstance(f.name, str) for f in files)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>maintenance</html>", "did not answer JSON"),
        (b'{"success": true}', "missing 'studies'"),
        (b'{"studies": {"OSD-758": {"file_count": 1}}}', "missing 'study_files'"),
        (b'{"studies": {"OSD-758": {"study_files": [{"file_name": "a"}]}}}', "remote_url"),
        (b"\xff\xfe\x00", "did not answer JSON"),
    ],
)
def test_bad_api_answers_over_http(mirror_server, tmp_path, body, problem):
    mirror_server.faults.json_body = body
    with pytest.raises(DataFormatError, match=problem):
        load_osdr("OSD-758", base_url=mirror_server.base_url, cache_dir=tmp_path, download=FAST)


def test_unparseable_download_is_evicted_from_cache(mirror_server, tmp_path):
    answer = {
        "studies": {
            "OSD-758": {
                "study_files": [
                    {
                        "file_name": "GLDS-1_rna_seq_Unnormalized_Counts.csv",
                        "remote_url": f"/recount3/{TAB_SEPARATED}",
                    }
                ]
            }
        }
    }
    mirror_server.faults.json_body = json.dumps(answer).encode()
    with pytest.raises(DataFormatError, match="one column with delimiter ','"):
        load_osdr("OSD-758", base_url=mirror_server.base_url, cache_dir=tmp_path, download=FAST)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_garbled_recount3_gene_sums(shared_data, tmp_path):
    source = shared_data / "recount3_mirror" / "recount3"
    mirror = tmp_path / "recount3"
    for path in (p for p in source.rglob("*SRP014565*") if p.is_file()):
        target = mirror / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    sums = next(mirror.rglob("sra.gene_sums.SRP014565.G026.gz"))
    sums.write_bytes(sums.read_bytes()[:2000])
    with pytest.raises(DataFormatError, match=r"sra\.gene_sums\.SRP014565\.G026\.gz"):
        load_recount3("SRP014565", "human", base_url=str(mirror))
    with pytest.raises(DownloadError, match="does not exist"):
        load_recount3("SRP000001", "human", base_url=str(mirror))


def test_file_names_cannot_escape_the_cache():
    answer = {
        "studies": {"OSD-1": {"study_files": [{"file_name": "../../evil.csv", "remote_url": "/x"}]}}
    }
    with pytest.raises(DataFormatError, match="not a plain file name"):
        parse_files_json(json.dumps(answer).encode(), 1, "http://x/files/1", "http://x")
