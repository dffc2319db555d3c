"""Property-based invariants of alignment and normalisation (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gtlomics.expression import GeneVocab, PreprocessingConfig, prepare_expression

COUNTS = st.integers(min_value=1, max_value=6).flatmap(
    lambda n_genes: arrays(
        np.int64,
        st.tuples(st.integers(1, 5), st.just(n_genes)),
        elements=st.integers(0, 10_000),
    ).filter(lambda a: bool(np.all(a.sum(axis=1) > 0)))
)


def _ids(n_genes: int) -> list[str]:
    return [f"gene{i}" for i in range(n_genes)]


@settings(max_examples=40, deadline=None)
@given(counts=COUNTS, data=st.data())
def test_column_order_and_extra_genes_do_not_change_the_result(counts, data):
    n_genes = counts.shape[1]
    vocab = GeneVocab.from_list(_ids(n_genes))
    reference = prepare_expression(counts, vocab, gene_ids=_ids(n_genes))
    order = data.draw(st.permutations(range(n_genes)))
    shuffled = prepare_expression(
        counts[:, order], vocab, gene_ids=[_ids(n_genes)[i] for i in order]
    )
    np.testing.assert_array_equal(shuffled.values, reference.values)
    # genes outside the vocabulary change library sizes, not which genes are present
    extra = np.hstack([counts, counts[:, :1]])
    widened = prepare_expression(extra, vocab, gene_ids=[*_ids(n_genes), "not_in_vocab"])
    assert widened.present.all() and widened.n_matched == n_genes


@settings(max_examples=40, deadline=None)
@given(counts=COUNTS, keep=st.data())
def test_present_mask_marks_exactly_the_input_genes(counts, keep):
    n_genes = counts.shape[1]
    vocab = GeneVocab.from_list([*_ids(n_genes), "absent_a", "absent_b"])
    subset = keep.draw(st.lists(st.sampled_from(range(n_genes)), min_size=1, unique=True))
    out = prepare_expression(
        counts[:, subset] + 1,  # keep every library non-empty
        vocab,
        PreprocessingConfig(min_overlap=0.0),
        gene_ids=[_ids(n_genes)[i] for i in subset],
    )
    assert out.present.tolist() == [i in subset for i in range(n_genes + 2)]
    assert np.all(out.values[:, ~out.present] == 0.0)


@settings(max_examples=40, deadline=None)
@given(counts=COUNTS, factor=st.integers(1, 50), target=st.sampled_from([1e4, 1e6]))
def test_normalisation_removes_library_size_and_hits_target_sum(counts, factor, target):
    n_genes = counts.shape[1]
    vocab = GeneVocab.from_list(_ids(n_genes))
    config = PreprocessingConfig(target_sum=target, input_scale="counts")
    out = prepare_expression(counts, vocab, config, gene_ids=_ids(n_genes))
    deeper = prepare_expression(counts * factor, vocab, config, gene_ids=_ids(n_genes))
    assert out.values.dtype == np.float32 and np.all(np.isfinite(out.values))
    assert np.all(out.values >= 0)
    np.testing.assert_allclose(deeper.values, out.values, rtol=1e-5, atol=1e-6)
    totals = np.expm1(out.values.astype(np.float64)).sum(axis=1)
    np.testing.assert_allclose(totals, target, rtol=1e-4)


@settings(max_examples=30, deadline=None)
@given(counts=COUNTS)
def test_log1p_input_passes_through_unchanged(counts):
    n_genes = counts.shape[1]
    vocab = GeneVocab.from_list(_ids(n_genes))
    once = prepare_expression(counts, vocab, gene_ids=_ids(n_genes))
    again = prepare_expression(
        once.values, vocab, PreprocessingConfig(input_scale="log1p"), gene_ids=_ids(n_genes)
    )
    np.testing.assert_array_equal(again.values, once.values)
