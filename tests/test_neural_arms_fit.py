"""The neural arms fit their training data with the default schedule (issues 5 and 7).

Before the fix the from-scratch arm fed raw log1p values (identity standardisation) to its value
embedding and output a constant; with lr 1e-3 and batches of 16 a dozen samples gave too few steps
for any arm to leave ln 2. These tests pin the behaviour a user relies on: ``fit`` learns the
training samples.
"""

from __future__ import annotations

import math

import pytest
import torch

from gtlomics import GTLClassifier
from gtlomics.classifier.standardize import MIN_FIT_GENE_STD, fit_gene_standardization
from gtlomics.nn import EncoderConfig, ExpressionEncoder

SMALL = {"d_model": 16, "n_heads": 2, "n_layers": 1}


def _encoder(n_genes: int) -> ExpressionEncoder:
    return ExpressionEncoder(EncoderConfig(n_genes=n_genes, d_model=8, n_heads=2, n_layers=1))


def test_fit_gene_standardization_uses_present_entries_and_floor():
    values = torch.tensor([[1.0, 7.0, 2.0], [3.0, 7.0, 0.0], [5.0, 7.0, 9.0]])
    present = torch.tensor([[True, True, True], [True, True, True], [True, True, False]])
    encoder = _encoder(3)
    fit_gene_standardization(encoder, values, present, min_std=0.5)
    assert torch.allclose(encoder.gene_center, torch.tensor([3.0, 7.0, 1.0]))
    expected_std = torch.tensor([math.sqrt(8 / 3), 0.5, 1.0])  # constant gene → floor
    assert torch.allclose(encoder.gene_scale, expected_std)


def test_scratch_arm_standardizes_on_its_training_samples(gtl):
    study = gtl.fewshot(12)
    clf = GTLClassifier(foundation=None, epochs=1, random_state=0, **SMALL).fit(study)
    encoder = clf.model_.encoder
    assert float(encoder.gene_center.abs().max()) > 1.0  # log1p scale, not the identity's zeros
    assert float(encoder.gene_scale.min()) >= MIN_FIT_GENE_STD - 1e-7
    assert not torch.all(encoder.gene_scale == 1.0)


def test_standardize_foundation_keeps_the_corpus_standardization(gtl, foundation):
    expected = foundation.encoder_state["gene_center"].clone()
    clf = GTLClassifier(foundation=foundation, standardize="foundation", epochs=1, random_state=0)
    clf.fit(gtl.fewshot(12))
    assert torch.equal(clf.model_.encoder.gene_center.cpu(), expected)


def test_default_standardization_is_fitted_on_the_study(gtl, foundation):
    study = gtl.fewshot(12)
    clf = GTLClassifier(foundation=foundation, epochs=1, random_state=0).fit(study)
    assert not torch.equal(
        clf.model_.encoder.gene_center.cpu(), foundation.encoder_state["gene_center"]
    )
    values, _ = clf._prepared_inputs(study)
    n_tokens = clf.model_.encoder.config.n_genes
    torch.testing.assert_close(clf.model_.encoder.gene_center, values[:, :n_tokens].mean(0))


@pytest.mark.parametrize("arm", ["scratch", "pretrained", "gtl"])
def test_default_schedule_fits_the_training_samples(gtl, foundation, arm):
    study = gtl.fewshot(16, random_state=5)
    params = {
        "scratch": {"foundation": None, **SMALL},
        "pretrained": {"foundation": foundation, "guidance": "none"},
        "gtl": {"foundation": foundation},
    }[arm]
    clf = GTLClassifier(random_state=0, **params).fit(study)
    losses = clf.history_["train_loss"]
    assert losses[-1] < 0.5 * math.log(2)  # left the ln 2 plateau
    proba = clf.predict_proba(study)[:, 1]
    assert proba.std() > 0.1  # not a constant output
    assert clf.score(study, study.obs["condition"]) >= 0.9
