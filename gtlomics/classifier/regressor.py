"""``GTLRegressor``: guided transfer learning for a continuous target (age, dose, time).

The same foundation, guides, read-out head, input standardisation, seed ensembles and persistence
as :class:`~gtlomics.classifier.GTLClassifier` (all in :mod:`gtlomics.classifier.core`); what
differs is the task: one output, a mean-squared-error loss, a ridge-regression probe as the start
of fine-tuning, ensembles that average predictions, and targets standardised inside ``fit``
(training mean and standard deviation) and mapped back in ``predict``::

    GTLRegressor(foundation=None)           # transformer from scratch
    GTLRegressor(guidance="none")           # pre-trained encoder, unguided fine-tuning
    GTLRegressor()                          # GTL: pre-trained + scout-guided fine-tuning
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin, _fit_context

from gtlomics.classifier.core import SHARED_PARAMETER_CONSTRAINTS, FitStart, GTLEstimatorCore
from gtlomics.classifier.fitted import TargetScaling, fitted_attribute
from gtlomics.classifier.linear_probe import fit_ridge_probe
from gtlomics.foundation import Foundation
from gtlomics.nn import GTLModel, RegressionHead

__all__ = ["GTLRegressor"]


class GTLRegressor(RegressorMixin, GTLEstimatorCore):
    """Few-shot regressor for bulk RNA-seq by guided transfer learning.

    Parameters mean what they mean for :class:`~gtlomics.classifier.GTLClassifier`, with the
    same defaults; those that differ for regression come first.

    Parameters
    ----------
    foundation : str, os.PathLike, Foundation, "auto" or None, default="auto"
        Where fine-tuning starts (``None``: a transformer from scratch). The foundation's scout
        head is a classifier, so the regression head starts fresh (seeded) and its guides are 1.
    linear_probe : bool, default=True
        Start the head from a ridge regression on the frozen model's features of the training
        samples, ``alpha`` chosen by an inner 3-fold CV of those samples
        (:class:`~gtlomics.linear.InnerCVRidge`). With ``epochs=0`` that ridge is the model.
    n_ensemble : int, default=1
        Fine-tune this many seeds and average their predictions.
    target_key : str, default="target"
        ``adata.obs`` column holding the target when ``fit`` gets an AnnData and ``y=None``.
    epochs : int, default=30
        Fine-tuning epochs of mean squared error on the standardised target.
    random_state : int, RandomState instance or None, default=None
        Seeds everything random; the same int gives bit-identical predictions on CPU.
    guidance, guide_strength, guide_normalize, head, n_readout_genes, standardize, input_scale
        As for :class:`~gtlomics.classifier.GTLClassifier` (same options and defaults).
    layer, gene_column, lr, batch_size, weight_decay, optimizer, early_stopping
        As for :class:`~gtlomics.classifier.GTLClassifier` (same options and defaults).
    validation_fraction, n_iter_no_change, d_model, n_layers, n_heads, n_genes, device, verbose
        As for :class:`~gtlomics.classifier.GTLClassifier` (same options and defaults).

    Attributes
    ----------
    target_mean_, target_scale_ : float
        Mean and standard deviation of the training targets: the model is fitted to
        ``(y - target_mean_) / target_scale_`` and ``predict`` maps its output back.
    n_features_in_, feature_names_in_, foundation_, vocab_, history_, device_, model_
        As for :class:`~gtlomics.classifier.GTLClassifier`.

    Examples
    --------
    >>> from gtlomics.datasets import make_synthetic_counts
    >>> adata = make_synthetic_counts(12, n_genes=64, random_state=0)
    >>> y = np.arange(12.0)
    >>> reg = GTLRegressor(foundation=None, epochs=2, d_model=8, n_heads=2, random_state=0)
    >>> reg.fit(adata, y).predict(adata).shape
    (12,)
    """

    _parameter_constraints: dict = {  # noqa: RUF012  (scikit-learn convention)
        **SHARED_PARAMETER_CONSTRAINTS,
        "target_key": [str],
    }
    _TASK = TargetScaling
    _SCRATCH_HEAD = RegressionHead
    _PROBE = staticmethod(fit_ridge_probe)
    _LOSS = "mse"
    _ENSEMBLE_COMBINE = "mean"
    _TARGET_KEY_PARAM = "target_key"
    _FORMAT_NAME = "gtlomics.regressor"

    def __init__(
        self,
        *,
        foundation: str | os.PathLike | Foundation | None = "auto",
        guidance: str = "scouts",
        guide_strength: float = 1.0,
        guide_normalize: str = "global",
        head: str = "readout",
        n_readout_genes: int = 2000,
        linear_probe: bool = True,
        standardize: str = "study",
        input_scale: str = "auto",
        n_ensemble: int = 1,
        target_key: str = "target",
        layer: str | None = None,
        gene_column: str | None = None,
        epochs: int = 30,
        lr: float = 3e-4,
        batch_size: int = 8,
        weight_decay: float = 0.01,
        optimizer: str = "adamw",
        early_stopping: bool = False,
        validation_fraction: float = 0.25,
        n_iter_no_change: int = 5,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        n_genes: int = 2048,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        vars(self).update((name, value) for name, value in locals().items() if name != "self")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> GTLRegressor:
        """Fine-tune on samples with a continuous target.

        Parameters
        ----------
        X : AnnData, DataFrame, ndarray or sparse matrix of shape (n_samples, n_genes)
            Expression, read as :meth:`GTLClassifier.fit` reads it.
        y : array-like of shape (n_samples,) or None
            Numeric targets; None reads ``X.obs[target_key]``. Samples whose target is missing
            (NaN/None) are not fine-tuned on; ``foundation="auto"`` uses them as unlabelled
            data for the foundation it builds.

        Returns
        -------
        GTLRegressor
            The fitted estimator.
        """
        return self._fit(X, y)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets ``(n_samples,)`` in the units of the training ``y``."""
        standardized = self._outputs(X)[:, 0]
        return standardized * self.target_scale_ + self.target_mean_

    target_mean_ = fitted_attribute("task.mean", "Mean of the training targets.")
    target_scale_ = fitted_attribute("task.scale", "Their standard deviation (1 if constant).")

    def _foundation_model(self, start: FitStart, seed: int) -> GTLModel:
        """The pre-trained encoder with a fresh one-output head (scouts trained classifiers)."""
        encoder = start.foundation.make_encoder()
        head = RegressionHead(start.foundation.encoder_config.d_model, 1, seed=seed)
        return GTLModel(encoder, head).to(start.device)
