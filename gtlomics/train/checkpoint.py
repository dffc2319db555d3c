"""Atomic checkpoints of training state, so interrupted runs resume bit-identically.

A checkpoint is one ``torch.save`` file holding plain tensors, numbers, strings, lists and dicts
(loaded with ``weights_only=True``). It is written to a temporary file in the target directory,
flushed with ``fsync`` and moved into place with ``os.replace``: a kill at any moment leaves either
the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_checkpoint", "run_fingerprint", "save_checkpoint"]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, *, fingerprint: str) -> dict[str, Any] | None:
    """Load the state at ``path``, or ``None`` when there is none.

    Raises
    ------
    ValueError
        When the checkpoint was written by a run with other settings (``fingerprint`` differs).
    """
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"Checkpoint {path} was written by a run with different settings, data or seed; "
            "delete it or choose another checkpoint path."
        )
    return state


def run_fingerprint(
    kind: str, config: object, seed: int, values: torch.Tensor, extra: str = ""
) -> str:
    """Identify a run by its kind, config, seed, data shape and checksum (and ``extra``)."""
    checksum = float(values.double().sum()) if values.numel() else 0.0
    return f"{kind}|{config!r}|seed={seed}|shape={tuple(values.shape)}|sum={checksum!r}|{extra}"
