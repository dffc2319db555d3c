"""Where the user's default foundation lives (what ``foundation="auto"`` loads).

Lookup order:

1. the environment variable ``GTLOMICS_FOUNDATION`` (a saved foundation directory); when it is set
   the directory must exist;
2. ``$XDG_CACHE_HOME/gtlomics/foundations/default`` (``~/.cache/...`` without ``XDG_CACHE_HOME``),
   which ``gtlomics foundation build`` fills; used only when it exists.

When neither gives a directory there is no default foundation, and ``GTLClassifier`` builds a small
one from the samples passed to ``fit`` (or reuses it: :mod:`gtlomics.foundation.auto`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "default_foundation_dir", "find_default_foundation"]

ENV_VAR = "GTLOMICS_FOUNDATION"


def default_foundation_dir() -> Path:
    """The cache folder ``gtlomics foundation build`` writes the default foundation to."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "gtlomics" / "foundations" / "default"


def find_default_foundation() -> Path | None:
    """The user's default foundation directory, or None when there is none.

    Raises
    ------
    FileNotFoundError
        ``GTLOMICS_FOUNDATION`` is set but names no directory.
    """
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"{ENV_VAR}={configured!r} names no directory. Point it at a saved foundation "
                f"(`gtlomics foundation build ...`), or unset it to use {default_foundation_dir()}."
            )
        return path
    cached = default_foundation_dir()
    return cached if cached.is_dir() else None
