"""The task-agnostic core that ``GTLClassifier`` and ``GTLRegressor`` share.

Everything that does not depend on what is predicted lives here: reading AnnData / DataFrame /
array input, resolving the foundation, the gene vocabulary (encoder tokens, then the study's most
variable genes for the read-out head), per-gene input standardisation, one
:class:`~gtlomics.train.GuidanceConfig`, seed ensembles and fine-tuning. What ``fit`` learns is
one :class:`~gtlomics.classifier.fitted.FittedModel` (``fitted_``): the fitted attributes are
properties over it, and ``save`` / ``load`` / pickling handle it whole.

A task subclass sets class attributes: ``_TASK`` (the task record, ``ClassLabels`` or
``TargetScaling``: its ``fit`` checks and encodes ``y``), ``_SCRATCH_HEAD``, ``_PROBE`` (the
linear-probe start), ``_LOSS`` (:data:`gtlomics.train.config.LOSSES`), ``_ENSEMBLE_COMBINE``
(:class:`~gtlomics.nn.SeedEnsemble`), ``_TARGET_KEY_PARAM`` (the ``adata.obs`` column parameter),
``_FORMAT_NAME`` (of the saved directory); and ``_foundation_model(start, seed)``, the
foundation's model with the task's head.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags, check_array, column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from gtlomics.classifier.fitted import (
    ClassLabels,
    FittedModel,
    TargetScaling,
    fitted_attribute,
)
from gtlomics.classifier.inputs import (
    Table,
    anndata_gene_ids,
    check_non_negative,
    child_seeds,
)
from gtlomics.classifier.standardize import fit_gene_standardization, gene_standardization
from gtlomics.expression import (
    GeneVocab,
    PreprocessingConfig,
    check_overlap,
    prepare_expression,
    read_expression,
    strip_ensembl_version,
)
from gtlomics.expression.table import is_anndata
from gtlomics.foundation import ENV_VAR, Foundation, find_default_foundation
from gtlomics.foundation.auto import auto_foundation
from gtlomics.nn import (
    EncoderConfig,
    ExpressionEncoder,
    GeneReadoutHead,
    GTLModel,
    SeedEnsemble,
)
from gtlomics.train import FinetuneConfig, FinetuneResult, GuidanceConfig, finetune
from gtlomics.train.config import GUIDANCE_MODES
from gtlomics.train.runtime import resolve_device

__all__ = ["SHARED_PARAMETER_CONSTRAINTS", "FitStart", "GTLEstimatorCore"]

logger = logging.getLogger(__name__)

_ACCEPT_SPARSE = ("csr", "csc")  # COO is converted to CSR (it cannot be row-indexed)
_FLOAT_DTYPES = (np.float32, np.float64)

SHARED_PARAMETER_CONSTRAINTS: dict = {
    "foundation": [str, os.PathLike, Foundation, None],
    "guidance": [StrOptions(set(GUIDANCE_MODES))],
    "head": [StrOptions({"readout", "pooled"})],
    "n_readout_genes": [Interval(Integral, 0, None, closed="left")],
    "linear_probe": ["boolean"],
    "standardize": [StrOptions({"study", "foundation"})],
    "input_scale": [StrOptions({"auto", "counts", "log1p", "real"})],
    "n_ensemble": [Interval(Integral, 1, None, closed="left")],
    "guide_strength": [Interval(Real, 0, 1, closed="both")],
    "guide_normalize": [StrOptions({"global", "per_tensor"})],
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
"""Constraints of the parameters both estimators take (each adds its ``adata.obs`` key)."""


@dataclass(frozen=True)
class FitStart:
    """What every ensemble member of one fit starts from (resolved once in ``fit``)."""

    foundation: Foundation | None
    vocab: GeneVocab
    task: ClassLabels | TargetScaling
    guidance: GuidanceConfig
    device: torch.device


class GTLEstimatorCore(BaseEstimator):
    """Shared fit / predict / persistence machinery of the GTL estimators (not used directly).

    Subclasses define ``__init__`` (scikit-learn reads the parameters from its signature), the
    task attributes and ``_foundation_model`` listed in :mod:`gtlomics.classifier.core` and a
    public ``fit`` that calls :meth:`_fit`.
    """

    _TASK: ClassVar[type[ClassLabels] | type[TargetScaling]]
    _SCRATCH_HEAD: ClassVar[type[torch.nn.Module]]
    _PROBE: ClassVar[Callable[..., object]]
    _LOSS: ClassVar[str]
    _ENSEMBLE_COMBINE: ClassVar[str]
    _TARGET_KEY_PARAM: ClassVar[str]
    _FORMAT_NAME: ClassVar[str]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # expression: counts or log1p values
        tags.input_tags.sparse = True
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64"])  # embeddings
        return tags

    # ------------------------------------------------------- fitted attributes

    model_ = fitted_attribute("model", "The fine-tuned torch model (or SeedEnsemble).")
    vocab_ = fitted_attribute("vocab", "Gene inputs: encoder tokens, then read-out genes.")
    preprocessing_ = fitted_attribute("preprocessing", "Preprocessing, input scale resolved.")
    history_ = fitted_attribute("history", "Per-epoch train (and inner validation) loss.")
    foundation_ = fitted_attribute("foundation", "The foundation fine-tuning started from.")
    device_ = fitted_attribute("device", "Device the model runs on.")

    # --------------------------------------------------------------------- fit

    def _fit(self, X: Any, y: Any) -> GTLEstimatorCore:
        """The whole fit: read, encode targets, resolve foundation, vocabulary, fit members."""
        table = self._read_input(X, reset=True)
        targets, labelled = self._read_targets(y, table)
        task, encoded = self._TASK.fit(targets[labelled])
        foundation_seed, model_seed, train_seed = child_seeds(self.random_state, 3)
        device = resolve_device(self.device)
        foundation = self._resolve_foundation(table, labelled, foundation_seed, device)
        table = _name_array_columns(table, foundation)
        vocab, config = self._vocabulary(table, labelled, foundation)
        prepared = prepare_expression(table.matrix, vocab, config, gene_ids=list(table.gene_ids))
        values = torch.as_tensor(prepared.values[labelled], device=device)
        present = torch.as_tensor(prepared.present, device=device)
        guidance = GuidanceConfig(self.guidance, self.guide_normalize, self.guide_strength)
        start = FitStart(foundation, vocab, task, guidance, device)
        members = [
            self._fit_member(start, values, present, encoded, *pair)
            for pair in _member_seeds(model_seed, train_seed, self.n_ensemble)
        ]
        models = [model for model, _ in members]
        combine = self._ENSEMBLE_COMBINE
        self.fitted_ = FittedModel(
            vocab=vocab,
            preprocessing=replace(config, input_scale=prepared.input_scale),
            model=models[0] if len(models) == 1 else SeedEnsemble(models, combine=combine),
            task=task,
            n_features_in=self.n_features_in_,
            feature_names_in=getattr(self, "feature_names_in_", None),
            array_gene_ids=None if table.named else table.gene_ids,
            history=_history_dict(members[0][1]),
            foundation=foundation,
            device=device,
        )
        return self

    def _fit_member(
        self,
        start: FitStart,
        values: torch.Tensor,
        present: torch.Tensor,
        targets: np.ndarray,
        model_seed: int,
        train_seed: int,
    ) -> tuple[GTLModel, FinetuneResult | None]:
        """Build, standardise, probe and fine-tune one model; ``(model, fine-tuning result)``."""
        model, guides = self._initial_model(start, model_seed)
        self._standardize_inputs(model, start, values, present)
        if self.linear_probe:
            self._PROBE(model, values, present, targets, seed=train_seed)
        if self.epochs == 0:
            return model, None
        result = finetune(
            model,
            values,
            targets,
            config=self._finetune_config(),
            seed=train_seed,
            guides=guides,
            guidance=start.guidance,
            present=present,
            progress=self.verbose > 0,
        )
        return model, result

    def _standardize_inputs(
        self, model: GTLModel, start: FitStart, values: torch.Tensor, present: torch.Tensor
    ) -> None:
        """Fit the per-gene input standardisation on the training rows (see ``standardize``)."""
        n_tokens = model.encoder.config.n_genes
        if start.foundation is None or self.standardize == "study":
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
            check_non_negative(matrix, type(self).__name__)
        if hasattr(self, "feature_names_in_"):
            return Table(matrix, tuple(str(name) for name in self.feature_names_in_), None)
        if not reset:
            return Table(matrix, self.fitted_.array_gene_ids, None, named=False)
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
            check_non_negative(matrix, type(self).__name__)
        gene_ids = anndata_gene_ids(adata, self.gene_column)
        if reset:
            self.n_features_in_ = matrix.shape[1]
            self.feature_names_in_ = np.asarray(gene_ids, dtype=object)
        return Table(matrix, gene_ids, adata.obs)

    def _read_targets(self, y: Any, table: Table) -> tuple[np.ndarray, np.ndarray]:
        """``(y, labelled)``: the targets and which samples have one (NaN/None: not fitted)."""
        if y is None:
            y = self._targets_from_obs(table.obs)
        y = column_or_1d(y, warn=True)
        check_consistent_length(table.matrix, y)
        labelled = ~pd.isna(y)
        if not labelled.any():
            raise ValueError(
                f"All {len(y)} labels are missing (NaN/None); fit needs labelled samples."
            )
        return y, labelled

    def _targets_from_obs(self, obs: pd.DataFrame | None) -> np.ndarray:
        key_param = self._TARGET_KEY_PARAM
        key = getattr(self, key_param)
        if obs is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None and X "
                f"is not an AnnData (targets are read from adata.obs[{key_param}] only for "
                "AnnData)."
            )
        if key not in obs.columns:
            raise ValueError(
                f"{key_param}={key!r} is not a column of adata.obs (columns: "
                f"{list(obs.columns)}); pass {key_param}=... or y=..."
            )
        return obs[key].to_numpy(dtype=object)

    def _resolve_foundation(
        self, table: Table, labelled: np.ndarray, seed: int, device: torch.device
    ) -> Foundation | None:
        source = self.foundation
        if source is None or isinstance(source, Foundation):
            return source
        if source != "auto":
            return Foundation.load(source)
        default = find_default_foundation()
        if default is not None:
            return Foundation.load(default)
        logger.info(
            "%s: no default foundation (set %s or run `gtlomics foundation build`); "
            "using a small one built from the %d samples given to fit (%d unlabelled).",
            type(self).__name__,
            ENV_VAR,
            table.matrix.shape[0],
            int((~labelled).sum()),
        )
        return auto_foundation(
            read_expression(table.matrix, gene_ids=list(table.gene_ids)),
            max_genes=self.n_genes,
            random_state=None if self.random_state is None else seed,
            device=device,
            progress=self.verbose > 0,
        ).foundation

    def _vocabulary(
        self, table: Table, labelled: np.ndarray, foundation: Foundation | None
    ) -> tuple[GeneVocab, PreprocessingConfig]:
        """Encoder tokens first, then (read-out head) the study's extra most variable genes."""
        tokens, config = self._token_vocabulary(table, foundation)
        config = replace(config, input_scale=self.input_scale)
        if foundation is not None:  # the encoder's tokens alone, before read-out genes join
            ids = table.gene_ids
            check_overlap(tokens.positions(ids), ids, tokens, config.min_overlap, what="foundation")
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

    def _token_vocabulary(
        self, table: Table, foundation: Foundation | None
    ) -> tuple[GeneVocab, PreprocessingConfig]:
        if foundation is not None:
            return foundation.vocab, foundation.preprocessing
        config = PreprocessingConfig(input_scale=self.input_scale)
        distinct = tuple(dict.fromkeys(strip_ensembl_version(table.gene_ids).tolist()))
        if self.n_genes >= len(distinct):  # every gene is kept: no ranking needed
            return GeneVocab(distinct), config
        vocab = GeneVocab.from_most_variable(
            table.matrix, n_genes=self.n_genes, config=config, gene_ids=list(table.gene_ids)
        )
        return vocab, config

    def _initial_model(
        self, start: FitStart, seed: int
    ) -> tuple[GTLModel, dict[str, torch.Tensor] | None]:
        """The model before fine-tuning and its guides (None: unguided)."""
        encoder_seed, head_seed = child_seeds(seed, 2)
        if start.foundation is None:
            config = self._scratch_encoder_config(min(self.n_genes, len(start.vocab.genes)))
            encoder = ExpressionEncoder(config, seed=encoder_seed)
            head = self._SCRATCH_HEAD(config.d_model, start.task.n_outputs, seed=head_seed)
            return self._with_head(GTLModel(encoder, head), start, head_seed), None
        model = self._with_head(self._foundation_model(start, head_seed), start, head_seed)
        return model, start.foundation.guides_for(model, guidance=start.guidance, seed=head_seed)

    def _with_head(self, model: GTLModel, start: FitStart, seed: int) -> GTLModel:
        """Swap in a read-out head (keeping the pooled part's weights) when ``head="readout"``."""
        if self.head != "readout":
            return model.to(start.device)
        pooled = model.head.linear
        head = GeneReadoutHead(
            pooled.in_features, pooled.out_features, len(start.vocab.genes), seed=seed
        )
        head.linear.load_state_dict(pooled.state_dict())
        return GTLModel(model.encoder, head).to(start.device)

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
            loss=self._LOSS,
        )

    # ----------------------------------------------------------------- predict

    def transform(self, X: Any) -> np.ndarray:
        """Sample embeddings ``(n_samples, d_model)`` of the fine-tuned encoder."""
        check_is_fitted(self)
        return self.fitted_.embeddings(*self._prepared_inputs(X))

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the embeddings of ``X`` (same as ``fit(X, y).transform(X)``)."""
        return self.fit(X, y).transform(X)

    def _outputs(self, X: Any) -> np.ndarray:
        """Raw model outputs ``(n_samples, n_outputs)`` (logits; standardised predictions)."""
        check_is_fitted(self)
        return self.fitted_.outputs(*self._prepared_inputs(X))

    def _prepared_inputs(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The tensors ``model_`` consumes for ``X``: values ``(n, G)`` and presence, on device."""
        table = self._read_input(X, reset=False)
        return self.fitted_.prepare(table.matrix, table.gene_ids)

    # ------------------------------------------------------------- persistence

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if "fitted_" in state:
            state["fitted_"] = state["fitted_"].on_cpu()  # pickles load on any machine
        return state

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the fitted estimator as a checked directory; see :meth:`load`.

        The directory holds the parameters and the :class:`FittedModel` record (format of
        :mod:`gtlomics.classifier.fitted`).
        """
        check_is_fitted(self)
        return self.fitted_.save(
            path, params=self.get_params(), format_name=self._FORMAT_NAME, overwrite=overwrite
        )

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> GTLEstimatorCore:
        """Load an estimator saved by :meth:`save` (any gtlomics version), checksums checked."""
        fitted, params = FittedModel.load(
            path, format_name=cls._FORMAT_NAME, task_type=cls._TASK, device=device
        )
        estimator = cls(**params)
        estimator.fitted_ = fitted
        estimator.n_features_in_ = fitted.n_features_in
        if fitted.feature_names_in is not None:
            estimator.feature_names_in_ = fitted.feature_names_in
        return estimator


def _name_array_columns(table: Table, foundation: Foundation | None) -> Table:
    """Give an unnamed array the foundation's genes when its width matches (vocab order)."""
    if table.named:
        return table
    ids = table.gene_ids
    if (
        foundation is not None
        and foundation.n_genes == len(ids)
        and not set(ids) & set(foundation.vocab.genes)
    ):
        ids = foundation.vocab.genes
    return replace(table, gene_ids=tuple(ids))


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
