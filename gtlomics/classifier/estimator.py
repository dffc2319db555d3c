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

import copy
import logging
import os
from dataclasses import replace
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import TransformerTags, check_array, column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from gtlomics.classifier.explain import (
    GeneAttributions,
    integrated_gradients,
    write_attributions,
)
from gtlomics.classifier.inputs import (
    Table,
    anndata_gene_ids,
    check_non_negative,
    check_token_overlap,
    child_seeds,
    encode_labels,
    is_anndata,
    plain_preprocessing,
    prepare,
)
from gtlomics.classifier.linear_probe import fit_linear_probe
from gtlomics.classifier.standardize import fit_gene_standardization, gene_standardization
from gtlomics.expression import (
    GeneVocab,
    PreprocessingConfig,
    read_expression,
    strip_ensembl_version,
)
from gtlomics.foundation import ENV_VAR, Foundation, find_default_foundation
from gtlomics.nn import (
    ClassificationHead,
    EncoderConfig,
    ExpressionEncoder,
    GeneReadoutHead,
    GTLModel,
    SeedEnsemble,
)
from gtlomics.train import CONTROL_MODES, FinetuneConfig, FinetuneResult, finetune
from gtlomics.train.runtime import resolve_device

__all__ = ["GTLClassifier"]

logger = logging.getLogger(__name__)

_ACCEPT_SPARSE = ("csr", "csc", "coo")
_FLOAT_DTYPES = (np.float32, np.float64)


