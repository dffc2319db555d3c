"""Foundations: a pre-trained, scouted encoder and everything needed to fine-tune it.

* :class:`Foundation` (record, save/load, model rebuild) — :mod:`gtlomics.foundation.record`
* :func:`build_foundation` (the build pipeline, in memory or from an ``.h5ad`` larger than
  memory, one process or ``torchrun``) — :mod:`gtlomics.foundation.build`
* phase wall times of builds — :mod:`gtlomics.foundation.timings`
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
from gtlomics.foundation.timings import BuildTimings, record_build_timings

__all__ = [
    "ENV_VAR",
    "FORMAT_VERSION",
    "PRESETS",
    "BuildTimings",
    "CousinTaskSettings",
    "Foundation",
    "FoundationIntegrityError",
    "FoundationPreset",
    "FoundationVersionError",
    "Provenance",
    "build_foundation",
    "default_foundation_dir",
    "find_default_foundation",
    "get_preset",
    "record_build_timings",
]
