"""Expression layer: reading, checks, normalisation, alignment, vocabularies, chunks."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from gtlomics.corpus import iter_prepared_chunks
from gtlomics.expression import (
    DuplicateGeneWarning,
    GeneVocab,
    PreprocessingConfig,
    ReadSettings,
    prepare_expression,
    read_expression,
    strip_ensembl_version,
)

GENES = ["ENSMUSG00000000001.4", "ENSMUSG00000000028.15", "ERCC-00002", "Actb"]


def _counts(n_samples: int = 6, n_genes: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(50, size=(n_samples, n_genes)).astype(np.float32)


def _log_cpm(counts: np.ndarray, target_sum: float = 1e6) -> np.ndarray:
    return np.log1p(counts / counts.sum(axis=1, keepdims=True) * target_sum)


def test_strip_ensembl_version_keeps_other_id_styles():
    assert strip_ensembl_version([*GENES, "NM_001001.2"]).tolist() == [
        "ENSMUSG00000000001",
        "ENSMUSG00000000028",
        "ERCC-00002",
        "Actb",
        "NM_001001.2",
    ]


@pytest.mark.parametrize("bad", ["", "  ", None, float("nan")])
def test_missing_gene_id_is_an_error(bad):
    with pytest.raises(ValueError, match="position 1"):
        read_expression(_counts(2, 2), gene_ids=["a", bad])


def test_every_input_kind_reads_the_same_table():
    counts = _counts()
    adata = ad.AnnData(
        X=sp.csr_matrix(counts), var=pd.DataFrame({"sym": GENES}, index=list("abcd"))
    )
    adata.layers["counts"] = counts
    frame = pd.DataFrame(counts, columns=GENES, index=adata.obs_names)
    tables = [
        read_expression(adata, gene_column="sym"),
        read_expression(adata, layer="counts", gene_column="sym"),
        read_expression(frame),
        read_expression(counts, gene_ids=GENES, sample_ids=adata.obs_names),
    ]
    for table in tables:
        dense = table.values.toarray() if sp.issparse(table.values) else table.values
        np.testing.assert_array_equal(dense, counts)
        assert table.gene_ids.tolist() == strip_ensembl_version(GENES).tolist()
        assert table.sample_ids.tolist() == adata.obs_names.tolist()


def test_reader_errors_say_what_to_do():
    adata = ad.AnnData(X=_counts())
    with pytest.raises(KeyError, match="available layers"):
        read_expression(adata, layer="counts")
    with pytest.raises(KeyError, match=r"not a column of adata\.var"):
        read_expression(adata, gene_column="symbol")
    with pytest.raises(ValueError, match="gene_ids= is required"):
        read_expression(_counts())
    with pytest.raises(ValueError, match="3 ids but X has 4 columns"):
        read_expression(_counts(), gene_ids=["a", "b", "c"])
    with pytest.raises(ValueError, match="2-D"):
        read_expression(np.ones(4), gene_ids=list("abcd"))
    with pytest.raises(ValueError, match="empty"):
        read_expression(np.ones((0, 2)), gene_ids=["a", "b"])


@pytest.mark.parametrize(
    "matrix",
    [np.ones((2, 2), dtype=bool), np.array([["1", "2"], ["3", "4"]]), np.ones((2, 2), complex)],
)
def test_wrong_dtypes_are_refused(matrix):
    with pytest.raises(TypeError, match="must be integer or float"):
        read_expression(matrix, gene_ids=["a", "b"])


def test_non_numeric_dataframe_columns_are_named():
    frame = pd.DataFrame({"Actb": [1.0, 2.0], "tissue": ["liver", "heart"]})
    with pytest.raises(TypeError, match=r"not numeric \(e.g. \['tissue'\]\)"):
        read_expression(frame)


def test_counts_become_log_cpm_in_vocab_order():
    counts = _counts(n_genes=4)
    vocab = GeneVocab(("Actb", "ERCC-00002", "Gapdh"))  # reordered, one gene missing
    out = prepare_expression(counts, vocab, gene_ids=GENES)
    expected = _log_cpm(counts)  # library size over all four input genes
    np.testing.assert_allclose(out.values[:, 0], expected[:, 3], rtol=1e-6)
    np.testing.assert_allclose(out.values[:, 1], expected[:, 2], rtol=1e-6)
    assert out.values.dtype == np.float32 and out.values.shape == (6, 3)
    assert out.present.tolist() == [True, True, False]
    assert out.n_matched == 2 and out.input_scale == "counts"
    assert np.all(out.values[:, 2] == 0.0)


def test_target_sum_is_configurable():
    counts = _counts()
    vocab = GeneVocab.from_list(GENES)
    out = prepare_expression(counts, vocab, PreprocessingConfig(target_sum=1e4), gene_ids=GENES)
    np.testing.assert_allclose(out.values, _log_cpm(counts, 1e4), rtol=1e-6)


def test_sparse_integer_and_dense_float_inputs_agree():
    counts = _counts()
    vocab = GeneVocab.from_list(GENES)
    dense = prepare_expression(counts, vocab, gene_ids=GENES)
    sparse = prepare_expression(sp.csc_matrix(counts.astype(np.int64)), vocab, gene_ids=GENES)
    np.testing.assert_array_equal(dense.values, sparse.values)


def test_duplicate_ids_are_summed_with_a_warning():
    counts = _counts(n_genes=3)
    ids = ["ENSG00000141510.16", "ENSG00000141510.17", "Actb"]
    vocab = GeneVocab(("ENSG00000141510", "Actb"))
    with pytest.warns(DuplicateGeneWarning, match="summed"):
        out = prepare_expression(counts, vocab, gene_ids=ids)
    merged = np.column_stack([counts[:, 0] + counts[:, 1], counts[:, 2]])
    np.testing.assert_allclose(out.values, _log_cpm(merged), rtol=1e-6)


def test_duplicate_log_values_are_summed_on_the_linear_scale():
    log_values = np.log1p(_counts(n_genes=2) / 7.0)
    with pytest.warns(DuplicateGeneWarning):
        out = prepare_expression(log_values, GeneVocab(("g",)), gene_ids=["g", "g"])
    expected = np.log1p(np.expm1(log_values).sum(axis=1))
    np.testing.assert_allclose(out.values[:, 0], expected, rtol=1e-6)


def test_too_little_overlap_reports_both_id_styles():
    vocab = GeneVocab(("ENSMUSG00000000001", "ENSMUSG00000000028", "ENSMUSG00000000031"))
    with pytest.raises(ValueError, match=r"Only 1 of 3 .*'ENSMUSG00000000001'.*'Actb'"):
        prepare_expression(_counts(n_genes=2), vocab, gene_ids=["Actb", "ENSMUSG00000000001.4"])
    with pytest.raises(ValueError, match="Only 0 of 3"):  # zero overlap fails even at 0%
        prepare_expression(
            _counts(n_genes=2), vocab, PreprocessingConfig(min_overlap=0.0), gene_ids=["a", "b"]
        )
    lenient = PreprocessingConfig(min_overlap=0.3)
    out = prepare_expression(_counts(n_genes=2), vocab, lenient, gene_ids=["Actb", GENES[0]])
    assert out.present.tolist() == [True, False, False]


@pytest.mark.parametrize("make_sparse", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_bad_values_name_sample_and_gene(bad, make_sparse):
    counts = _counts(n_samples=3)
    counts[2, 1] = bad
    frame = pd.DataFrame(counts, columns=GENES, index=["s0", "s1", "s2"])
    X = ad.AnnData(X=sp.csr_matrix(counts), obs=frame[[]], var=pd.DataFrame(index=GENES))
    X = X if make_sparse else frame
    with pytest.raises(ValueError, match=r"sample 's2', gene 'ENSMUSG00000000028'"):
        prepare_expression(X, GeneVocab.from_list(GENES))


def test_empty_library_is_refused():
    counts = _counts(n_samples=3)
    counts[1] = 0
    with pytest.raises(ValueError, match=r"'sample_1'.*drop"):
        prepare_expression(counts, GeneVocab.from_list(GENES), gene_ids=GENES)


def test_input_scale_detects_and_refuses_contradictions():
    counts = _counts()
    log_values = _log_cpm(counts).astype(np.float32)
    vocab = GeneVocab.from_list(GENES)
    auto = prepare_expression(log_values, vocab, gene_ids=GENES)
    assert auto.input_scale == "log1p"
    np.testing.assert_array_equal(auto.values, log_values)  # used as given
    as_counts = PreprocessingConfig(input_scale="counts")
    with pytest.raises(ValueError, match="look already log-transformed"):
        prepare_expression(log_values, vocab, as_counts, gene_ids=GENES)
    as_log = PreprocessingConfig(input_scale="log1p")
    with pytest.raises(ValueError, match="looks like counts"):
        prepare_expression(counts * 100, vocab, as_log, gene_ids=GENES)
    float_counts = counts * 100 + 0.37  # e.g. RSEM expected counts are not integers
    assert prepare_expression(float_counts, vocab, gene_ids=GENES).input_scale == "counts"


def test_config_round_trip_and_validation():
    cfg = PreprocessingConfig(target_sum=1e4, min_overlap=0.8, value_encoding="rank")
    assert PreprocessingConfig.from_dict(cfg.to_dict()) == cfg
    # saved before the reading settings moved to ReadSettings: they are dropped on load
    assert (
        PreprocessingConfig.from_dict({**cfg.to_dict(), "layer": None, "gene_column": "sym"}) == cfg
    )
    with pytest.raises(ValueError, match="input_scale"):
        PreprocessingConfig(input_scale="tpm")
    with pytest.raises(ValueError, match="min_overlap"):
        PreprocessingConfig(min_overlap=50)
    with pytest.raises(ValueError, match="Unknown PreprocessingConfig keys"):
        PreprocessingConfig.from_dict({"layers": "counts"})


def test_vocab_rejects_duplicates_and_strips_versions():
    with pytest.raises(ValueError, match="unique"):
        GeneVocab(("ENSG00000141510.1", "ENSG00000141510.2"))
    vocab = GeneVocab.from_list(GENES)
    assert GeneVocab.from_list(vocab.to_list()) == vocab
    assert vocab.positions(["Actb", "ENSMUSG00000000001.9", "x"]).tolist() == [3, 0, -1]


def test_most_variable_genes_are_the_variable_ones():
    rng = np.random.default_rng(0)
    steady = rng.poisson(np.geomspace(100, 2000, 40), size=(60, 40))
    # 5 genes at similar mean that switch 3-fold between two halves of the samples
    switching = rng.poisson(np.repeat([[300.0], [900.0]], 30, axis=0) * np.ones((1, 5)))
    counts = np.hstack([steady, switching, np.full((60, 3), 100)])  # 3 constant genes
    ids = [f"g{i}" for i in range(counts.shape[1])]
    vocab = GeneVocab.from_most_variable(counts, n_genes=5, gene_ids=ids)
    assert sorted(vocab.genes) == sorted(ids[40:45])
    with pytest.warns(UserWarning, match="keeps all of them"):
        every = GeneVocab.from_most_variable(counts, n_genes=100, gene_ids=ids)
    assert len(every) == 48 and set(every.genes[-3:]) == set(ids[45:])  # constant ones last
    assert every.genes[:5] == vocab.genes  # a smaller vocabulary is a prefix of a larger one
    with pytest.raises(ValueError, match="flavor"):
        GeneVocab.from_most_variable(counts, n_genes=5, gene_ids=ids, flavor="cell_ranger")


def test_most_variable_matches_scanpy_seurat_ranking(synthetic_corpus):
    import scanpy as sc

    vocab = GeneVocab.from_most_variable(synthetic_corpus, n_genes=50, flavor="seurat")
    adata = synthetic_corpus.copy()
    sc.pp.normalize_total(adata, target_sum=1e6)
    sc.pp.log1p(adata)
    stats = sc.pp.highly_variable_genes(adata, flavor="seurat", inplace=False)
    top = stats["dispersions_norm"].sort_values(ascending=False).index[:50]
    assert len(vocab) == 50 and set(vocab.genes) == set(top)


@pytest.mark.parametrize("sparse_on_disk", [False, True])
def test_chunks_from_disk_equal_one_big_call(tmp_path, synthetic_corpus, sparse_on_disk):
    adata = synthetic_corpus[:50].copy()
    adata.X = adata.X * 0  # only the layer holds counts: the reader must use it
    adata.X[:, 0] = 1
    if sparse_on_disk:
        adata.layers["counts"] = sp.csr_matrix(adata.layers["counts"])
    path = tmp_path / "corpus.h5ad"
    adata.write_h5ad(path)
    vocab = GeneVocab.from_list(adata.var_names[::2])
    cfg, reading = PreprocessingConfig(), ReadSettings(layer="counts")
    whole = prepare_expression(adata, vocab, cfg, reading=reading)
    backed = ad.read_h5ad(path, backed="r")
    for source in (path, str(path), backed, adata):
        chunks = list(iter_prepared_chunks(source, vocab, cfg, chunk_size=16, reading=reading))
        assert [(c.start, c.stop) for c in chunks] == [(0, 16), (16, 32), (32, 48), (48, 50)]
        stacked = np.vstack([c.expression.values for c in chunks])
        # bit for bit: every step is per sample (library size, log) or per gene, never a sum
        # over samples, so the rows that share a chunk cannot change a row's bits
        np.testing.assert_array_equal(stacked, whole.values)
        ids = np.concatenate([c.expression.sample_ids for c in chunks])
        assert ids.tolist() == adata.obs_names.tolist()
    plain = PreprocessingConfig()  # backed .X read whole by prepare_expression
    np.testing.assert_array_equal(
        prepare_expression(backed, vocab, plain).values,
        prepare_expression(adata, vocab, plain).values,
    )
    backed.file.close()


def test_a_csc_file_is_refused_rather_than_read_whole_per_chunk(tmp_path, synthetic_corpus):
    adata = synthetic_corpus[:20].copy()
    adata.X = sp.csc_matrix(adata.layers["counts"])
    path = tmp_path / "csc.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(ValueError, match=r"X of .*csc.h5ad is a CSC matrix.*tocsr"):
        next(iter_prepared_chunks(path, GeneVocab.from_list(adata.var_names), chunk_size=8))


def test_chunk_scale_is_resolved_once(tmp_path):
    values = np.vstack([np.log1p(_counts(4) / 3.0), _counts(4)])  # log rows, then count rows
    with pytest.raises(ValueError, match="input_scale='log1p' but the values reach"):
        list(
            iter_prepared_chunks(
                pd.DataFrame(values, columns=GENES), GeneVocab.from_list(GENES), chunk_size=4
            )
        )
    with pytest.raises(FileNotFoundError):
        next(iter_prepared_chunks(tmp_path / "missing.h5ad", GeneVocab.from_list(GENES)))


def test_duplicate_warning_is_given_once_per_corpus():
    ids = ["g.1", "g"]  # not Ensembl: stays two distinct ids, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare_expression(_counts(n_genes=2), GeneVocab(("g", "g.1")), gene_ids=ids)
    frame = pd.DataFrame(_counts(8, 2), columns=["ENSG00000141510.1", "ENSG00000141510.2"])
    with pytest.warns(DuplicateGeneWarning) as record:
        list(iter_prepared_chunks(frame, GeneVocab(("ENSG00000141510",)), chunk_size=2))
    assert len(record) == 1
