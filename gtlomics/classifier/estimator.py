"""``GTLClassifier``: the scikit-learn / AnnData face of guided transfer learning.

The estimator is a thin shell: it reads the input (AnnData, DataFrame or array), resolves the
foundation, aligns the genes to the model's vocabulary with the expression layer and hands the
torch work to :func:`gtlomics.train.finetune`. The three arms of the reference experiment are one
parameter apart::

    GTLClassifier(foundation=None)           # transformer from scratch
    GTLClassifier(guidance="none")           # pre-trained encoder, unguided fine-tuning
    GTLClassifier()                          # GTL: pre-trained + scout-guided fine-tuning
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from gtlomics.classifier.core import SHARED_PARAMETER_CONSTRAINTS, FitStart, GTLEstimatorCore
from gtlomics.classifier.explain import (
    GeneAttributions,
    integrated_gradients,
    write_attributions,
)
from gtlomics.classifier.fitted import ClassLabels, fitted_attribute
from gtlomics.classifier.linear_probe import fit_linear_probe
from gtlomics.expression.table import is_anndata
from gtlomics.foundation import Foundation
from gtlomics.nn import ClassificationHead, GeneReadoutHead, GTLModel

__all__ = ["GTLClassifier"]


class GTLClassifier(ClassifierMixin, GTLEstimatorCore):
    """Few-shot classifier for bulk RNA-seq by guided transfer learning.

    A transformer encoder pre-trained on an unlabelled corpus (the *foundation*) is fine-tuned on
    the labelled samples; every parameter's update is scaled by a guide value learned by scouts
    trained on cousin tasks, so weights the scouts found useful to change stay flexible.

    Parameters
    ----------
    foundation : str, os.PathLike, Foundation, "auto" or None, default="auto"
        Where fine-tuning starts. A saved foundation directory, a :class:`Foundation`, ``"auto"``
        (the user's default foundation, see :func:`gtlomics.foundation.find_default_foundation`;
        when there is none, a small foundation is built from the samples given to ``fit``,
        including those whose label is missing, and one log line says so) or ``None`` (a
        transformer trained from scratch, sized by ``d_model``, ``n_layers``, ``n_heads``,
        ``n_genes``, its per-gene input standardisation fitted on the training samples;
        ``guidance`` is then ignored).
    guidance : {"scouts", "none", "shuffled", "constant"}, default="scouts"
        ``"scouts"`` scales every update by the foundation's guides; ``"none"`` fine-tunes the
        pre-trained model unguided. The two controls keep the guides' amount but not where
        they sit: ``"shuffled"`` permutes the guides within each tensor (seeded),
        ``"constant"`` sets every guide to the mean guide. They tell "which parameters move"
        from "how far everything moves" (parameters without a scout guide keep 1 in all modes).
    guide_strength : float, default=1.0
        0 is unguided, 1 applies the guides fully (the update is scaled by ``1 - s + s * g``).
    guide_normalize : {"global", "per_tensor"}, default="global"
        How raw guides are min-max normalised: over the whole model or per tensor.
    head : {"readout", "pooled"}, default="readout"
        ``"readout"``: the pooled embedding plus a linear read-out of every input gene
        (:class:`~gtlomics.nn.GeneReadoutHead`), so the model can be at least a linear model
        over genes; ``"pooled"``: a linear head on the pooled embedding only.
    n_readout_genes : int, default=2000
        With ``head="readout"``, the read-out also covers the training samples' most variable
        genes of the input (any gene, also outside the foundation's vocabulary): the genes
        follow the study, not the corpus. 0 reads out the encoder's tokens only.
    linear_probe : bool, default=True
        Start the head from an L2 logistic regression on the frozen model's features of the
        training samples, ``C`` chosen by an inner CV of those samples (LP-FT). With
        ``epochs=0`` that probe is the whole model.
    standardize : {"study", "foundation"}, default="study"
        Per-gene input standardisation: ``"study"`` fits centre and scale on the training
        samples (what a foundation built with ``batch_key`` saw for every corpus study);
        ``"foundation"`` keeps the pre-training corpus's. A from-scratch model always uses
        ``"study"``.
    input_scale : {"auto", "counts", "log1p", "real"}, default="auto"
        How input values are read (see :class:`~gtlomics.expression.PreprocessingConfig`):
        ``"counts"`` are library-size normalised and log1p-transformed, ``"log1p"`` (any
        non-negative log-scale matrix) and ``"real"`` (any real values, negatives allowed:
        z-scores, VST, voom, pathway scores) are used as given; ``"auto"`` tells counts from
        log values. Negative values need ``"real"``.
    n_ensemble : int, default=1
        Fine-tune this many seeds and average their probabilities.
    label_key : str, default="condition"
        ``adata.obs`` column holding the labels when ``fit`` gets an AnnData and ``y=None``.
    layer : str or None, default=None
        AnnData layer to read; ``None`` reads ``.X``.
    gene_column : str or None, default=None
        ``adata.var`` column holding gene ids; ``None`` uses ``var_names``.
    epochs : int, default=30
        Fine-tuning epochs (a fixed schedule chosen in advance); 0 keeps the linear probe.
    lr : float, default=3e-4
        Learning rate of fine-tuning. After the linear probe the head already fits, so the step
        is small: 3e-4 beat 1e-3 and 3e-3 on the synthetic protocol of
        ``examples/choose_finetune_schedule.py`` (chosen there, never on a real study).
    batch_size : int, default=8
        Mini-batch size.
    weight_decay : float, default=0.01
        Weight decay of the optimiser.
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        Optimiser; guides scale its update whichever it is.
    early_stopping : bool, default=False
        Stop when the loss on an inner split of the *training* data stops improving.
    validation_fraction : float, default=0.25
        Size of that inner split.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    d_model, n_layers, n_heads : int, default=64, 2, 4
        Shape of the from-scratch encoder (``foundation=None`` only).
    n_genes : int, default=2048
        Vocabulary size of the from-scratch encoder (the most variable training genes); for a
        foundation built by ``"auto"`` a cap on its vocabulary (``AUTO_PRESET``'s 256 genes).
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    random_state : int, RandomState instance or None, default=None
        Seeds the head, the batches and, for ``"auto"``, the foundation build. The same int gives
        bit-identical predictions on CPU; torch's and numpy's global generators are never used.
        On CUDA, training runs under bf16 autocast and some cuBLAS / attention kernels are not
        deterministic, so repeated GPU fits agree only to rounding; predictions of one fitted
        model are computed sample by sample and do not depend on the other samples passed.
    verbose : int, default=0
        0 is quiet; 1 shows progress bars.

    Attributes
    ----------
    n_features_in_ : int
        Number of input features (genes) seen in ``fit``.
    feature_names_in_ : ndarray of str
        Gene ids seen in ``fit`` (AnnData ``var_names`` or DataFrame columns).
    foundation_ : Foundation or None
        The foundation fine-tuning started from.
    vocab_ : GeneVocab
        Gene tokens of the fitted model.
    history_ : dict of str to list of float
        Per-epoch training loss (and inner validation loss with ``early_stopping``).
    device_ : torch.device
        Device the model ran on.
    model_ : GTLModel
        The fine-tuned torch model.

    Examples
    --------
    >>> from gtlomics.datasets import make_synthetic_counts
    >>> adata = make_synthetic_counts(12, n_genes=64, random_state=0)
    >>> clf = GTLClassifier(foundation=None, epochs=2, d_model=8, n_heads=2, random_state=0)
    >>> clf.fit(adata).predict(adata).shape
    (12,)
    """

    _parameter_constraints: dict = {  # noqa: RUF012  (scikit-learn convention)
        **SHARED_PARAMETER_CONSTRAINTS,
        "label_key": [str],
    }
    _TASK = ClassLabels
    _SCRATCH_HEAD = ClassificationHead
    _PROBE = staticmethod(fit_linear_probe)
    _LOSS = "cross_entropy"
    _ENSEMBLE_COMBINE = "probabilities"
    _TARGET_KEY_PARAM = "label_key"
    _FORMAT_NAME = "gtlomics.classifier"

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
        label_key: str = "condition",
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

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> GTLClassifier:
        """Fine-tune on labelled samples.

        Parameters
        ----------
        X : AnnData, DataFrame, ndarray or sparse matrix of shape (n_samples, n_genes)
            Expression: raw counts or log1p-normalised values (see ``PreprocessingConfig``).
            AnnData genes are aligned to the model's vocabulary by id (any order, missing genes
            masked); DataFrames follow scikit-learn's rule (same columns at predict as in fit);
            a plain array with a foundation must have the foundation's genes in vocabulary order.
        y : array-like of shape (n_samples,) or None
            Labels (strings or ints); None reads ``X.obs[label_key]``. Samples whose label is
            missing (NaN/None) are not fine-tuned on; ``foundation="auto"`` uses them as
            unlabelled data for the foundation it builds.

        Returns
        -------
        GTLClassifier
            The fitted estimator.
        """
        return self._fit(X, y)

    classes_ = fitted_attribute(
        "task.classes", "ndarray of shape (n_classes,): class labels, in ``predict_proba``'s order."
    )

    def _foundation_model(self, start: FitStart, seed: int) -> GTLModel:
        """The foundation's model; its head starts from the scouts' when the widths agree."""
        model, _ = start.foundation.make_model(start.task.n_outputs, seed=seed, device=start.device)
        return model

    # -------------------------------------------------------------- predict

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores: logits ``(n_samples, n_classes)``; for two classes the 1-D margin.

        The binary margin is ``logit[1] - logit[0]``: positive means ``classes_[1]``.
        """
        logits = self._outputs(X)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        logits = self._outputs(X)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels ``(n_samples,)``."""
        logits = self._outputs(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def _attribution_baseline(self) -> torch.Tensor:
        """The training samples' mean profile over every model input (standardised zero)."""
        model = self.fitted_.first_member
        if isinstance(model.head, GeneReadoutHead):
            return model.head.readout_center
        return model.encoder.gene_center

    def explain(
        self,
        X: Any,
        *,
        target: Any = None,
        n_steps: int = 32,
        batch_size: int = 32,
        key_added: str | None = None,
    ) -> GeneAttributions:
        """Per-sample, per-gene attributions of the call, by integrated gradients.

        Each gene's attribution is its share of the change in the log-probability of the
        explained class between the baseline (the training samples' mean profile: the
        standardised zero) and the sample; per sample they sum to that change (see
        :mod:`gtlomics.classifier.explain` for the method and why). Every sample is explained on
        its own, so its attributions do not depend on the other samples passed.

        Parameters
        ----------
        X : AnnData, DataFrame, ndarray or sparse matrix of shape (n_samples, n_genes)
            Samples to explain, read like :meth:`predict` reads them.
        target : class label or None, default=None
            Class to explain for every sample; ``None`` explains each sample's predicted class.
        n_steps : int, default=32
            Points on the integration path; raise it when ``convergence_delta`` is large.
        batch_size : int, default=32
            Path points per forward pass (bounds memory).
        key_added : str or None, default=None
            With an AnnData ``X``, also store the result in it (``obsm[key_added]``,
            ``uns[key_added]``, ``obs[key_added + "_target"]``; see
            :func:`~gtlomics.classifier.explain.write_attributions`).

        Returns
        -------
        GeneAttributions
            ``.values`` (samples × vocabulary genes), ``.ranking()`` (per-gene DataFrame, most
            important first), ``.to_frame()``; plot with
            :func:`gtlomics.plotting.plot_top_genes`.
        """
        check_is_fitted(self)
        values, present = self._prepared_inputs(X)
        targets = self._explained_classes(values, present, target)
        attributions, delta = integrated_gradients(
            self.model_,
            values,
            present,
            self._attribution_baseline(),
            torch.as_tensor(targets),
            n_steps=n_steps,
            batch_size=batch_size,
        )
        result = GeneAttributions(
            values=attributions,
            gene_ids=tuple(self.vocab_.genes),
            sample_ids=_sample_ids(X, len(values)),
            target=self.classes_[targets],
            convergence_delta=delta,
            n_steps=n_steps,
        )
        if key_added is not None:
            if not is_anndata(X):
                raise TypeError("key_added= needs an AnnData X; for other inputs use the result.")
            write_attributions(X, result, key_added)
        return result

    def _explained_classes(
        self, values: torch.Tensor, present: torch.Tensor, target: Any
    ) -> np.ndarray:
        """Class index per sample: ``target``'s, or the class :meth:`predict` gives when None."""
        if target is None:
            return np.argmax(self.fitted_.outputs(values, present), axis=1)
        matches = np.flatnonzero(self.classes_ == target)
        if matches.size == 0:
            raise ValueError(
                f"target={target!r} is not one of the classes {list(self.classes_)}; pass one "
                "of those, or target=None to explain each sample's predicted class."
            )
        return np.full(len(values), matches[0])


def _sample_ids(X: Any, n_samples: int) -> tuple[str, ...]:
    """Row names of ``X``: AnnData ``obs_names``, DataFrame index, else ``"0", "1", ...``."""
    names = getattr(X, "obs_names", None)
    if names is None and isinstance(X, pd.DataFrame):
        names = X.index
    if names is None:
        names = range(n_samples)
    return tuple(str(name) for name in names)
