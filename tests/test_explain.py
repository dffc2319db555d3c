"""``GTLClassifier.explain``: integrated-gradient gene attributions users can trust.

The synthetic few-shot study (``gtl_support.design()``: 64 genes, 16 of them planted as
differentially expressed between treated and control, effect 1.5 on the log scale) has a known
answer: the planted genes. Chance precision of any top-k list is 16 / 64 = 0.25.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gtlomics import GTLClassifier
from gtlomics.classifier.explain import GeneAttributions, rank_genes
from gtlomics.plotting import plot_top_genes


def _precision_at(result: GeneAttributions, planted: set[str], k: int) -> float:
    top = result.ranking().index[:k]
    return float(np.mean([gene in planted for gene in top]))


@pytest.fixture(scope="module")
def planted(gtl) -> set[str]:
    design = gtl.design()
    return {design.gene_ids[i] for i in design.condition_genes}


@pytest.fixture(scope="module")
def study(gtl):
    return gtl.fewshot(24)


@pytest.fixture(scope="module")
def scratch(study) -> GTLClassifier:
    clf = GTLClassifier(foundation=None, epochs=10, d_model=16, n_heads=2, n_layers=1)
    return clf.set_params(random_state=0).fit(study)


@pytest.fixture(scope="module")
def scratch_result(scratch, study) -> GeneAttributions:
    return scratch.explain(study, n_steps=8)


def test_planted_genes_lead_the_ranking(scratch_result, planted):
    # measured: precision@8 = 0.75 (6 of the top 8 genes are planted; chance 2), @16 = 0.56
    assert _precision_at(scratch_result, planted, 8) >= 0.625
    assert _precision_at(scratch_result, planted, 16) >= 0.5


def test_attributions_add_up_to_the_change_in_log_probability(scratch, study, scratch_result):
    _, present = scratch._prepared_inputs(study)
    scratch.model_.eval()
    with torch.no_grad():
        at_baseline = scratch.model_(scratch.model_.encoder.gene_center[None], present)
        f_baseline = torch.log_softmax(at_baseline.double(), dim=1)[0].numpy()
    codes = np.searchsorted(scratch.classes_, scratch_result.target)
    log_proba = np.log(scratch.predict_proba(study))[np.arange(len(codes)), codes]
    expected = log_proba - f_baseline[codes]
    np.testing.assert_allclose(scratch_result.values.sum(axis=1), expected, atol=0.02)
    assert np.abs(scratch_result.convergence_delta).max() < 0.01


def test_default_target_is_the_predicted_class(scratch, study, scratch_result):
    np.testing.assert_array_equal(scratch_result.target, scratch.predict(study))
    assert scratch_result.gene_ids == tuple(scratch.vocab_.genes)
    assert scratch_result.sample_ids == tuple(study.obs_names)


def test_a_sample_does_not_depend_on_the_other_samples(scratch, study, scratch_result):
    order = [5, 0, 3]
    alone = scratch.explain(study[order], n_steps=8)
    np.testing.assert_array_equal(alone.values, scratch_result.values[order])
    single = scratch.explain(study[[7]], n_steps=8, batch_size=3)  # other chunking: rounding only
    np.testing.assert_allclose(single.values[0], scratch_result.values[7], atol=1e-5)


def test_absent_genes_get_zero_attribution(scratch, study):
    dropped = list(study.var_names[:5])
    result = scratch.explain(study[:4, 5:], n_steps=4)
    frame = result.to_frame()
    assert (frame[dropped] == 0).all().all()
    assert (frame.drop(columns=dropped).abs().sum(axis=1) > 0).all()


def test_explicit_target_and_unknown_target(scratch, study):
    result = scratch.explain(study[:3], target="control", n_steps=4)
    assert list(result.target) == ["control"] * 3
    with pytest.raises(ValueError, match="not one of the classes"):
        scratch.explain(study[:3], target="sham")


def test_key_added_writes_into_the_anndata(scratch, study):
    adata = study[:4].copy()
    result = scratch.explain(adata, n_steps=4, key_added="ig")
    np.testing.assert_array_equal(adata.obsm["ig"].to_numpy(), result.values)
    assert list(adata.obsm["ig"].columns) == list(scratch.vocab_.genes)
    assert list(adata.obs["ig_target"].astype(str)) == list(result.target)
    assert adata.uns["ig"]["ranking"].index[0] == result.ranking().index[0]
    assert adata.uns["ig"]["params"]["baseline"] == "mean_profile"
    with pytest.raises(TypeError, match="needs an AnnData"):
        scratch.explain(adata.to_df(), key_added="ig")


def test_rank_genes_orders_by_mean_absolute_attribution():
    ranking = rank_genes(np.array([[0.1, -2.0, 0.5], [0.3, -1.0, -0.5]]), ["a", "b", "c"])
    assert ranking.index.tolist() == ["b", "c", "a"]
    assert ranking["rank"].tolist() == [1, 2, 3]
    assert ranking.loc["b", "mean_attribution"] == pytest.approx(-1.5)


@pytest.mark.parametrize("guidance", ["scouts", "none"])
def test_pretrained_arms_are_explained(foundation, study, planted, guidance):
    clf = GTLClassifier(foundation=foundation, guidance=guidance, epochs=10, random_state=0)
    result = clf.fit(study).explain(study[:12], n_steps=8)
    assert result.values.shape == (12, foundation.n_genes)
    assert np.abs(result.convergence_delta).max() < 0.01
    # measured on these 12 samples: GTL 0.5, pre-trained 0.625 (chance 0.25)
    assert _precision_at(result, planted, 8) >= 0.375


def test_plot_top_genes(scratch_result, tmp_path):
    fig = plot_top_genes(scratch_result, n_genes=5)
    labels = [tick.get_text() for tick in fig.axes[0].get_yticklabels()]
    assert labels[::-1] == list(scratch_result.ranking().index[:5])
    fig.savefig(tmp_path / "top.png")
    assert (tmp_path / "top.png").stat().st_size > 0
    with pytest.raises(TypeError, match="ranking"):
        plot_top_genes(np.zeros(3))


@pytest.mark.gpu
def test_explain_on_cuda_matches_cpu(study, scratch_result):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    clf = GTLClassifier(foundation=None, epochs=10, d_model=16, n_heads=2, n_layers=1)
    clf.set_params(random_state=0, device="cuda").fit(study)
    result = clf.explain(study, n_steps=8)
    assert np.abs(result.convergence_delta).max() < 0.01
    assert result.values.shape == scratch_result.values.shape
