"""Loaders for the local curatedAdipoRNA and Benayoun aging corpora."""

from __future__ import annotations

import numpy as np
import pytest

from gtlomics.datasets.errors import DataFormatError
from gtlomics.datasets.local import load_benayoun_aging, load_curated_adipo


def test_curated_adipo_has_labels_and_integer_counts(shared_data):
    adata = load_curated_adipo(shared_data / "corpus" / "curated_adipo")
    assert adata.shape == (98, 23916)
    assert set(adata.obs["stage"]) == {0, 1, 2, 3}
    assert adata.obs["study"].nunique() == 16
    assert adata.var_names[0] == "0610005C13Rik"
    np.testing.assert_array_equal(adata.X, np.rint(adata.X))


def test_benayoun_aging_tissues_ages_and_no_repeats(shared_data):
    adata = load_benayoun_aging(shared_data / "corpus" / "benayoun_aging")
    assert adata.n_obs == 41
    assert set(adata.obs["tissue"]) == {
        "cerebellum",
        "liver",
        "heart",
        "olfactory bulb",
        "neural progenitors",
    }
    assert set(adata.obs["age_months"]) == {3, 12, 29}
    assert not any("|" in g for g in adata.var_names)
    assert all(g.startswith(("NM_", "NR_")) for g in adata.var_names)
    assert (adata.var["length"] > 0).all()
    assert sum(adata.uns["benayoun_aging"]["n_incomplete_rows_dropped"].values()) > 0


def test_missing_files_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="genes_and_repeats_matrix"):
        load_benayoun_aging(tmp_path)
    (tmp_path / "adipo_gene_counts.csv.gz").write_text(",GSM1\nGene1,3\n")
    (tmp_path / "samples.csv").write_text("id,study,time,stage\nGSM2,S,0,0\n")
    with pytest.raises(DataFormatError, match=r"no rows for samples \['GSM1'\]"):
        load_curated_adipo(tmp_path)
