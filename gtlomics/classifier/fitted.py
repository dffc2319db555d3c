"""The fitted state of a GTL estimator as one typed record, and its saved directory.

:class:`FittedModel` is everything ``fit`` learns; the estimators keep their parameters and this
record (``fitted_``), and their fitted attributes (``model_``, ``vocab_``, ``classes_`` ...) read
it. ``save`` / ``load`` write and read it as a checked directory
(:mod:`gtlomics.foundation.storage`: checksums, atomic write)::

    estimator.json       parameters, task state, gene ids, vocabulary, preprocessing, encoder
                         config, model layout, history
    model.safetensors    fine-tuned weights (``encoder.…`` / ``head.…``)
    foundation/          the foundation fine-tuning started from (a saved Foundation), if any
    checksums.json

Layout and keys are format version 1 as first written: earlier saves load unchanged.
"""

from __future__ import annotations

import copy
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.multiclass import check_classification_targets

from gtlomics.expression import GeneVocab, PreprocessingConfig, prepare_expression
from gtlomics.foundation import Foundation, storage
from gtlomics.nn import (
    ClassificationHead,
    EncoderConfig,
    ExpressionEncoder,
    GeneReadoutHead,
    GTLModel,
    RegressionHead,
    SeedEnsemble,
)

__all__ = [
    "FORMAT_VERSION",
    "MIN_TARGET_SCALE",
    "ClassLabels",
    "FittedModel",
    "TargetScaling",
    "fitted_attribute",
    "per_sample",
]

FORMAT_VERSION = 1
MIN_TARGET_SCALE = 1e-12
"""Below this training standard deviation the target is constant and is not divided by."""
STATE_FILE, MODEL_FILE, FOUNDATION_DIR = "estimator.json", "model.safetensors", "foundation"


@dataclass(frozen=True, eq=False)
class ClassLabels:
    """Task state of a classifier: the class labels, in the order of the model's outputs.

    >>> labels, codes = ClassLabels.fit(np.array(["b", "a", "b", "a"]))
    >>> labels.classes.tolist(), codes.tolist()
    (['a', 'b'], [1, 0, 1, 0])
    """

    classes: np.ndarray

    @classmethod
    def fit(cls, y: np.ndarray) -> tuple[ClassLabels, np.ndarray]:
        """Check the labels; return the task state and integer codes ``0..n_classes-1``."""
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"Only one class ({classes[0]!r}) is present in the labels; a classifier needs "
                "at least 2 classes. Check label_key / y."
            )
        counts = np.bincount(codes)
        if counts.min() < 2:
            raise ValueError(
                f"Classes {classes[counts < 2].tolist()} have fewer than 2 labelled samples; every "
                "class needs at least 2. Add samples or merge/drop those classes."
            )
        return cls(classes), codes

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        classes = self.classes
        dtype = classes.dtype.str if classes.dtype != object else "O"
        return {"classes": classes.tolist(), "classes_dtype": dtype}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ClassLabels:
        dtype = object if record["classes_dtype"] == "O" else np.dtype(record["classes_dtype"])
        return cls(np.asarray(record["classes"], dtype=dtype))


@dataclass(frozen=True)
class TargetScaling:
    """Task state of a regressor: the model predicts ``(y - mean) / scale``.

    >>> task, standardized = TargetScaling.fit(np.array([1.0, 3.0]))
    >>> task, standardized.tolist()
    (TargetScaling(mean=2.0, scale=1.0), [-1.0, 1.0])
    """

    mean: float
    scale: float

    @classmethod
    def fit(cls, y: np.ndarray) -> tuple[TargetScaling, np.ndarray]:
        """Check numeric targets; return the task state and the standardised targets."""
        try:
            values = np.asarray(y, dtype=float)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"GTLRegressor needs numeric targets, got values such as {y[:3].tolist()}; "
                "for class labels use GTLClassifier."
            ) from error
        if not np.all(np.isfinite(values)):
            raise ValueError("Input y contains infinity; pass finite targets (NaN: unlabelled).")
        if len(values) < 2:
            raise ValueError(
                f"Only {len(values)} sample has a target; a regressor needs at least 2 (n_samples "
                "= 1 cannot be fitted)."
            )
        mean, scale = float(values.mean()), float(values.std())
        task = cls(mean, scale if scale > MIN_TARGET_SCALE else 1.0)
        return task, (values - task.mean) / task.scale

    n_outputs = 1

    def to_dict(self) -> dict[str, Any]:
        return {"target_mean": self.mean, "target_scale": self.scale}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TargetScaling:
        return cls(float(record["target_mean"]), float(record["target_scale"]))


