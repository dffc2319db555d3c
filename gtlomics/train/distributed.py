"""Scale-out under ``torchrun``: sharded scouts and DistributedDataParallel pre-training.

Scouts are independent, so they shard without communication: rank ``r`` of ``k`` trains the
contiguous block of scouts ``shard_scouts(n, r, k)`` with exactly the batch schedule and dropout
seeds a single process gives those scouts (both derive from the scout's *global* index), then
the per-parameter sums of squared changes and the per-scout losses are summed over ranks with
one ``all_reduce`` each. Guides from ``k`` processes therefore equal guides from one process to
float round-off (only the order of the final additions differs); they are bit-identical when the
single process groups scouts the same way (``ScoutConfig.chunk_size`` = the per-rank block).

Pre-training wraps encoder + masked head in ``DistributedDataParallel``. Every rank draws the
same global batch and mask (pure functions of ``seed`` and the step) and trains on its slice of
the rows; the loss is weighted so that DDP's gradient average is the gradient of the global
masked MSE, i.e. the same update a single process makes on the whole batch.

Every function works without an initialised process group (then it is a plain single-process
call), so the same script runs under ``python`` and under ``torchrun``.
:func:`process_group_context` and :func:`broadcast_from_main` let library code (e.g.
:func:`~gtlomics.foundation.build_foundation`) join a job the caller started.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from gtlomics.nn import ExpressionEncoder, set_dropout_generator
from gtlomics.train.guides import GuideValues
from gtlomics.train.pretrain import (
    _BATCH,
    PretrainConfig,
    PretrainResult,
    _draw_mask,
    _Pretrainer,
)
from gtlomics.train.runtime import autocast_for, child_rng, child_seed, full_precision, to_tensor
from gtlomics.train.scout_passes import ScoutCost, scouts_per_pass
from gtlomics.train.scouting import ScoutConfig, ScoutResult, _check_tasks, _ScoutRun

__all__ = [
    "DistributedContext",
    "broadcast_from_main",
    "init_distributed",
    "pretrain_ddp",
    "process_group_context",
    "shard_scouts",
    "train_scouts_sharded",
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


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def process_group_context() -> DistributedContext:
    """Where this process sits in the process group the caller initialised; initialises nothing.

    Without a process group this is rank 0 of 1 on CPU. Under one, ``device`` is where the
    group's collectives run: this process's current CUDA device for ``nccl``, else CPU.

    Examples
    --------
    >>> process_group_context().world_size  # no process group here
    1
    """
    rank, world_size = _rank_and_world()
    device = torch.device("cpu")
    if world_size > 1 and dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    return DistributedContext(rank, world_size, device)


@dataclass(frozen=True)
class _Outcome:
    """What rank 0 computed for :func:`broadcast_from_main`: a value or the error it raised."""

    value: object = None
    error: BaseException | None = None


def broadcast_from_main(make: Callable[[], T]) -> T:
    """Call ``make`` on rank 0 only and return its result on every rank.

    Without a process group (or with one process) this is ``make()``. The result travels with
    ``dist.broadcast_object_list`` (pickled). If ``make`` raises on rank 0, every rank raises
    that error, so no rank waits forever for a result that never comes.
    """
    rank, world_size = _rank_and_world()
    if world_size == 1:
        return make()
    outcome = None
    if rank == 0:
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


def _local_groups(block: range, config: ScoutConfig, values, encoder) -> list[range]:
    cost = ScoutCost.of(encoder.config, config.batch_size, values.element_size())
    size = max(scouts_per_pass(config, len(block), values.device, cost), 1)
    return [range(s, min(s + size, block.stop)) for s in range(block.start, block.stop, size)]


def _all_reduce_sum(tensors: Sequence[torch.Tensor]) -> None:
    """Sum ``tensors`` over ranks in place with one collective (flattened into one buffer)."""
    if not tensors or _rank_and_world()[1] == 1:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()


def train_scouts_sharded(
    encoder: ExpressionEncoder,
    head_init: nn.Module,
    values: np.ndarray | torch.Tensor,
    tasks: Sequence,
    *,
    config: ScoutConfig,
    seed: int,
    present: np.ndarray | torch.Tensor | None = None,
    progress: bool = False,
) -> ScoutResult:
    """:func:`~gtlomics.train.train_scouts` with the scouts sharded over the process group.

    Every rank passes the same arguments (all tasks, the same ``seed``); each trains only its
    :func:`shard_scouts` block and every rank returns the same, complete :class:`ScoutResult`.
    Without a process group this is ``train_scouts`` (one shard). Checkpointing is not offered
    here: a failed rank fails the job, rerun it (shards are short).

    Parameters
    ----------
    encoder, head_init, values, tasks, config, seed, present
        As in :func:`~gtlomics.train.train_scouts`; ``values`` should already be on this
        rank's device.
    progress : bool
        Show a tqdm progress bar of this rank's scout-steps (pass it on rank 0 only).

    Returns
    -------
    ScoutResult
        Guides averaged over *all* scouts and losses ``(n_scouts, steps)`` of all scouts.
    """
    rank, world_size = _rank_and_world()
    values = to_tensor(values)
    _check_tasks(tasks, len(values), head_init.n_classes)
    encoder.to(values.device)
    head_init.to(values.device)
    if present is not None:
        present = torch.as_tensor(present, dtype=torch.bool).to(values.device)
    run = _ScoutRun(encoder, head_init, values, tasks, config, seed, present)
    run.groups = _local_groups(
        shard_scouts(run.n_scouts, rank, world_size), config, values, encoder
    )
    total = sum(len(group) for group in run.groups) * config.steps
    with tqdm(total=total, disable=not progress, unit="scout-step") as bar:
        while not run.done:
            before = run.steps_done
            run.run_step()
            bar.update(run.steps_done - before)
    names = list(run.sq_sum)
    losses = run.losses.to(values.device)
    _all_reduce_sum([run.sq_sum[n] for n in names] + [losses])
    raw = {n: run.sq_sum[n] / run.n_scouts for n in names}
    return ScoutResult(GuideValues(raw=raw, n_scouts=run.n_scouts), losses.cpu().numpy())


class _MaskedModel(nn.Module):
    """Encoder + masked head in one module, so DDP sees the whole forward pass."""

    def __init__(self, encoder: ExpressionEncoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, values, present, mask) -> torch.Tensor:
        features = self.encoder.forward_features(values, present, mask)
        return self.head(self.encoder.gene_features(features))  # (B, G)


class _DDPPretrainer(_Pretrainer):
    """The single-process pre-trainer with the batch sliced by rank and gradients averaged."""

    def __init__(self, encoder, values, present, config, seed, rank, world_size, compile_model):
        super().__init__(encoder, values, present, config, seed)
        self.rank, self.world_size = rank, world_size
        model = _MaskedModel(encoder, self.head)
        self.ddp = DistributedDataParallel(model) if world_size > 1 else model
        if compile_model:  # compiles the forward; DDP's bucketed all-reduce stays eager
            self.ddp = torch.compile(self.ddp)

    def train_step(self, epoch: int, batch: int) -> float:
        rows = self.batch_rows(epoch, batch)
        mask = _draw_mask(
            child_rng(self.seed, _BATCH, epoch, batch),
            self.present[rows],
            self.config.mask_fraction,
        )
        n_masked = mask.sum().clamp(min=1)  # over the global batch, same on every rank
        rows, mask = rows[self.rank :: self.world_size], mask[self.rank :: self.world_size]
        self.dropout_generator.manual_seed(child_seed(self.seed, _BATCH, epoch, batch, self.rank))
        self.ddp.train()
        with autocast_for(self.device, self.config.autocast_bf16):
            pred = self.ddp(self.values[rows], self.present[rows], mask)
        sq = (full_precision(pred) - (self.values[rows] - self.gene_mean)).pow(2) * mask
        loss = sq.sum() * (self.world_size / n_masked)  # DDP averages: Σ_ranks = global MSE
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.ddp.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        global_loss = loss.detach() / self.world_size
        _all_reduce_sum([global_loss.reshape(1)])
        return float(global_loss)


def pretrain_ddp(
    encoder: ExpressionEncoder,
    values: np.ndarray | torch.Tensor,
    *,
    config: PretrainConfig,
    seed: int,
    present: np.ndarray | torch.Tensor | None = None,
    compile_model: bool = False,
    progress: bool = False,
) -> PretrainResult:
    """:func:`~gtlomics.train.pretrain` with each global batch split over the process group.

    Every rank passes the same arguments (the whole corpus, or at least every row) and gets the
    same trained encoder. ``config.batch_size`` is the *global* batch; each rank runs about
    ``batch_size / world_size`` rows per step. Without a process group this equals ``pretrain``
    up to float round-off (dropout masks are drawn per rank, so with dropout they differ).

    ``compile_model=True`` wraps the model in ``torch.compile`` (worth it on GPU for long runs at
    d_model ≥ 256; on CPU it needs a C++ compiler and the first steps pay minutes of compilation).
    ``progress=True`` shows a tqdm progress bar (pass it on rank 0 only).

    Returns
    -------
    PretrainResult
        As :func:`~gtlomics.train.pretrain`; the history's train loss is the global one.
    """
    rank, world_size = _rank_and_world()
    values = to_tensor(values)
    encoder.to(values.device)
    trainer = _DDPPretrainer(
        encoder, values, present, config, seed, rank, world_size, compile_model
    )
    with tqdm(total=trainer.total_steps, disable=not progress) as bar:
        while trainer.step < trainer.total_steps:
            if (record := trainer.advance()) is not None:
                bar.set_postfix(holdout=f"{record.holdout_loss:.4f}")
            bar.update(1)
    set_dropout_generator(encoder, None)
    return PretrainResult(tuple(trainer.history), trainer.head, trainer.gene_mean, trainer.step)
