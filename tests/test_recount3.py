"""recount3 loader end to end against the recount3 layout fixture (HTTP and file:// mirrors)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from gtlomics.datasets.download import DownloadConfig
from gtlomics.datasets.errors import DataFormatError, DownloadError
from gtlomics.datasets.recount3 import (
    build_recount3_corpus,
    list_recount3_projects,
    load_recount3,
    recount3_url,
)

FAST = DownloadConfig(timeout_s=2.0, retries=0)


@pytest.fixture(scope="module")
def recount3_root(shared_data):
    return shared_data / "recount3_mirror" / "recount3"


def _coverage(root, project: str) -> pd.DataFrame:
    path = root / "human/data_sources/sra/gene_sums" / project[-2:] / project
    return pd.read_csv(
        path / f"sra.gene_sums.{project}.G026.gz", sep="\t", comment="#", index_col=0
    )


def test_reads_are_coverage_over_mapped_length(recount3_root):
    adata = load_recount3("DRP004088", "human", base_url=recount3_root.as_uri())
    coverage = _coverage(recount3_root, "DRP004088")
    assert adata.shape == (2, coverage.shape[0])
    assert sp.issparse(adata.X) and adata.X.dtype == np.float32
    lengths = adata.obs["star.average_mapped_length"].to_numpy()
    np.testing.assert_allclose(lengths, [35.34, 35.35])
    expected = np.rint(coverage.to_numpy().T / lengths[:, None])
    np.testing.assert_array_equal(adata.X.toarray(), expected)
    assert adata.var_names[0] == "ENSG00000278704"  # version '.1' stripped
    assert adata.obs["library_strategy"].tolist() == ["RNA-Seq", "RNA-Seq"]  # sra table joined
    assert adata.uns["recount3"]["annotation"] == "G026"


def test_http_mirror_gives_same_counts(mirror_server, recount3_root, tmp_path):
    base = f"{mirror_server.base_url}/recount3"
    over_http = load_recount3(
        "SRP014565", "human", base_url=base, cache_dir=tmp_path, download=FAST
    )
    local = load_recount3("SRP014565", "human", base_url=str(recount3_root))
    assert (over_http.X != local.X).nnz == 0
    assert list((tmp_path / "recount3").rglob("sra.gene_sums.SRP014565.G026.gz"))


def test_corpus_stacks_projects_and_aligns_genes(recount3_root):
    genes = ["ENSG00000278704", "ENSG00000000003", "NOT_A_GENE"]
    corpus = build_recount3_corpus(
        ["SRP014565", "DRP004088"],
        "human",
        base_url=str(recount3_root),
        genes=genes,
        progress=False,
    )
    assert corpus.shape == (3, 3)
    assert corpus.obs["project"].tolist() == ["SRP014565", "DRP004088", "DRP004088"]
    assert corpus.X.dtype == np.float32 and sp.isspmatrix_csr(corpus.X)
    single = load_recount3("DRP004088", "human", base_url=str(recount3_root))
    present = [g for g in genes if g in single.var_names]
    np.testing.assert_array_equal(corpus[1:, present].X.toarray(), single[:, present].X.toarray())
    assert corpus[:, "NOT_A_GENE"].X.sum() == 0


def test_mouse_project_missing_from_mirror_names_the_url(recount3_root):
    projects = list_recount3_projects("mouse", base_url=str(recount3_root))
    assert "SRP170963" in set(projects["project"])
    with pytest.raises(DownloadError, match=r"sra\.gene_sums\.SRP170963\.M023\.gz"):
        load_recount3("SRP170963", "mouse", base_url=str(recount3_root))


def test_bad_project_and_organism_are_rejected(recount3_root):
    with pytest.raises(ValueError, match="SRA project accession"):
        recount3_url(str(recount3_root), "human", "../etc", "gene_sums", "G026")
    with pytest.raises(ValueError, match="'mouse' or 'human'"):
        load_recount3("SRP014565", "rat", base_url=str(recount3_root))


def test_missing_mapped_length_is_a_clear_error(recount3_root, tmp_path):
    mirror = tmp_path / "recount3"
    project_dir = "human/data_sources/sra/metadata/65/SRP014565"
    for path in (p for p in recount3_root.rglob("*SRP014565*") if p.is_file()):
        target = mirror / path.relative_to(recount3_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    qc = mirror / project_dir / "sra.recount_qc.SRP014565.MD.gz"
    qc.write_bytes(
        gzip.compress(
            gzip.decompress(qc.read_bytes()).replace(
                b"star.average_mapped_length\t", b"star.renamed\t"
            )
        )
    )
    with pytest.raises(DataFormatError, match=r"star\.average_mapped_length"):
        load_recount3("SRP014565", "human", base_url=str(mirror))
