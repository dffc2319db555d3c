"""Which trainers a foundation build runs: one process, or sharded over a ``torchrun`` job.

:func:`~gtlomics.foundation.build_foundation` asks :meth:`BuildTrainers.current` once. Without
an initialised ``torch.distributed`` process group (or with one process) it gets the
single-process :func:`~gtlomics.train.pretrain` and :func:`~gtlomics.train.train_scouts`, so
numbers are those of a plain build. With ``world_size > 1`` pre-training runs under
:func:`~gtlomics.train.distributed.pretrain_ddp`, the cousin tasks are drawn on rank 0 and
broadcast, and the scouts are sharded with
:func:`~gtlomics.train.distributed.train_scouts_sharded`; every rank ends with the same weights
and guides.
Checkpoints pass through in both cases: the sharded trainers save one scout file per rank and
one pre-training file from rank 0 (:mod:`gtlomics.train.distributed`).

:func:`record_build_timings` collects the wall time of each phase (for scripts and benchmarks).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gtlomics.nn import ExpressionEncoder
from gtlomics.train import (
    CheckpointConfig,
    GuideValues,
    PretrainConfig,
    PretrainResult,
    ScoutConfig,
    ScoutResult,
    pretrain,
    train_scouts,
)

distributed = importlib.import_module("gtlomics.train.distributed")

CPU = torch.device("cpu")

__all__ = ["BuildTimings", "BuildTrainers", "record_build_timings"]


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
def _timed(phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings = _TIMINGS.get()
        if timings is not None:
            setattr(timings, phase, getattr(timings, phase) + time.perf_counter() - start)


@dataclass(frozen=True)
class BuildTrainers:
    """The trainers of one build, chosen from this process's place in the process group.

    Parameters
    ----------
    context : DistributedContext
        Rank, world size and device (:func:`~gtlomics.train.distributed.process_group_context`).
    single_pretrain, single_scouts : callable
        The single-process trainers (:func:`~gtlomics.train.pretrain`,
        :func:`~gtlomics.train.train_scouts`); the builder passes its own module names so
        that they stay the place to intercept a single-process build.
    device : torch.device
        Where training runs: the asked-for device in one process, the rank's device
        (``context.device``) under a process group.
    """

    context: distributed.DistributedContext
    single_pretrain: Callable[..., PretrainResult] = pretrain
    single_scouts: Callable[..., ScoutResult] = train_scouts
    device: torch.device = CPU

    @classmethod
    def current(
        cls,
        single_pretrain: Callable[..., PretrainResult] = pretrain,
        single_scouts: Callable[..., ScoutResult] = train_scouts,
        device: torch.device = CPU,
        *,
        join_process_group: bool = False,
    ) -> BuildTrainers:
        """Trainers for this build: single-process unless ``join_process_group`` is asked for.

        With ``join_process_group=True`` and an initialised process group of several ranks the
        build is sharded and each rank trains on its own ``context.device``; otherwise it trains
        in this process on ``device``, even inside someone else's process group (a
        ``GTLClassifier`` fit inside a DDP job must not turn into a distributed build).
        """
        if not join_process_group:
            return cls(
                distributed.DistributedContext(0, 1, device), single_pretrain, single_scouts, device
            )
        context = distributed.process_group_context()
        if context.world_size > 1:
            device = context.device
        return cls(context, single_pretrain, single_scouts, device)

    @property
    def sharded(self) -> bool:
        """True under a process group of more than one rank."""
        return self.context.world_size > 1

    def cousin_tasks(self, draw: Callable[[], list]) -> list:
        """``draw()`` here; when sharded, on rank 0 only, with its tasks (or its error) sent to
        every rank."""
        with _timed("tasks"):
            return distributed.broadcast_from_main(draw) if self.sharded else draw()

    def pretrain(
        self,
        encoder: ExpressionEncoder,
        values: np.ndarray,
        *,
        config: PretrainConfig,
        seed: int,
        present: np.ndarray,
        progress: bool,
        checkpoint: CheckpointConfig | None,
    ) -> None:
        """Pre-train ``encoder`` in place on ``self.device`` (under DDP when sharded)."""
        train = distributed.pretrain_ddp if self.sharded else self.single_pretrain
        with _timed("pretrain"):
            train(
                encoder,
                self._on_device(values),
                config=config,
                seed=seed,
                present=present,
                progress=progress and self.context.is_main,
                checkpoint=checkpoint,
            )

    def train_scouts(
        self,
        encoder: ExpressionEncoder,
        head_init: nn.Module,
        values: np.ndarray,
        tasks: Sequence,
        *,
        config: ScoutConfig,
        seed: int,
        present: np.ndarray,
        progress: bool,
        checkpoint: CheckpointConfig | None,
    ) -> GuideValues:
        """Train one scout per task and return the guides (on CPU; all scouts on every rank)."""
        train = distributed.train_scouts_sharded if self.sharded else self.single_scouts
        with _timed("scouts"):
            result = train(
                encoder,
                head_init,
                self._on_device(values),
                tasks,
                config=config,
                seed=seed,
                present=present,
                progress=progress and self.context.is_main,
                checkpoint=checkpoint,
            )
        return _on_cpu(result.guides)

    def _on_device(self, values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values).to(self.device)


def _on_cpu(guides: GuideValues) -> GuideValues:
    raw = {name: tensor.cpu() for name, tensor in guides.raw.items()}
    return GuideValues(raw=raw, n_scouts=guides.n_scouts)
