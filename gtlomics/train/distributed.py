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

Checkpoints (``checkpoint=CheckpointConfig(...)``): each rank of :func:`train_scouts_sharded`
saves its own block of scouts to its own file (``scouts.rank1of2.pt`` for ``scouts.pt``), with
no communication; :func:`pretrain_ddp`, whose state is the same on every rank, is saved by rank 0
(``pretrain.world2.pt``) and loaded by every rank, so its folder must be on a filesystem every
rank sees. File names and fingerprints hold the world size: another world size starts over.

Every function works without an initialised process group (then it is a plain single-process
call), so the same script runs under ``python`` and under ``torchrun``.
:func:`process_group_context` and :func:`broadcast_from_main` let library code (e.g.
:func:`~gtlomics.foundation.build_foundation`) join a job the caller started.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from gtlomics.nn import ExpressionEncoder, set_dropout_generator
from gtlomics.train.checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
from gtlomics.train.config import CheckpointConfig, PretrainConfig, ScoutConfig
from gtlomics.train.guides import GuideValues
from gtlomics.train.pretrain import (
    _BATCH,
    PretrainResult,
    _draw_mask,
    _Pretrainer,
)
from gtlomics.train.runtime import autocast_for, child_rng, child_seed, full_precision, to_tensor
from gtlomics.train.scout_passes import ScoutCost, scouts_per_pass
from gtlomics.train.scouting import (
    ScoutResult,
    _drive,
    _fingerprint,
    _resume,
    _start_run,
)

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


def _resume_on_agreement(run, fingerprint: str, checkpoint, world_size: int) -> None:
    """Resume this rank's scouts; when any rank refuses its checkpoint, every rank raises
    (a rank failing alone would leave the others waiting in the final all-reduce)."""
    refusal: Exception | None = None
    try:
        _resume(run, fingerprint, checkpoint)
    except ValueError as error:
        refusal = error
    if world_size > 1:
        accepted = torch.tensor([int(refusal is None)], device=run.values.device)
        dist.all_reduce(accepted, op=dist.ReduceOp.MIN)
        if int(accepted) == 0 and refusal is None:
            refusal = RuntimeError(
                "Another rank refused its scout checkpoint (written by a different run): delete "
                "the scouts.rank*of*.pt files in the checkpoint folder, or use another folder."
            )
    if refusal is not None:
        raise refusal