class GTLClassifier(ClassifierMixin, BaseEstimator):
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
        Vocabulary size of the from-scratch encoder (the most variable training genes) and of a
        foundation built by ``"auto"``.
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
    classes_ : ndarray of shape (n_classes,)
        Class labels.
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
        "foundation": [str, os.PathLike, Foundation, None],
        "guidance": [StrOptions({"scouts", "none", "shuffled", "constant"})],
        "head": [StrOptions({"readout", "pooled"})],
        "n_readout_genes": [Interval(Integral, 0, None, closed="left")],
        "linear_probe": ["boolean"],
        "standardize": [StrOptions({"study", "foundation"})],
        "input_scale": [StrOptions({"auto", "counts", "log1p", "real"})],
        "n_ensemble": [Interval(Integral, 1, None, closed="left")],
        "guide_strength": [Interval(Real, 0, 1, closed="both")],
        "guide_normalize": [StrOptions({"global", "per_tensor"})],
        "label_key": [str],
        "layer": [str, None],
        "gene_column": [str, None],
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions({"adamw", "adam", "sgd"})],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "d_model": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 0, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "n_genes": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

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
        self.foundation = foundation
        self.guidance = guidance
        self.guide_strength = guide_strength
        self.guide_normalize = guide_normalize
        self.head = head
        self.n_readout_genes = n_readout_genes
        self.linear_probe = linear_probe
        self.standardize = standardize
        self.input_scale = input_scale
        self.n_ensemble = n_ensemble
        self.label_key = label_key
        self.layer = layer
        self.gene_column = gene_column
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.n_genes = n_genes
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # expression: counts or log1p values
        tags.input_tags.sparse = True
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64"])  # embeddings
        return tags

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
        table = self._read_input(X, reset=True)
        labels, labelled = self._read_labels(y, table)
        self.classes_, codes = encode_labels(labels[labelled])
        foundation_seed, model_seed, train_seed = child_seeds(self.random_state, 3)
        self.device_ = resolve_device(self.device)
        self.foundation_ = self._resolve_foundation(table, labelled, foundation_seed)
        table = self._name_array_columns(table)
        self.vocab_, config = self._vocabulary(table, labelled)
        prepared = prepare(table, self.vocab_, config)
        self.preprocessing_ = replace(config, input_scale=prepared.input_scale)
        values = torch.as_tensor(prepared.values[labelled], device=self.device_)
        present = torch.as_tensor(prepared.present, device=self.device_)
        members = [
            self._fit_member(values, present, codes, *pair)
            for pair in _member_seeds(model_seed, train_seed, self.n_ensemble)
        ]
        self.model_ = members[0][0] if len(members) == 1 else SeedEnsemble([m for m, _ in members])
        self.history_ = _history_dict(members[0][1])
        return self

    def _fit_member(
        self, values: torch.Tensor, present: torch.Tensor, codes: np.ndarray, model_seed, train_seed
    ) -> tuple[GTLModel, FinetuneResult | None]:
        """Build, standardise, probe and fine-tune one model; ``(model, fine-tuning result)``."""
        model, guides = self._initial_model(len(self.classes_), model_seed)
        self._standardize_inputs(model, values, present)
        if self.linear_probe:
            fit_linear_probe(model, values, present, codes, seed=train_seed)
        if self.epochs == 0:
            return model, None
        result = finetune(
            model,
            values,
            codes,
            config=self._finetune_config(),
            seed=train_seed,
            guides=guides,
            guide_strength=self.guide_strength,
            present=present,
            progress=self.verbose > 0,
        )
        return model, result

    def _standardize_inputs(
        self, model: GTLModel, values: torch.Tensor, present: torch.Tensor
    ) -> None:
        """Fit the per-gene input standardisation on the training rows (see ``standardize``)."""
        n_tokens = model.encoder.config.n_genes
        if self.foundation_ is None or self.standardize == "study":
            fit_gene_standardization(model.encoder, values[:, :n_tokens], present[:n_tokens])
        if isinstance(model.head, GeneReadoutHead):
            center, scale = gene_standardization(values, present)
            model.head.set_readout_standardization(center, scale)

    def _read_input(self, X: Any, *, reset: bool) -> Table:
        if is_anndata(X):
            return self._read_anndata(X, reset=reset)
        matrix = validate_data(
            self, X, reset=reset, accept_sparse=_ACCEPT_SPARSE, dtype=_FLOAT_DTYPES
        )
        if self.input_scale != "real":
            check_non_negative(matrix, "GTLClassifier")
        if hasattr(self, "feature_names_in_"):
            return Table(matrix, tuple(str(name) for name in self.feature_names_in_), None)
        if not reset:
            return Table(matrix, self._array_gene_ids_, None, named=False)
        return Table(matrix, tuple(f"x{i}" for i in range(matrix.shape[1])), None, named=False)

    def _read_anndata(self, adata: Any, *, reset: bool) -> Table:
        if self.layer is not None and self.layer not in adata.layers:
            raise ValueError(
                f"layer={self.layer!r} not found in adata.layers (has {list(adata.layers)}); "
                "pass one of those, or layer=None to read adata.X."
            )
        raw = adata.X if self.layer is None else adata.layers[self.layer]
        matrix = check_array(
            raw, accept_sparse=_ACCEPT_SPARSE, dtype=_FLOAT_DTYPES, estimator=self, input_name="X"
        )
        if self.input_scale != "real":
            check_non_negative(matrix, "GTLClassifier")
        gene_ids = anndata_gene_ids(adata, self.gene_column)
        if reset:
            self.n_features_in_ = matrix.shape[1]
            self.feature_names_in_ = np.asarray(gene_ids, dtype=object)
        return Table(matrix, gene_ids, adata.obs)

    def _name_array_columns(self, table: Table) -> Table:
        """Give an unnamed array the foundation's genes when its width matches (vocab order)."""
        if table.named:
            return table
        ids = table.gene_ids
        foundation = self.foundation_
        if (
            foundation is not None
            and foundation.n_genes == len(ids)
            and not set(ids) & set(foundation.vocab.genes)
        ):
            ids = foundation.vocab.genes
        self._array_gene_ids_ = tuple(ids)
        return replace(table, gene_ids=self._array_gene_ids_)

    def _read_labels(self, y: Any, table: Table) -> tuple[np.ndarray, np.ndarray]:
        if y is None:
            y = self._labels_from_obs(table.obs)
        y = column_or_1d(y, warn=True)
        check_consistent_length(table.matrix, y)
        labelled = ~pd.isna(y)
        if not labelled.any():
            raise ValueError(
                f"All {len(y)} labels are missing (NaN/None); fit needs labelled samples."
            )
        check_classification_targets(y[labelled])
        return y, labelled

    def _labels_from_obs(self, obs: pd.DataFrame | None) -> np.ndarray:
        if obs is None:
            raise ValueError(
                "GTLClassifier requires y to be passed, but the target y is None and X is not "
                "an AnnData (labels are read from adata.obs[label_key] only for AnnData)."
            )
        if self.label_key not in obs.columns:
            raise ValueError(
                f"label_key={self.label_key!r} is not a column of adata.obs (columns: "
                f"{list(obs.columns)}); pass label_key=... or y=..."
            )
        return obs[self.label_key].to_numpy(dtype=object)

    def _resolve_foundation(
        self, table: Table, labelled: np.ndarray, seed: int
    ) -> Foundation | None:
        source = self.foundation
        if source is None or isinstance(source, Foundation):
            return source
        if source != "auto":
            return Foundation.load(source)
        default = find_default_foundation()
        if default is not None:
            return Foundation.load(default)
        return self._build_auto_foundation(table, labelled, seed)

    def _build_auto_foundation(self, table: Table, labelled: np.ndarray, seed: int) -> Foundation:
        from gtlomics.foundation.auto import auto_foundation

        logger.info(
            "GTLClassifier: no default foundation (set %s or run `gtlomics foundation build`); "
            "using a small one built from the %d samples given to fit (%d unlabelled).",
            ENV_VAR,
            table.matrix.shape[0],
            int((~labelled).sum()),
        )
        return auto_foundation(
            read_expression(table.matrix, gene_ids=list(table.gene_ids)),
            max_genes=self.n_genes,
            random_state=None if self.random_state is None else seed,
            device=self.device_,
            progress=self.verbose > 0,
        ).foundation

    def _vocabulary(
        self, table: Table, labelled: np.ndarray
    ) -> tuple[GeneVocab, PreprocessingConfig]:
        """Encoder tokens first, then (read-out head) the study's extra most variable genes."""
        tokens, config = self._token_vocabulary(table)
        config = replace(config, input_scale=self.input_scale)
        if self.foundation_ is not None:
            check_token_overlap(tokens, table.gene_ids, config.min_overlap)
        if self.head != "readout" or self.n_readout_genes == 0:
            return tokens, config
        distinct = tuple(dict.fromkeys(strip_ensembl_version(table.gene_ids).tolist()))
        study = GeneVocab.from_most_variable(
            table.matrix[np.flatnonzero(labelled)],
            n_genes=min(self.n_readout_genes, len(distinct)),
            config=config,
            gene_ids=list(table.gene_ids),
        )
        known = set(tokens.genes)
        extra = tuple(gene for gene in study.genes if gene not in known)
        return GeneVocab(tokens.genes + extra), config

    def _token_vocabulary(self, table: Table) -> tuple[GeneVocab, PreprocessingConfig]:
        if self.foundation_ is not None:
            return self.foundation_.vocab, plain_preprocessing(self.foundation_.preprocessing)
        config = PreprocessingConfig(input_scale=self.input_scale)
        distinct = tuple(dict.fromkeys(strip_ensembl_version(table.gene_ids).tolist()))
        if self.n_genes >= len(distinct):  # every gene is kept: no ranking needed
            return GeneVocab(distinct), config
        vocab = GeneVocab.from_most_variable(
            table.matrix, n_genes=self.n_genes, config=config, gene_ids=list(table.gene_ids)
        )
        return vocab, config

    def _initial_model(
        self, n_classes: int, seed: int
    ) -> tuple[GTLModel, dict[str, torch.Tensor] | None]:
        encoder_seed, head_seed = child_seeds(seed, 2)
        if self.foundation_ is None:
            config = self._scratch_encoder_config(self._n_tokens())
            encoder = ExpressionEncoder(config, seed=encoder_seed)
            head = ClassificationHead(config.d_model, n_classes, seed=head_seed)
            return self._with_head(GTLModel(encoder, head), head_seed), None
        model, _ = self.foundation_.make_model(n_classes, seed=head_seed, device=self.device_)
        model = self._with_head(model, head_seed)
        if self.guidance == "none":
            return model, None
        if self.foundation_.guides is None:
            raise ValueError(
                "This foundation has no guide values (it was built without scouts); pass "
                "guidance='none' to fine-tune it unguided, or rebuild it with scouts."
            )
        control = self.guidance if self.guidance in CONTROL_MODES else None
        guides = self.foundation_.guides_for(
            model, mode=self.guide_normalize, control=control, seed=head_seed
        )
        return model, guides

    def _n_tokens(self) -> int:
        """Encoder tokens: the foundation's vocabulary, or the scratch model's first genes."""
        if self.foundation_ is not None:
            return self.foundation_.n_genes
        return min(self.n_genes, len(self.vocab_.genes))

    def _with_head(self, model: GTLModel, seed: int) -> GTLModel:
        """Swap in a read-out head (keeping the pooled part's weights) when ``head="readout"``."""
        if self.head != "readout":
            return model.to(self.device_)
        pooled = model.head
        head = GeneReadoutHead(
            pooled.linear.in_features, pooled.n_classes, len(self.vocab_.genes), seed=seed
        )
        head.linear.load_state_dict(pooled.linear.state_dict())
        return GTLModel(model.encoder, head).to(self.device_)

    def _scratch_encoder_config(self, n_genes: int) -> EncoderConfig:
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; choose "
                "n_heads that divides d_model (e.g. n_heads=4 with d_model=64)."
            )
        return EncoderConfig(
            n_genes=n_genes, d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads
        )

    def _finetune_config(self) -> FinetuneConfig:
        return FinetuneConfig(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            early_stopping_fraction=self.validation_fraction if self.early_stopping else None,
            patience=self.n_iter_no_change,
        )

    # -------------------------------------------------------------- predict

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores: logits ``(n_samples, n_classes)``; for two classes the 1-D margin.

        The binary margin is ``logit[1] - logit[0]``: positive means ``classes_[1]``.
        """
        logits = self._logits(X)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        logits = self._logits(X)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels ``(n_samples,)``."""
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def transform(self, X: Any) -> np.ndarray:
        """Sample embeddings ``(n_samples, d_model)`` of the fine-tuned encoder."""
        check_is_fitted(self)
        return self._forward(X, self.model_.encoder)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the embeddings of ``X`` (same as ``fit(X, y).transform(X)``)."""
        return self.fit(X, y).transform(X)

    def _attribution_baseline(self) -> torch.Tensor:
        """The training samples' mean profile over every model input (standardised zero)."""
        model = self.model_.members[0] if isinstance(self.model_, SeedEnsemble) else self.model_
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
        targets = self._explained_classes(X, target, len(values))
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

    def _explained_classes(self, X: Any, target: Any, n_samples: int) -> np.ndarray:
        """Class index per sample: ``target``'s, or the class :meth:`predict` gives when None."""
        if target is None:
            return np.argmax(self._logits(X), axis=1)
        matches = np.flatnonzero(self.classes_ == target)
        if matches.size == 0:
            raise ValueError(
                f"target={target!r} is not one of the classes {list(self.classes_)}; pass one "
                "of those, or target=None to explain each sample's predicted class."
            )
        return np.full(n_samples, matches[0])

    def _logits(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self._forward(X, self.model_)

    def _prepared_inputs(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The tensors ``model_`` consumes for ``X``: values ``(n, G)`` and presence, on device."""
        prepared = prepare(self._read_input(X, reset=False), self.vocab_, self.preprocessing_)
        values = torch.as_tensor(prepared.values, device=self.device_)
        present = torch.as_tensor(prepared.present, device=self.device_)
        return values, present

    def _forward(self, X: Any, module: torch.nn.Module) -> np.ndarray:
        """Run ``module`` on each sample alone, in eval mode, without gradients.

        One sample at a time: a sample's output then never depends on which other samples are
        predicted with it (batched matrix kernels round differently for different batch sizes).
        """
        values, present = self._prepared_inputs(X)
        was_training = self.model_.training
        self.model_.eval()
        try:
            with torch.no_grad():
                outputs = [module(values[i : i + 1], present) for i in range(len(values))]
        finally:
            self.model_.train(was_training)
        return torch.cat(outputs).double().cpu().numpy()

    # ------------------------------------------------------------ persistence

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if "model_" in state:
            state["model_"] = _cpu_copy(state["model_"])
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "device_" in state:
            self.device_ = torch.device("cpu")

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the fitted estimator as a checked directory; see :meth:`load`."""
        from gtlomics.classifier.persistence import save_classifier

        check_is_fitted(self)
        return save_classifier(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> GTLClassifier:
        """Load an estimator saved by :meth:`save`, after verifying its checksums."""
        from gtlomics.classifier.persistence import load_classifier

        return load_classifier(cls, path, device=device)


def _member_seeds(model_seed: int, train_seed: int, n_members: int) -> list[tuple[int, int]]:
    """(model, training) seeds of each ensemble member; the first member is the plain fit's."""
    extra = [tuple(child_seeds(seed, 2)) for seed in child_seeds(train_seed, n_members - 1)]
    return [(model_seed, train_seed), *extra]


def _history_dict(result: FinetuneResult | None) -> dict[str, list[float]]:
    if result is None:  # epochs=0: the linear probe alone
        return {"train_loss": []}
    history = {"train_loss": [epoch.train_loss for epoch in result.history]}
    if result.history and result.history[0].inner_val_loss is not None:
        history["inner_val_loss"] = [epoch.inner_val_loss for epoch in result.history]
    return history


def _sample_ids(X: Any, n_samples: int) -> tuple[str, ...]:
    """Row names of ``X``: AnnData ``obs_names``, DataFrame index, else ``"0", "1", ...``."""
    names = getattr(X, "obs_names", None)
    if names is None and isinstance(X, pd.DataFrame):
        names = X.index
    if names is None:
        names = range(n_samples)
    return tuple(str(name) for name in names)


def _cpu_copy(model: torch.nn.Module) -> torch.nn.Module:
    first = next(model.parameters(), None)
    if first is None or first.device.type == "cpu":
        return model
    return copy.deepcopy(model).to("cpu")
