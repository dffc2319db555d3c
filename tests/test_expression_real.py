"""The expression layer on a real GeneLab RSEM table (OSD-758; skipped without shared data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gtlomics.expression import GeneVocab, PreprocessingConfig, prepare_expression


@pytest.fixture(scope="module")
def osd758(shared_data) -> pd.DataFrame:
    path = shared_data / "osdr" / "OSD-758" / "GLDS-664_rna-seq_RSEM_Unnormalized_Counts.csv.xz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return pd.read_csv(path, index_col=0).T  # samples × genes (ENSMUSG… and ERCC-…)


def test_rsem_counts_become_log_cpm_with_versioned_vocabulary(osd758):
    vocab = GeneVocab.from_most_variable(osd758, n_genes=500)
    assert len(vocab) == 500
    versioned = osd758.rename(columns=lambda g: f"{g}.7" if g.startswith("ENSMUSG") else g)
    out = prepare_expression(versioned, vocab)  # Ensembl versions do not break alignment
    assert out.input_scale == "counts" and out.n_matched == 500
    totals = np.expm1(prepare_expression(osd758, GeneVocab.from_list(osd758.columns)).values)
    np.testing.assert_allclose(totals.sum(axis=1), 1e6, rtol=1e-4)
    assert out.sample_ids.tolist() == osd758.index.tolist()


def test_symbols_against_ensembl_table_fail_with_both_examples(osd758):
    vocab = GeneVocab(("Actb", "Gapdh", "Rho"))
    with pytest.raises(ValueError, match=r"Only 0 of 3 .*'Actb'.*'ENSMUSG00000000001'"):
        prepare_expression(osd758, vocab, PreprocessingConfig(min_overlap=0.1))
