"""Save and load a fitted :class:`~gtlomics.classifier.GTLClassifier` as a checked directory.

Layout (see :mod:`gtlomics.foundation.storage` for the checksums and atomic write)::

    estimator.json       parameters, classes, gene ids, vocabulary, preprocessing, encoder config,
                         training history
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
    SeedEnsemble,
)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_classifier", "save_classifier"]

FORMAT_NAME = "gtlomics.classifier"
FORMAT_VERSION = 1
_STATE, _MODEL, _FOUNDATION = "estimator.json", "model.safetensors", "foundation"


def save_classifier(estimator: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a fitted estimator to ``path`` (atomically; refuses to overwrite unless asked)."""

    def write(folder: Path) -> None:
        write_json(folder / _STATE, _state_record(estimator))
        save_tensors(folder / _MODEL, estimator.model_.state_dict())
        if estimator.foundation_ is not None:
            estimator.foundation_.save(folder / _FOUNDATION)

    return write_checked_dir(
        path, write, format_name=FORMAT_NAME, format_version=FORMAT_VERSION, overwrite=overwrite
    )


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
        "classes": estimator.classes_.tolist(),
        "classes_dtype": estimator.classes_.dtype.str
        if estimator.classes_.dtype != object
        else "O",
        "n_features_in": int(estimator.n_features_in_),
        "feature_names_in": None if feature_names is None else [str(n) for n in feature_names],
        "array_gene_ids": None if array_ids is None else list(array_ids),
        "vocab": estimator.vocab_.to_list(),
        "preprocessing": estimator.preprocessing_.to_dict(),
        "encoder": estimator.model_.encoder.config.to_dict(),
        "model": _model_layout(estimator.model_),
        "history": estimator.history_,
    }


def load_classifier(cls: type, path: str | os.PathLike, *, device: str = "cpu") -> Any:
    """Rebuild an estimator saved by :func:`save_classifier`, after verifying its checksums."""
    folder = Path(path).expanduser()
    read_checked_dir(folder, format_name=FORMAT_NAME, supported_version=FORMAT_VERSION)
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


def _restore_fitted_state(estimator: Any, record: dict, foundation: Foundation | None) -> None:
    dtype = object if record["classes_dtype"] == "O" else np.dtype(record["classes_dtype"])
    estimator.classes_ = np.asarray(record["classes"], dtype=dtype)
    estimator.n_features_in_ = record["n_features_in"]
    if record["feature_names_in"] is not None:
        estimator.feature_names_in_ = np.asarray(record["feature_names_in"], dtype=object)
    if record["array_gene_ids"] is not None:
        estimator._array_gene_ids_ = tuple(record["array_gene_ids"])
    estimator.vocab_ = GeneVocab.from_list(record["vocab"])
    estimator.preprocessing_ = PreprocessingConfig.from_dict(record["preprocessing"])
    estimator.history_ = record["history"]
    estimator.foundation_ = foundation


def _model_layout(model: GTLModel | SeedEnsemble) -> dict[str, int]:
    """What the saved weights need to be rebuilt: members and read-out width (0: pooled head)."""
    members = list(model.members) if isinstance(model, SeedEnsemble) else [model]
    head = members[0].head
    n_readout = head.gene_weight.shape[1] if isinstance(head, GeneReadoutHead) else 0
    return {"n_members": len(members), "n_readout": int(n_readout)}


def _rebuild_model(
    record: dict, state: dict[str, torch.Tensor], device: str
) -> GTLModel | SeedEnsemble:
    config = EncoderConfig.from_dict(record["encoder"])
    layout = record.get("model", {"n_members": 1, "n_readout": 0})  # saved before read-outs
    n_classes = len(record["classes"])

    def member() -> GTLModel:
        if layout["n_readout"]:
            head = GeneReadoutHead(config.d_model, n_classes, layout["n_readout"])
        else:
            head = ClassificationHead(config.d_model, n_classes)
        return GTLModel(ExpressionEncoder(config), head)

    members = [member() for _ in range(layout["n_members"])]
    model = members[0] if len(members) == 1 else SeedEnsemble(members)
    model.load_state_dict(state)
    return model.to(device)
