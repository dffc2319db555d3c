"""Training histories of neural arms, kept for diagnostic learning curves only.

A history is never used to pick an epoch: the curves show how training went on the fixed schedule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["TrainingHistory", "history_frame"]


@dataclass(frozen=True)
class TrainingHistory:
    """Per-epoch records of one fitted neural arm.

    Parameters
    ----------
    arm, repeat, fold
        Which fit it came from.
    frame
        One row per epoch; numeric columns such as ``loss`` (an ``epoch`` column when known).
    """

    arm: str
    repeat: int
    fold: int
    frame: pd.DataFrame


def history_frame(history) -> pd.DataFrame | None:
    """Turn an estimator's ``history_`` into a DataFrame with one row per epoch.

    Accepts a DataFrame, a mapping of equal-length lists, a sequence of per-epoch mappings or
    dataclasses, an object with ``to_frame()``, or a dataclass whose list fields are per epoch.
    Returns None when there is no history.
    """
    if history is None:
        return None
    if isinstance(history, pd.DataFrame):
        frame = history.copy()
    elif hasattr(history, "to_frame"):
        frame = history.to_frame()
    elif isinstance(history, Mapping) or dataclasses.is_dataclass(history):
        frame = pd.DataFrame(_per_epoch_columns(_as_mapping(history)))
    elif isinstance(history, Sequence):
        frame = pd.DataFrame([_as_mapping(row) for row in history])
    else:
        raise TypeError(f"Cannot read a training history of type {type(history).__name__}.")
    if "epoch" not in frame.columns:
        frame.insert(0, "epoch", range(1, len(frame) + 1))
    return frame


def _per_epoch_columns(columns: Mapping) -> dict:
    """Keep the list-valued entries of the longest length (the per-epoch series)."""
    series = {k: list(v) for k, v in columns.items() if _is_series(v)}
    if not series:
        return {}
    n_epochs = max(len(v) for v in series.values())
    return {k: v for k, v in series.items() if len(v) == n_epochs}


def _is_series(value) -> bool:
    return isinstance(value, Sequence | pd.Series | np.ndarray) and not isinstance(value, str)


def _as_mapping(row) -> Mapping:
    if dataclasses.is_dataclass(row):
        return dataclasses.asdict(row)
    if isinstance(row, Mapping):
        return row
    return {"loss": float(row)}