@dataclass(frozen=True, eq=False)
class FittedModel:
    """What ``fit`` learned; the one record an estimator predicts with, pickles and saves.

    The preprocessing holds the input scale ``fit`` resolved (never ``"auto"``); the task is
    the classes or the target's scaling; ``feature_names_in`` are a named input's gene ids
    (None for arrays), ``array_gene_ids`` those given to a plain array's columns (the
    foundation's genes when the widths match); ``history`` holds per-epoch ``train_loss`` (and
    ``inner_val_loss`` with early stopping).
    """

    vocab: GeneVocab  # encoder tokens, then the read-out head's extra genes
    preprocessing: PreprocessingConfig
    model: GTLModel | SeedEnsemble
    task: ClassLabels | TargetScaling
    n_features_in: int
    feature_names_in: np.ndarray | None
    array_gene_ids: tuple[str, ...] | None
    history: dict[str, list[float]]
    foundation: Foundation | None
    device: torch.device

    @property
    def first_member(self) -> GTLModel:
        """The model, or an ensemble's first member (embeddings, attribution baselines)."""
        return self.model.members[0] if isinstance(self.model, SeedEnsemble) else self.model

    def prepare(
        self, matrix: np.ndarray | sp.spmatrix, gene_ids: tuple[str, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs for a matrix read from the user: values ``(n, G)`` and presence."""
        prepared = prepare_expression(
            matrix, self.vocab, self.preprocessing, gene_ids=list(gene_ids)
        )
        values = torch.as_tensor(prepared.values, device=self.device)
        return values, torch.as_tensor(prepared.present, device=self.device)

    def outputs(self, values: torch.Tensor, present: torch.Tensor) -> np.ndarray:
        """Raw outputs ``(n_samples, n_outputs)``: logits, or standardised predictions."""
        return per_sample(self.model, self.model, values, present)

    def embeddings(self, values: torch.Tensor, present: torch.Tensor) -> np.ndarray:
        """Pooled embeddings ``(n_samples, d_model)`` of the (first member's) encoder."""
        return per_sample(self.model, self.first_member.embedding, values, present)

    def on_cpu(self) -> FittedModel:
        """This record with the model on the CPU (a copy when it was elsewhere): for pickling."""
        model = self.model
        first = next(model.parameters(), None)
        if first is not None and first.device.type != "cpu":
            model = copy.deepcopy(model).to("cpu")
        return replace(self, model=model, device=torch.device("cpu"))

    # ------------------------------------------------------------ persistence

    def to_record(self, params: dict[str, Any]) -> dict[str, Any]:
        """The JSON record of ``estimator.json`` (the weights are saved beside it)."""
        params = dict(params)
        source = params["foundation"]
        params["foundation"] = str(source) if isinstance(source, (str, os.PathLike)) else None
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None  # a RandomState instance is not saved
        names = self.feature_names_in
        return {
            "params": params,
            "foundation_object": isinstance(source, Foundation),
            **self.task.to_dict(),
            "n_features_in": int(self.n_features_in),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "array_gene_ids": None if self.array_gene_ids is None else list(self.array_gene_ids),
            "vocab": self.vocab.to_list(),
            "preprocessing": self.preprocessing.to_dict(),
            "encoder": self.model.encoder.config.to_dict(),
            "model": _model_layout(self.model),
            "history": self.history,
        }

    def save(
        self,
        path: str | os.PathLike,
        *,
        params: dict[str, Any],
        format_name: str,
        overwrite: bool = False,
    ) -> Path:
        """Write the record and the estimator's ``params`` to ``path`` (atomically).

        ``format_name`` tells a saved classifier from a saved regressor, so neither loads as
        the other by mistake.
        """

        def write(folder: Path) -> None:
            storage.write_json(folder / STATE_FILE, self.to_record(params))
            storage.save_tensors(folder / MODEL_FILE, self.model.state_dict())
            if self.foundation is not None:
                self.foundation.save(folder / FOUNDATION_DIR)

        return storage.write_checked_dir(
            path, write, format_name=format_name, format_version=FORMAT_VERSION, overwrite=overwrite
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        format_name: str,
        task_type: type[ClassLabels] | type[TargetScaling],
        device: str = "cpu",
    ) -> tuple[FittedModel, dict[str, Any]]:
        """Read a directory written by :meth:`save`, checksums checked: ``(record, params)``.

        ``params["foundation"]`` is the loaded :class:`Foundation` when the estimator was given
        one as an object.
        """
        folder = Path(path).expanduser()
        storage.read_checked_dir(folder, format_name=format_name, supported_version=FORMAT_VERSION)
        record = storage.read_json(folder / STATE_FILE)
        saved = folder / FOUNDATION_DIR
        foundation = Foundation.load(saved) if saved.is_dir() else None
        params = dict(record["params"])
        if record["foundation_object"]:
            params["foundation"] = foundation
        names = record["feature_names_in"]
        array_ids = record["array_gene_ids"]
        fitted = cls(
            vocab=GeneVocab.from_list(record["vocab"]),
            preprocessing=PreprocessingConfig.from_dict(record["preprocessing"]),
            model=_rebuild_model(record, storage.load_tensors(folder / MODEL_FILE), device),
            task=task_type.from_dict(record),
            n_features_in=record["n_features_in"],
            feature_names_in=None if names is None else np.asarray(names, dtype=object),
            array_gene_ids=None if array_ids is None else tuple(array_ids),
            history=record["history"],
            foundation=foundation,
            device=torch.device(device),
        )
        return fitted, params


def per_sample(
    model: torch.nn.Module,
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    values: torch.Tensor,
    present: torch.Tensor,
) -> np.ndarray:
    """``forward`` (a function of ``model``) on each sample alone, ``model`` in eval mode.

    One sample at a time: a sample's output then never depends on which other samples are
    passed with it (batched matrix kernels round differently for different batch sizes).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            rows = [forward(values[i : i + 1], present) for i in range(len(values))]
    finally:
        model.train(was_training)
    return torch.cat(rows).double().cpu().numpy()


def fitted_attribute(path: str, doc: str) -> property:
    """A read-only estimator attribute reading ``estimator.fitted_.<path>`` (dotted path).

    Unfitted, reading it raises ``AttributeError``, so ``hasattr`` is False as scikit-learn
    expects of fitted attributes.
    """
    return property(operator.attrgetter(f"fitted_.{path}"), doc=doc)


def _model_layout(model: GTLModel | SeedEnsemble) -> dict[str, Any]:
    """What the saved weights need to be rebuilt: members, read-out width (0: pooled head),
    outputs, pooled head type and how an ensemble combines its members."""
    ensemble = isinstance(model, SeedEnsemble)
    members = list(model.members) if ensemble else [model]
    head = members[0].head
    n_readout = head.gene_weight.shape[1] if isinstance(head, GeneReadoutHead) else 0
    return {
        "n_members": len(members),
        "n_readout": int(n_readout),
        "n_outputs": int(head.linear.out_features),
        "regression": isinstance(head, RegressionHead),
        "combine": model.combine if ensemble else "probabilities",
    }


def _rebuild_model(
    record: dict, state: dict[str, torch.Tensor], device: str
) -> GTLModel | SeedEnsemble:
    config = EncoderConfig.from_dict(record["encoder"])
    layout = record.get("model", {"n_members": 1, "n_readout": 0})  # saved before read-outs
    n_outputs = layout.get("n_outputs", len(record.get("classes", ())))  # saved before regressors
    pooled_head = RegressionHead if layout.get("regression", False) else ClassificationHead

    def member() -> GTLModel:
        if layout["n_readout"]:
            head = GeneReadoutHead(config.d_model, n_outputs, layout["n_readout"])
        else:
            head = pooled_head(config.d_model, n_outputs)
        return GTLModel(ExpressionEncoder(config), head)

    members = [member() for _ in range(layout["n_members"])]
    combine = layout.get("combine", "probabilities")
    model = members[0] if len(members) == 1 else SeedEnsemble(members, combine=combine)
    model.load_state_dict(state)
    return model.to(device)
