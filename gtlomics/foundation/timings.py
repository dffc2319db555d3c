"""Wall time of each phase of the foundation builds run inside :func:`record_build_timings`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["BuildTimings", "record_build_timings", "timed_phase"]


@dataclass
class BuildTimings:
    """Wall-clock seconds of the phases of the builds run inside :func:`record_build_timings`."""

    tasks: float = 0.0
    pretrain: float = 0.0
    scouts: float = 0.0


_TIMINGS: ContextVar[BuildTimings | None] = ContextVar("gtlomics_build_timings", default=None)


@contextmanager
def record_build_timings() -> Iterator[BuildTimings]:
    """Collect the phase wall times of the foundation builds run inside the ``with`` block.

    Examples
    --------
    >>> with record_build_timings() as timings:
    ...     pass  # build_foundation(...) here
    >>> timings.pretrain
    0.0
    """
    timings = BuildTimings()
    token = _TIMINGS.set(timings)
    try:
        yield timings
    finally:
        _TIMINGS.reset(token)


@contextmanager
def timed_phase(phase: str) -> Iterator[None]:
    """Add the block's wall time to ``phase`` of the timings being recorded, if any."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings = _TIMINGS.get()
        if timings is not None:
            setattr(timings, phase, getattr(timings, phase) + time.perf_counter() - start)
