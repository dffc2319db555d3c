"""Inputs that transfer, the linear probe, the read-out head, seed ensembles and guide controls."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import torch

from gtlomics import GTLClassifier
from gtlomics.classifier.linear_probe import probe_features
from gtlomics.corpus import standardize_per_batch
from gtlomics.evaluation import StratifiedGroupKFoldCV, make_baseline
from gtlomics.expression import GeneVocab, PreprocessingConfig, prepare_expression
from gtlomics.foundation import build_foundation
from gtlomics.linear import InnerCVLogisticRegression
from gtlomics.nn import GeneReadoutHead, SeedEnsemble
from gtlomics.train import control_guides

FAST = {"epochs": 3, "random_state": 0}


@functools.cache
def _off_corpus_foundation():
    """A micro foundation whose corpus lacks the study's tissue (0), each tissue standardised."""
    import gtl_support

    corpus = gtl_support.design().sample(150, clusters=[1, 2, 3, 4, 5], random_state=5)
    return build_foundation(
        corpus, preset=gtl_support.MICRO_PRESET, random_state=0, batch_key="cluster"
    )


@pytest.fixture(scope="module")
def off_corpus():
    return _off_corpus_foundation()


def _labels(adata) -> np.ndarray:
    return adata.obs["condition"].astype(str).to_numpy()


def test_batch_key_standardises_each_study_and_leaves_the_encoder_identity(off_corpus):
    encoder = off_corpus.make_encoder()
    assert torch.equal(encoder.gene_center, torch.zeros_like(encoder.gene_center))
    assert torch.equal(encoder.gene_scale, torch.ones_like(encoder.gene_scale))
    assert off_corpus.provenance.build_config["batch_key"] == "cluster"


