"""Process-group plumbing for ``torchrun``: where a process sits, and the few collectives used.

The training loops (:func:`~gtlomics.train.pretrain`, :func:`~gtlomics.train.train_scouts`) take
``distributed=True`` to join the process group the caller initialised; this module gives them
(and :func:`~gtlomics.foundation.build_foundation`) the rank and world size, the scout shards,
per-rank checkpoint names, checks that every rank agrees, and :func:`broadcast_from_main`.
Every function works without an initialised process group (then it is rank 0 of 1), so the same
script runs under ``python`` and under ``torchrun``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

from gtlomics.train.checkpoint import load_checkpoint
from gtlomics.train.config import CheckpointConfig

__all__ = [
    "DistributedContext",
    "all_reduce_sum",
    "broadcast_from_main",
    "init_distributed",
    "load_on_every_rank",
    "per_rank_checkpoint",
    "process_group_context",
    "raise_unless_all",
    "shard_scouts",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job: ``rank`` of ``world_size``, on ``device``.

    Examples
    --------
    >>> DistributedContext(rank=0, world_size=1, device=torch.device("cpu")).is_main
    True
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that should write outputs)."""
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """True in a process group of more than one rank."""
        return self.world_size > 1


def init_distributed(backend: str | None = None) -> DistributedContext:
    """Join the ``torchrun`` job described by the environment, or run as a single process.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) this initialises the default
    process group (``nccl`` when CUDA is available, else ``gloo``, unless ``backend`` is given)
    and picks the GPU ``LOCAL_RANK``. Without those variables it returns rank 0 of 1 on CUDA
    when available, else CPU, and initialises nothing.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world_size == 1 and not dist.is_initialized():
        return DistributedContext(0, 1, torch.device("cuda" if cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return DistributedContext(dist.get_rank(), dist.get_world_size(), device)


def process_group_context(join: bool = True) -> DistributedContext:
    """Where this process sits in the process group the caller initialised; initialises nothing.

    Without a process group, or with ``join=False``, this is rank 0 of 1 on CPU. Under one,
    ``device`` is where the group's collectives run: this process's current CUDA device for
    ``nccl``, else CPU.

    Examples
    --------
    >>> process_group_context().world_size  # no process group here
    1
    """
    if not (join and dist.is_available() and dist.is_initialized()):
        return DistributedContext(0, 1, torch.device("cpu"))
    rank, world_size = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if world_size > 1 and dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    return DistributedContext(rank, world_size, device)


@dataclass(frozen=True)
class _Outcome:
    """What rank 0 computed for :func:`broadcast_from_main`: a value or the error it raised."""

    value: object = None
    error: BaseException | None = None


def broadcast_from_main(make: Callable[[], T], context: DistributedContext | None = None) -> T:
    """Call ``make`` on rank 0 only and return its result on every rank.

    Without a process group (or with one process) this is ``make()``. The result travels with
    ``dist.broadcast_object_list`` (pickled). If ``make`` raises on rank 0, every rank raises
    that error, so no rank waits forever for a result that never comes.
    """
    context = context or process_group_context()
    if not context.sharded:
        return make()
    outcome = None
    if context.is_main:
        try:
            outcome = _Outcome(value=make())
        except Exception as error:  # re-raised on every rank below
            outcome = _Outcome(error=_picklable(error))
    box = [outcome]
    dist.broadcast_object_list(box, src=0)
    if box[0].error is not None:
        raise box[0].error
    return box[0].value


def _picklable(error: Exception) -> Exception:
    """``error`` itself when it survives pickling, else a RuntimeError carrying its message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__} on rank 0: {error}")
    return error


def shard_scouts(n_scouts: int, rank: int, world_size: int) -> range:
    """The contiguous block of scout indices rank ``rank`` of ``world_size`` trains.

    Blocks differ in size by at most one; a rank may get an empty block when there are fewer
    scouts than ranks.

    Examples
    --------
    >>> [list(shard_scouts(5, r, 2)) for r in range(2)]
    [[0, 1, 2], [3, 4]]
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}.")
    base, extra = divmod(n_scouts, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + int(rank < extra))


def per_rank_checkpoint(checkpoint: CheckpointConfig | None, tag: str) -> CheckpointConfig | None:
    """``checkpoint`` with ``.tag`` put before its suffix (``scouts.pt`` → ``scouts.TAG.pt``)."""
    if checkpoint is None:
        return None
    path = Path(checkpoint.path)
    return replace(checkpoint, path=path.with_name(f"{path.stem}.{tag}{path.suffix}"))


def all_reduce_sum(tensors: Sequence[torch.Tensor], context: DistributedContext) -> None:
    """Sum ``tensors`` over ranks in place with one collective (flattened into one buffer)."""
    if not tensors or not context.sharded:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()


def load_on_every_rank(
    checkpoint: CheckpointConfig | None,
    fingerprint: str,
    context: DistributedContext,
    device: torch.device,
    refused: str,
) -> dict | None:
    """This rank's checkpoint state (None: none to resume from). A file written by another run
    is refused with ``ValueError`` on this rank and ``RuntimeError(refused)`` on every other
    rank, so that no rank waits for one that stopped."""
    refusal, state = None, None
    try:
        if checkpoint is not None:
            state = load_checkpoint(checkpoint.path, fingerprint=fingerprint)
    except ValueError as error:
        refusal = error
    raise_unless_all(refusal, context, device, refused)
    return state


def raise_unless_all(
    failure: Exception | None, context: DistributedContext, device: torch.device, message: str
) -> None:
    """Raise ``failure`` here, and ``RuntimeError(message)`` on every rank that has none when
    another rank failed (a rank failing alone would leave the others waiting)."""
    if context.sharded:
        ok = torch.tensor([int(failure is None)], device=device)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        if int(ok) == 0 and failure is None:
            failure = RuntimeError(message)
    if failure is not None:
        raise failure
