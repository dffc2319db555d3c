"""Count-table and ISA-table parsing: bad files give errors naming the file and the problem."""

from __future__ import annotations

import gzip
import lzma
import zipfile

import numpy as np
import pytest

from gtlomics.datasets.errors import DataFormatError
from gtlomics.datasets.gene_ids import strip_ensembl_version
from gtlomics.datasets.isa import arm_from_sample_name, read_study_table
from gtlomics.datasets.tables import read_count_table

GOOD = (
    '"",FLT_1,GC_1\n"ENSMUSG00000000001.3",10.4,2\n"ENSMUSG00000000003",0,7.5\n"ERCC-00002",5,6\n'
)


def _write(tmp_path, text: str, name: str = "counts.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_table_parses_samples_by_genes(tmp_path):
    table = read_count_table(_write(tmp_path, GOOD))
    assert table.sample_ids.tolist() == ["FLT_1", "GC_1"]
    assert table.gene_ids.tolist()[0] == "ENSMUSG00000000001.3"
    np.testing.assert_array_equal(table.counts, [[10.4, 0, 5], [2, 7.5, 6]])


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress])
def test_compressed_tables_are_recognised_by_content(tmp_path, compress):
    path = tmp_path / "counts.bin"
    path.write_bytes(compress(GOOD.encode()))
    assert read_count_table(path).counts.shape == (2, 3)


def test_zip_member_is_selected(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "x")
        archive.writestr("dir/counts.csv", GOOD)
    assert read_count_table(path, member_pattern=r"\.csv$").counts.shape == (2, 3)
    with pytest.raises(DataFormatError, match="one archive member"):
        read_count_table(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD.replace(",", "\t"), r"one column with delimiter ','.*looks '\\t'-delimited"),
        ("FLT_1,GC_1\n1,2\n3,4\n", "first column holds numbers, not gene ids"),
        (GOOD.replace("10.4", "ten"), r"non-numeric value 'ten' at gene .*sample 'FLT_1'"),
        (GOOD.replace("10.4", ""), "missing value"),
        (GOOD.replace("10.4,2", "10.4"), "missing value"),
        (GOOD.replace("GC_1", "FLT_1"), r"duplicated sample columns \['FLT_1'\]"),
        (GOOD.replace("ENSMUSG00000000003", "ENSMUSG00000000001.3"), "duplicated gene ids"),
        (GOOD.replace("10.4", "-1"), "negative count values"),
        (GOOD.replace("10.4", "inf"), "infinite"),
        (GOOD.replace("10.4,2", "10.4,2,9"), "rows do not match"),
        ('"",FLT_1\n', "no gene rows"),
        ("", "no header line"),
    ],
)
def test_bad_tables_name_file_and_problem(tmp_path, text, problem):
    path = _write(tmp_path, text, "GLDS-1_rna_seq_Unnormalized_Counts.csv")
    with pytest.raises(DataFormatError, match=problem) as info:
        read_count_table(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_is_a_format_error(tmp_path):
    path = tmp_path / "counts.csv.gz"
    path.write_bytes(gzip.compress(GOOD.encode() * 50)[:-30])
    with pytest.raises(DataFormatError, match=r"counts\.csv\.gz: cannot read the table"):
        read_count_table(path)


def test_incomplete_rows_can_be_dropped(tmp_path):
    table = read_count_table(
        _write(tmp_path, GOOD.replace("10.4,2", "10.4")), drop_incomplete_rows=True
    )
    assert table.n_dropped_rows == 1
    assert "ENSMUSG00000000001.3" not in table.gene_ids


def test_study_table_keeps_factors_and_characteristics(tmp_path):
    text = (
        "Source Name\tSample Name\tCharacteristics[Sex]\tTerm Source REF\t"
        "Factor Value[Spaceflight]\tTerm Source REF\tFactor Value[Altered Gravity]\n"
        "a\tX_FLT_1\tMale\tMESH\tSpace Flight\tMESH\tuG\n"
        "b\tX_GC_1\tFemale\tMESH\tGround Control\tMESH\t1G\n"
    )
    table = read_study_table(_write(tmp_path, text, "s_OSD-1.txt"))
    assert table.index.tolist() == ["X_FLT_1", "X_GC_1"]
    assert table.attrs["factors"] == ["spaceflight", "altered_gravity"]
    assert table["sex"].tolist() == ["Male", "Female"]
    with pytest.raises(DataFormatError, match="no 'Sample Name' column"):
        read_study_table(_write(tmp_path, text.replace("Sample Name", "Sample"), "s_2.txt"))


def test_arm_tokens_and_version_stripping():
    assert [arm_from_sample_name(n) for n in ("A_FLT_Rep1", "RR1_BSL1", "X_VIV_2", "plain")] == [
        "FLT",
        "BSL",
        "VIV",
        "",
    ]
    assert strip_ensembl_version(["ENSMUSG00000000001.12", "Gnai3"]).tolist() == [
        "ENSMUSG00000000001",
        "Gnai3",
    ]
