"""gtlomics: Guided Transfer Learning for few-shot bulk RNA-seq, scikit-learn style.

Public names are imported lazily on first access, so ``import gtlomics`` stays fast (torch,
scikit-learn, anndata, umap and scanpy load only when a name that needs them is used).

Examples
--------
>>> import gtlomics
>>> gtlomics.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gtlomics._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from gtlomics.classifier import GTLClassifier, GTLRegressor
    from gtlomics.datasets import SyntheticDesign, make_synthetic_counts
    from gtlomics.expression import GeneVocab, PreprocessingConfig, prepare_expression
    from gtlomics.foundation import (
        Foundation,
        FoundationPreset,
        Provenance,
        build_foundation,
    )
    from gtlomics.nn import EncoderConfig
    from gtlomics.scouts import ClusterScoutGenerator, CousinTask
    from gtlomics.train import GuideValues

__all__ = [
    "ClusterScoutGenerator",
    "CousinTask",
    "EncoderConfig",
    "Foundation",
    "FoundationPreset",
    "GTLClassifier",
    "GTLRegressor",
    "GeneVocab",
    "GuideValues",
    "PreprocessingConfig",
    "Provenance",
    "SyntheticDesign",
    "__version__",
    "build_foundation",
    "make_synthetic_counts",
    "prepare_expression",
]

_HOMES = {
    "ClusterScoutGenerator": "gtlomics.scouts",
    "CousinTask": "gtlomics.scouts",
    "EncoderConfig": "gtlomics.nn",
    "Foundation": "gtlomics.foundation",
    "FoundationPreset": "gtlomics.foundation",
    "GTLClassifier": "gtlomics.classifier",
    "GTLRegressor": "gtlomics.classifier",
    "GeneVocab": "gtlomics.expression",
    "GuideValues": "gtlomics.train",
    "PreprocessingConfig": "gtlomics.expression",
    "Provenance": "gtlomics.foundation",
    "SyntheticDesign": "gtlomics.datasets",
    "build_foundation": "gtlomics.foundation",
    "make_synthetic_counts": "gtlomics.datasets",
    "prepare_expression": "gtlomics.expression",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'gtlomics' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
