"""Gene id mapping with user-supplied maps, and harmonising AnnData to Ensembl ids."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from gtlomics.datasets.gene_ids import harmonize_to_ensembl, map_gene_ids

MAP = (
    "ensembl_id,symbol,entrez_id,refseq\n"
    "ENSMUSG01,Gnai3,14679,NM_010306\n"
    "ENSMUSG02,Pbsn,,NM_017471\n"
    "ENSMUSG03,Dup,,\n"
    "ENSMUSG04,Dup,,\n"
    "ENSMUSG05,Cdc45,,NM_001161623\n"
    "ENSMUSG05,Cdc45,,NM_009862\n"
)
ALIASES = (
    "lookup_symbol,symbol,ensembl_id,mgi_id,kind,n_genes\n"
    "Old1,Gnai3,ENSMUSG01,MGI:1,alias,1\n"
    "Amb,Pbsn,ENSMUSG02,MGI:2,alias,2\n"
    "Amb,Cdc45,ENSMUSG05,MGI:3,alias,2\n"
)


@pytest.fixture()
def maps(tmp_path):
    (tmp_path / "map.csv").write_text(MAP)
    (tmp_path / "aliases.csv").write_text(ALIASES)
    return tmp_path / "map.csv", tmp_path / "aliases.csv"


def test_symbols_map_and_ambiguous_ones_stay_empty(maps):
    mapped = map_gene_ids(["Gnai3", "Dup", "nope", "Old1", "Amb"], map_path=maps[0])
    assert mapped.tolist() == ["ENSMUSG01", "", "", "", ""]
    with_aliases = map_gene_ids(["Old1", "Amb", "Gnai3"], map_path=maps[0], aliases_path=maps[1])
    assert with_aliases.tolist() == ["ENSMUSG01", "", "ENSMUSG01"]


def test_refseq_versions_are_ignored(maps):
    mapped = map_gene_ids(["NM_010306.3", "NM_009862", "NR_1"], map_path=maps[0], from_="refseq")
    assert mapped.tolist() == ["ENSMUSG01", "ENSMUSG05", ""]


def test_harmonize_sums_duplicates_and_drops_unmapped(maps):
    counts = np.array([[1, 2, 3, 4], [10, 20, 30, 40]], dtype=np.float32)
    adata = ad.AnnData(
        sp.csr_matrix(counts),
        obs=pd.DataFrame(index=["s1", "s2"]),
        var=pd.DataFrame(index=["NM_001161623", "NM_009862", "NM_010306", "X"]),
    )
    result = harmonize_to_ensembl(adata, map_path=maps[0], from_="refseq")
    assert result.var_names.tolist() == ["ENSMUSG01", "ENSMUSG05"]
    np.testing.assert_array_equal(result.X.toarray(), [[3, 3], [30, 30]])
    assert result.uns["gene_id_mapping"]["n_mapped"] == 3
    with pytest.raises(ValueError, match="none of the 4 var_names mapped"):
        harmonize_to_ensembl(adata, map_path=maps[0], from_="symbol")


def test_bad_arguments_and_map_files(maps, tmp_path):
    with pytest.raises(ValueError, match="'symbol' or 'refseq'"):
        map_gene_ids(["a"], map_path=maps[0], from_="entrez")
    (tmp_path / "bad.csv").write_text("gene,other\na,b\n")
    with pytest.raises(ValueError, match="missing columns"):
        map_gene_ids(["a"], map_path=tmp_path / "bad.csv")


def test_real_map_covers_osd758_style_ids(shared_data):
    genes = shared_data / "genes"
    mapped = map_gene_ids(
        ["Gnai3", "Cdc45", "Xist"],
        map_path=genes / "mouse_gene_map.csv.gz",
        aliases_path=genes / "mouse_symbol_aliases.csv.gz",
    )
    assert mapped[0] == "ENSMUSG00000000001" and all(m.startswith("ENSMUSG") for m in mapped)