def _renamed(checkpoint: CheckpointConfig | None, tag: str) -> CheckpointConfig | None:
    """``checkpoint`` with ``.tag`` put before its suffix (``scouts.pt`` → ``scouts.TAG.pt``)."""
    if checkpoint is None:
        return None
    path = Path(checkpoint.path)
    return replace(checkpoint, path=path.with_name(f"{path.stem}.{tag}{path.suffix}"))


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
    checkpoint: CheckpointConfig | None = None,
) -> ScoutResult:
    """:func:`~gtlomics.train.train_scouts` with the scouts sharded over the process group.

    Every rank passes the same arguments (all tasks, the same ``seed``); each trains only its
    :func:`shard_scouts` block and every rank returns the same, complete :class:`ScoutResult`.
    Without a process group this is ``train_scouts`` (one shard).

    Parameters
    ----------
    encoder, head_init, values, tasks, config, seed, present
        As in :func:`~gtlomics.train.train_scouts`; ``values`` should already be on this
        rank's device.
    progress : bool
        Show a tqdm progress bar of this rank's scout-steps (pass it on rank 0 only).
    checkpoint : CheckpointConfig or None
        Every rank saves its own block every ``checkpoint.every_n_steps`` of its optimiser steps
        to its own file next to ``checkpoint.path``: ``scouts.rank1of2.pt`` for ``scouts.pt``
        on rank 1 of 2 (``scouts.rank0of1.pt`` without a process group). Rerunning with the same
        arguments and world size resumes each rank from its file; ranks save independently (no
        communication before the final sums). A run with another world size uses other files and
        starts over; a file from another rank, world size, grouping, config, seed or data is
        refused (``ValueError``).

    Returns
    -------
    ScoutResult
        Guides averaged over *all* scouts and losses ``(n_scouts, steps)`` of all scouts.
    """
    rank, world_size = _rank_and_world()
    run = _start_run(encoder, head_init, values, tasks, config, seed, present)
    values = run.values
    run.groups = _local_groups(
        shard_scouts(run.n_scouts, rank, world_size), config, values, encoder
    )
    fingerprint = _fingerprint(run, tasks, f"|rank={rank}|world_size={world_size}")
    checkpoint = _renamed(checkpoint, f"rank{rank}of{world_size}")
    _resume_on_agreement(run, fingerprint, checkpoint, world_size)
    _drive(run, fingerprint, checkpoint, progress)
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
    checkpoint: CheckpointConfig | None = None,
) -> PretrainResult:
    """:func:`~gtlomics.train.pretrain` with each global batch split over the process group.

    Every rank passes the same arguments (the whole corpus, or at least every row) and gets the
    same trained encoder. ``config.batch_size`` is the *global* batch; each rank runs about
    ``batch_size / world_size`` rows per step. Without a process group this equals ``pretrain``
    up to float round-off (dropout masks are drawn per rank, so with dropout they differ).

    Parameters
    ----------
    encoder, values, config, seed, present
        As in :func:`~gtlomics.train.pretrain`; ``values`` should already be on this rank's
        device.
    compile_model : bool
        Wrap the model in ``torch.compile`` (worth it on GPU for long runs at d_model ≥ 256; on
        CPU it needs a C++ compiler and the first steps pay minutes of compilation).
    progress : bool
        Show a tqdm progress bar (pass it on rank 0 only).
    checkpoint : CheckpointConfig or None
        The training state is the same on every rank, so rank 0 alone saves it every
        ``checkpoint.every_n_steps`` steps, to ``pretrain.world2.pt`` for ``pretrain.pt`` under 2
        ranks (``pretrain.world1.pt`` without a process group), and every rank loads that file
        when it exists. The folder must be on a filesystem every rank sees (several nodes:
        shared storage). Rerunning with the same arguments and world size resumes and ends
        bit-identical to an uninterrupted run; another world size uses another file and starts
        over; a file from another config, seed, data or world size is refused (``ValueError``).

    Returns
    -------
    PretrainResult
        As :func:`~gtlomics.train.pretrain`; the history's train loss is the global one.

    Raises
    ------
    RuntimeError
        With ``checkpoint``, when the ranks found different checkpoints (a folder that is not
        shared between the nodes): raised on every rank before any step.
    """
    rank, world_size = _rank_and_world()
    values = to_tensor(values)
    encoder.to(values.device)
    trainer = _DDPPretrainer(
        encoder, values, present, config, seed, rank, world_size, compile_model
    )
    checkpoint = _renamed(checkpoint, f"world{world_size}")
    extra = f"{encoder.config!r}|world_size={world_size}"
    fingerprint = run_fingerprint("pretrain", config, seed, values, extra)
    if checkpoint is not None:
        _resume_on_every_rank(trainer, checkpoint.path, fingerprint)
    with tqdm(total=trainer.total_steps, initial=trainer.step, disable=not progress) as bar:
        while trainer.step < trainer.total_steps:
            if (record := trainer.advance()) is not None:
                bar.set_postfix(holdout=f"{record.holdout_loss:.4f}")
            bar.update(1)
            if checkpoint is not None and rank == 0 and checkpoint.due(trainer.step):
                save_checkpoint(checkpoint.path, trainer.state_dict(fingerprint))
    set_dropout_generator(encoder, None)
    return PretrainResult(tuple(trainer.history), trainer.head, trainer.gene_mean, trainer.step)


def _resume_on_every_rank(trainer: _DDPPretrainer, path: Path, fingerprint: str) -> None:
    """Load the checkpoint at ``path`` when it exists; raise on every rank unless all ranks
    now stand at the same step (a folder not every rank sees)."""
    if state := load_checkpoint(path, fingerprint=fingerprint):
        trainer.load_state_dict(state)
    if trainer.world_size == 1:
        return
    step = trainer.step
    bounds = torch.tensor([step, -step], dtype=torch.int64, device=trainer.device)
    dist.all_reduce(bounds, op=dist.ReduceOp.MAX)
    highest, lowest = int(bounds[0]), -int(bounds[1])
    if highest != lowest:
        raise RuntimeError(
            f"The ranks resumed pre-training from different steps ({lowest} to {highest}): not "
            f"every rank sees the checkpoint {path}. Put the checkpoint folder on a filesystem "
            f"every rank sees (shared storage across nodes), or delete {path} to start over."
        )