def test_standardize_per_batch_centres_and_scales_every_batch():
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(5, 2, (10, 3)), rng.normal(-1, 0.5, (6, 3))]
    batches = np.array(["a"] * 10 + ["b"] * 6)
    out = standardize_per_batch(values, batches)
    for batch in "ab":
        np.testing.assert_allclose(out[batches == batch].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(out[batches == batch].std(0), 1, atol=1e-5)


def test_batch_key_needs_an_obs_column(gtl):
    with pytest.raises(ValueError, match=r"batch_key='nope'.*obs column"):
        build_foundation(gtl.corpus(), preset="tiny", batch_key="nope")


def test_study_standardisation_fits_on_the_training_samples(off_corpus, gtl):
    study = gtl.fewshot(12)
    clf = GTLClassifier(foundation=off_corpus, **FAST).fit(study, _labels(study))
    values, present = clf._prepared_inputs(study)
    n_tokens = clf.model_.encoder.config.n_genes
    expected = values[:, :n_tokens].mean(0).where(present[:n_tokens], torch.tensor(0.0))
    np.testing.assert_allclose(clf.model_.encoder.gene_center, expected, atol=1e-5)


def test_pretrained_arm_does_not_collapse_on_a_study_off_the_corpus(off_corpus, gtl):
    """Test-fold probabilities spread like logistic regression's (design decision 8)."""
    study, fresh = gtl.fewshot(16), gtl.fewshot(60, random_state=9)
    spreads = {}
    for name, model in {
        "pretrained": GTLClassifier(foundation=off_corpus, guidance="none", **FAST),
        "gtl": GTLClassifier(foundation=off_corpus, **FAST),
        "logreg": make_baseline("logreg", seed=0),
    }.items():
        spreads[name] = model.fit(study, _labels(study)).predict_proba(fresh)[:, 1].std()
    assert spreads["pretrained"] > 0.5 * spreads["logreg"] > 0
    assert spreads["gtl"] > 0.5 * spreads["logreg"]


def test_probe_alone_is_a_logistic_regression_on_the_frozen_features(off_corpus, gtl):
    study = gtl.fewshot(16)
    clf = GTLClassifier(foundation=off_corpus, epochs=0, random_state=0)
    clf.fit(study, _labels(study))
    assert isinstance(clf.model_.head, GeneReadoutHead)
    values, present = clf._prepared_inputs(study)
    features = probe_features(clf.model_, values, present)
    codes = np.searchsorted(clf.classes_, _labels(study))
    _, _, train_seed = _child_seeds(0)
    reference = InnerCVLogisticRegression(random_state=train_seed).fit(features, codes)
    np.testing.assert_allclose(
        clf.predict_proba(study), reference.predict_proba(features), atol=1e-4
    )


def _child_seeds(random_state):
    from gtlomics.classifier.inputs import child_seeds

    return child_seeds(random_state, 3)


def test_readout_covers_study_genes_outside_the_foundation_vocabulary(off_corpus, gtl):
    study = gtl.fewshot(12)
    clf = GTLClassifier(foundation=off_corpus, n_readout_genes=64, **FAST)
    clf.fit(study, _labels(study))
    tokens = off_corpus.vocab.genes
    assert clf.vocab_.genes[: len(tokens)] == tokens
    extra = set(clf.vocab_.genes) - set(tokens)
    assert extra and extra <= set(study.var_names)
    assert clf.model_.head.gene_weight.shape[1] == len(clf.vocab_.genes)


def test_guide_controls_keep_the_amount_but_not_the_placement():
    generator = torch.Generator().manual_seed(0)
    guides = {"a": torch.rand(5, 4, generator=generator), "b": torch.rand(7, generator=generator)}
    shuffled = control_guides(guides, "shuffled", seed=1)
    constant = control_guides(guides, "constant", seed=1)
    for name, guide in guides.items():
        assert torch.equal(shuffled[name].flatten().sort().values, guide.flatten().sort().values)
        assert not torch.equal(shuffled[name], guide)
    mean = torch.cat([g.flatten() for g in guides.values()]).mean()
    for guide in constant.values():
        torch.testing.assert_close(guide, torch.full_like(guide, float(mean)))


def test_control_arms_fine_tune_with_their_own_guides(off_corpus, gtl):
    study = gtl.fewshot(12)
    probabilities = {
        mode: GTLClassifier(foundation=off_corpus, guidance=mode, **FAST)
        .fit(study, _labels(study))
        .predict_proba(study)
        for mode in ("scouts", "shuffled", "constant")
    }
    assert not np.allclose(probabilities["scouts"], probabilities["shuffled"])
    assert not np.allclose(probabilities["scouts"], probabilities["constant"])


def test_seed_ensemble_averages_member_probabilities_and_saves(off_corpus, gtl, tmp_path):
    study = gtl.fewshot(12)
    clf = GTLClassifier(foundation=off_corpus, n_ensemble=3, **FAST).fit(study, _labels(study))
    assert isinstance(clf.model_, SeedEnsemble) and len(clf.model_.members) == 3
    values, present = clf._prepared_inputs(study)
    with torch.no_grad():
        members = [m(values, present).softmax(-1) for m in clf.model_.members]
    np.testing.assert_allclose(
        clf.predict_proba(study), torch.stack(members).mean(0).double(), atol=1e-5
    )
    loaded = GTLClassifier.load(clf.save(tmp_path / "ensemble"))
    np.testing.assert_array_equal(loaded.predict_proba(study), clf.predict_proba(study))


def test_real_valued_input_is_accepted_only_when_declared(off_corpus, gtl):
    study = gtl.fewshot(12)
    logged = np.log1p(np.asarray(study.X, dtype=float))
    z_scores = (logged - logged.mean(0)) / (logged.std(0) + 1e-3)
    frame = pd.DataFrame(z_scores, index=study.obs_names, columns=study.var_names)
    with pytest.raises(ValueError, match=r"input_scale='real'"):
        GTLClassifier(foundation=off_corpus, **FAST).fit(frame, _labels(study))
    clf = GTLClassifier(foundation=off_corpus, input_scale="real", **FAST)
    proba = clf.fit(frame, _labels(study)).predict_proba(frame)
    assert np.isfinite(proba).all() and proba[:, 1].std() > 0


def test_rank_encoding_ignores_library_size_and_log_scaling():
    rng = np.random.default_rng(0)
    counts = rng.poisson(20, size=(4, 30)).astype(float)
    genes = [f"g{i}" for i in range(30)]
    vocab = GeneVocab(tuple(genes[:20]))
    rank = PreprocessingConfig(value_encoding="rank", input_scale="counts")
    base = prepare_expression(counts, vocab, rank, gene_ids=genes).values
    deeper = counts * np.array([[1.0], [10.0], [0.5], [3.0]])
    np.testing.assert_allclose(
        prepare_expression(deeper, vocab, rank, gene_ids=genes).values, base, atol=1e-6
    )
    logged = PreprocessingConfig(value_encoding="rank", input_scale="real")
    log_values = prepare_expression(np.log2(counts + 1), vocab, logged, gene_ids=genes).values
    np.testing.assert_allclose(log_values, base, atol=1e-6)


def test_stratified_group_kfold_never_splits_a_group():
    y = np.repeat(["a", "b"], 8)
    groups = np.repeat([f"animal{i}" for i in range(8)], 2)
    for split in StratifiedGroupKFoldCV(4).splits(y, groups, seed=0):
        assert not set(groups[split.train]) & set(groups[split.test])
        assert set(y[split.test]) == {"a", "b"}


def test_input_without_the_foundation_genes_is_refused(off_corpus, gtl):
    study = gtl.fewshot(12)
    renamed = study.copy()
    renamed.var_names = [f"other_{gene}" for gene in study.var_names]
    with pytest.raises(ValueError, match=r"Only 0 of \d+ foundation genes"):
        GTLClassifier(foundation=off_corpus, **FAST).fit(renamed, _labels(study))


def test_rank_encoded_foundation_fits_and_predicts(gtl):
    corpus = gtl.design().sample(120, clusters=[1, 2, 3], random_state=6)
    foundation = build_foundation(
        corpus,
        preset=gtl.MICRO_PRESET,
        random_state=0,
        batch_key="cluster",
        preprocessing=PreprocessingConfig(value_encoding="rank"),
    )
    assert foundation.preprocessing.value_encoding == "rank"
    study = gtl.fewshot(12)
    clf = GTLClassifier(foundation=foundation, **FAST).fit(study, _labels(study))
    assert clf.preprocessing_.value_encoding == "rank"
    assert clf.predict_proba(study)[:, 1].std() > 0
