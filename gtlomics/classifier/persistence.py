"""Save and load a fitted ``GTLClassifier`` or ``GTLRegressor`` as a checked directory.

Layout (see :mod:`gtlomics.foundation.storage` for the checksums and atomic write)::

    estimator.json       parameters, task state (classes; target mean and scale), gene ids,
                         vocabulary, preprocessing, encoder config, model layout, history
    model.safetensors    fine-tuned weights (``encoder.…`` / ``head.…``)
    foundation/          the foundation fine-tuning started from (a saved Foundation), if any
    checksums.json
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gtlomics.expression import GeneVocab, PreprocessingConfig
from gtlomics.foundation import Foundation
from gtlomics.foundation.storage import (
    load_tensors,
    read_checked_dir,
    read_json,
    save_tensors,
    write_checked_dir,
    write_json,
)
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
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "load_classifier",
    "load_estimator",
    "save_classifier",
    "save_estimator",
]

FORMAT_NAME = "gtlomics.classifier"
"""Format name of a saved classifier; a regressor's is ``GTLRegressor._FORMAT_NAME``."""
FORMAT_VERSION = 1
_STATE, _MODEL, _FOUNDATION = "estimator.json", "model.safetensors", "foundation"


def save_estimator(estimator: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a fitted estimator to ``path`` (atomically; refuses to overwrite unless asked).

    The directory's format name is the estimator class's ``_FORMAT_NAME``, so a saved regressor
    cannot be loaded as a classifier (or the reverse) by mistake.
    """

    def write(folder: Path) -> None:
        write_json(folder / _STATE, _state_record(estimator))
        save_tensors(folder / _MODEL, estimator.model_.state_dict())
        if estimator.foundation_ is not None:
            estimator.foundation_.save(folder / _FOUNDATION)

    return write_checked_dir(
        path,
        write,
        format_name=estimator._FORMAT_NAME,
        format_version=FORMAT_VERSION,
        overwrite=overwrite,
    )


save_classifier = save_estimator  # the name before regressors existed


def _state_record(estimator: Any) -> dict[str, Any]:
    params = estimator.get_params()
    source = params["foundation"]
    params["foundation"] = str(source) if isinstance(source, (str, os.PathLike)) else None
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None  # a RandomState instance is not saved
    feature_names = getattr(estimator, "feature_names_in_", None)
    array_ids = getattr(estimator, "_array_gene_ids_", None)
    return {
        "params": params,
        "foundation_object": isinstance(source, Foundation),
        **estimator._task_state(),
        "n_features_in": int(estimator.n_features_in_),
        "feature_names_in": None if feature_names is None else [str(n) for n in feature_names],
        "array_gene_ids": None if array_ids is None else list(array_ids),
        "vocab": estimator.vocab_.to_list(),
        "preprocessing": estimator.preprocessing_.to_dict(),
        "encoder": estimator.model_.encoder.config.to_dict(),
        "model": _model_layout(estimator.model_),
        "history": estimator.history_,
    }


def load_estimator(cls: type, path: str | os.PathLike, *, device: str = "cpu") -> Any:
    """Rebuild an estimator of class ``cls`` saved by :func:`save_estimator`, checksums checked."""
    folder = Path(path).expanduser()
    read_checked_dir(folder, format_name=cls._FORMAT_NAME, supported_version=FORMAT_VERSION)
    record = read_json(folder / _STATE)
    foundation = None
    if (folder / _FOUNDATION).is_dir():
        foundation = Foundation.load(folder / _FOUNDATION)
    params = dict(record["params"])
    if record["foundation_object"]:
        params["foundation"] = foundation
    estimator = cls(**params)
    _restore_fitted_state(estimator, record, foundation)
    estimator.model_ = _rebuild_model(record, load_tensors(folder / _MODEL), device)
    estimator.device_ = torch.device(device)
    return estimator


load_classifier = load_estimator  # the name before regressors existed


def _restore_fitted_state(estimator: Any, record: dict, foundation: Foundation | None) -> None:
    estimator._restore_task_state(record)
    estimator.n_features_in_ = record["n_features_in"]
    if record["feature_names_in"] is not None:
        estimator.feature_names_in_ = np.asarray(record["feature_names_in"], dtype=object)
    if record["array_gene_ids"] is not None:
        estimator._array_gene_ids_ = tuple(record["array_gene_ids"])
    estimator.vocab_ = GeneVocab.from_list(record["vocab"])
    estimator.preprocessing_ = PreprocessingConfig.from_dict(record["preprocessing"])
    estimator.history_ = record["history"]
    estimator.foundation_ = foundation


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
