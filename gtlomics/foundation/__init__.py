"""Foundations: a pre-trained, scouted encoder and everything needed to fine-tune it.

* :class:`Foundation` (record, save/load, model rebuild) — :mod:`gtlomics.foundation.record`
* :func:`build_foundation` (the build pipeline) — :mod:`gtlomics.foundation.build`
* :func:`build_foundation_streaming` (the same from an ``.h5ad`` larger than memory) —
  :mod:`gtlomics.foundation.streaming_build`
* size presets — :mod:`gtlomics.foundation.presets`
* checked directories (atomic save, checksums, versions) — :mod:`gtlomics.foundation.storage`
* the user's default foundation — :mod:`gtlomics.foundation.default`
* the cached foundation ``GTLClassifier(foundation="auto")`` builds without one —
  :mod:`gtlomics.foundation.auto`
"""

from gtlomics.foundation.build import build_foundation
from gtlomics.foundation.default import ENV_VAR, default_foundation_dir, find_default_foundation
from gtlomics.foundation.presets import PRESETS, CousinTaskSettings, FoundationPreset, get_preset
from gtlomics.foundation.record import FORMAT_VERSION, Foundation, Provenance
from gtlomics.foundation.storage import FoundationIntegrityError, FoundationVersionError
from gtlomics.foundation.streaming_build import build_foundation_streaming

__all__ = [
    "ENV_VAR",
    "FORMAT_VERSION",
    "PRESETS",
    "CousinTaskSettings",
    "Foundation",
    "FoundationIntegrityError",
    "FoundationPreset",
    "FoundationVersionError",
    "Provenance",
    "build_foundation",
    "build_foundation_streaming",
    "default_foundation_dir",
    "find_default_foundation",
    "get_preset",
]
