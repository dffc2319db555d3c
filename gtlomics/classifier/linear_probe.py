"""Linear probe: start a model's head from a tuned linear model (the LP of LP-FT).

A linear model, its regularisation chosen by an inner CV of the training samples only, is fitted
on the frozen model's features of the training samples: the pooled embedding, plus every read-out
gene's standardised value when the head is a :class:`~gtlomics.nn.GeneReadoutHead`. Classifiers
use an L2 logistic regression (:func:`fit_linear_probe`), regressors a ridge regression
(:func:`fit_ridge_probe`). Its coefficients become the head's weights, so before fine-tuning the
model predicts exactly what the linear model predicts. Fine-tuning starts from a good head instead
of a random one, which is what keeps a dozen samples from distorting the pre-trained features
(Kumar et al. 2022, "Fine-tuning can distort pretrained features and underperform
out-of-distribution").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gtlomics.classifier.fitted import per_sample
from gtlomics.linear import InnerCVLogisticRegression, InnerCVRidge
from gtlomics.nn import GeneReadoutHead, GTLModel

__all__ = ["LinearProbe", "RidgeProbe", "fit_linear_probe", "fit_ridge_probe", "probe_features"]


@dataclass(frozen=True)
class LinearProbe:
    """What the probe chose: the inverse regularisation ``C`` and whether inner CV ran."""

    C: float
    inner_cv_used: bool
    n_features: int


@dataclass(frozen=True)
class RidgeProbe:
    """What the ridge probe chose: the penalty ``alpha`` and whether inner CV ran."""

    alpha: float
    inner_cv_used: bool
    n_features: int


def probe_features(model: GTLModel, values: torch.Tensor, present: torch.Tensor) -> np.ndarray:
    """``(n, F)`` features the head reads: pooled embedding, then standardised read-out genes.

    The model runs in eval mode (no dropout), one sample at a time, so a sample's features do
    not depend on the others passed.
    """
    return per_sample(model, lambda row, mask: _features_of(model, row, mask), values, present)


def _features_of(model: GTLModel, values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    pooled = model.embedding(values, present).float()
    if not isinstance(model.head, GeneReadoutHead):
        return pooled
    return torch.cat([pooled, model.head.standardized(values, present).float()], dim=1)


def fit_linear_probe(
    model: GTLModel,
    values: torch.Tensor,
    present: torch.Tensor,
    codes: np.ndarray,
    *,
    seed: int,
) -> LinearProbe:
    """Fit the probe on training rows and copy it into ``model.head`` in place.

    Parameters
    ----------
    model : GTLModel
        Its head (``linear`` and, for a read-out head, ``gene_weight``) is overwritten.
    values, present : Tensor
        Training inputs as the model consumes them.
    codes : ndarray
        Integer classes ``0..C-1`` of the training rows.
    seed : int
        Seed of the inner-CV fold shuffle.

    Returns
    -------
    LinearProbe
    """
    features = probe_features(model, values, present)
    probe = InnerCVLogisticRegression(random_state=seed).fit(features, codes)
    estimator = probe.estimator_
    weight, bias = _as_logit_weights(estimator.coef_, estimator.intercept_, len(np.unique(codes)))
    _copy_into_head(model, torch.from_numpy(weight), torch.from_numpy(bias))
    return LinearProbe(probe.C_, probe.inner_cv_used_, features.shape[1])


def fit_ridge_probe(
    model: GTLModel,
    values: torch.Tensor,
    present: torch.Tensor,
    targets: np.ndarray,
    *,
    seed: int,
) -> RidgeProbe:
    """Fit a ridge regression (``alpha`` by inner CV) on training rows; copy it into the head.

    Parameters
    ----------
    model, values, present, seed
        As for :func:`fit_linear_probe`; ``model`` has one output.
    targets : ndarray
        ``(n,)`` continuous targets of the training rows (standardised by the regressor).

    Returns
    -------
    RidgeProbe
    """
    features = probe_features(model, values, present)
    probe = InnerCVRidge(random_state=seed).fit(features, targets)
    estimator = probe.estimator_
    weight = torch.from_numpy(np.asarray(estimator.coef_, dtype=np.float64).reshape(1, -1))
    bias = torch.tensor([float(estimator.intercept_)], dtype=torch.float64)
    _copy_into_head(model, weight, bias)
    return RidgeProbe(probe.alpha_, probe.inner_cv_used_, features.shape[1])


def _as_logit_weights(
    coef: np.ndarray, intercept: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class logit weights ``(C, F)`` and biases ``(C,)`` giving the same probabilities.

    A binary logistic regression has one row ``w``; logits ``(−w/2, +w/2)`` have the same softmax.
    """
    if n_classes == 2 and coef.shape[0] == 1:
        return np.vstack([-coef / 2, coef / 2]), np.r_[-intercept / 2, intercept / 2]
    return coef, intercept


@torch.no_grad()
def _copy_into_head(model: GTLModel, weight: torch.Tensor, bias: torch.Tensor) -> None:
    head = model.head
    linear = head.linear
    d_model = linear.weight.shape[1]
    linear.weight.copy_(weight[:, :d_model].to(linear.weight))
    linear.bias.copy_(bias.to(linear.bias))
    if isinstance(head, GeneReadoutHead):
        head.gene_weight.copy_(weight[:, d_model:].to(head.gene_weight))
