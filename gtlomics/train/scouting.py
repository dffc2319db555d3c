"""Scouting: train many copies of a pre-trained encoder on cousin tasks and measure change.

Every scout starts from the same encoder weights and the same ``head_init`` weights (deep copies;
the starting point is cloned, never a ``state_dict`` alias) and trains for ``config.steps`` steps on
its own task. The raw guide of a parameter is the mean over scouts of ``(w_final − w_initial)²``.

Batches: scout ``i`` walks through successive seeded permutations of its task's samples
(``SeedSequence(seed, spawn_key=(0, i))``), ``batch_size`` samples per step; a task smaller than the
batch wraps around. The schedule is computed up front, so the loop and the vectorised path, and a
resumed run, draw exactly the same batches. With ``dropout > 0`` the two paths draw different
dropout masks (both valid); with ``dropout = 0`` they agree to float round-off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from gtlomics.nn import ExpressionEncoder
from gtlomics.train.checkpoint import run_fingerprint, save_checkpoint
from gtlomics.train.config import CheckpointConfig, ScoutConfig
from gtlomics.train.distributed import (
    DistributedContext,
    all_reduce_sum,
    load_on_every_rank,
    per_rank_checkpoint,
    process_group_context,
    shard_scouts,
)
from gtlomics.train.guides import GuideValues
from gtlomics.train.runtime import child_rng, child_seed, to_tensor
from gtlomics.train.scout_groups import EnsembleScouts, LoopScout
from gtlomics.train.scout_passes import ScoutCost, scouts_per_pass

__all__ = ["ScoutConfig", "ScoutResult", "scout_batch_schedule", "train_scouts"]

_SCHEDULE, _DROPOUT = 0, 1


@dataclass(frozen=True)
class ScoutResult:
    """Guides and per-step training losses ``(n_scouts, steps)`` of a scouting run."""

    guides: GuideValues
    losses: np.ndarray


def scout_batch_schedule(tasks: Sequence, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """Rows of ``values`` each scout trains on: int array ``(n_scouts, steps, batch_size)``."""
    schedule = np.empty((len(tasks), steps, batch_size), dtype=np.int64)
    for i, task in enumerate(tasks):
        indices = np.asarray(task.indices, dtype=np.int64)
        rng = child_rng(seed, _SCHEDULE, i)
        n_perms = math.ceil(steps * batch_size / len(indices))
        stream = np.concatenate([indices[rng.permutation(len(indices))] for _ in range(n_perms)])
        schedule[i] = stream[: steps * batch_size].reshape(steps, batch_size)
    return schedule


def _label_lookup(tasks: Sequence, n_samples: int) -> np.ndarray:
    """``(n_scouts, n_samples)`` label of each row in each task (-1 outside the task)."""
    lookup = np.full((len(tasks), n_samples), -1, dtype=np.int64)
    for i, task in enumerate(tasks):
        lookup[i, np.asarray(task.indices)] = np.asarray(task.labels)
    return lookup


def _check_tasks(tasks: Sequence, n_samples: int, n_classes: int) -> None:
    if len(tasks) == 0:
        raise ValueError(
            "train_scouts needs at least one task; build them with ClusterScoutGenerator."
        )
    for i, task in enumerate(tasks):
        indices, labels = np.asarray(task.indices), np.asarray(task.labels)
        if len(indices) == 0 or indices.shape != labels.shape:
            raise ValueError(f"Task {i} needs non-empty .indices and .labels of the same length.")
        if indices.min() < 0 or indices.max() >= n_samples:
            raise ValueError(f"Task {i} indexes rows outside values (n_samples={n_samples}).")
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(
                f"Task {i} has labels outside 0..{n_classes - 1} (the head's classes)."
            )


class _ScoutRun:
    """Drives groups of scouts (one at a time, or chunks of the ensemble) with checkpoints."""

    def __init__(self, encoder, head_init, values, tasks, config, seed, present, block: range):
        self.encoder, self.head_init, self.config, self.seed = encoder, head_init, config, seed
        self.values, self.present = values, present
        self.n_scouts = len(tasks)
        self.schedule = torch.from_numpy(
            scout_batch_schedule(tasks, config.steps, config.batch_size, seed)
        ).to(values.device)
        lookup = _label_lookup(tasks, len(values))
        self.labels = torch.from_numpy(lookup).to(values.device)
        self.groups = _local_groups(block, config, values, encoder)
        self.sq_sum = {n: torch.zeros_like(p) for n, p in self._named_start()}
        self.losses = torch.zeros(self.n_scouts, config.steps)
        self.group_index, self.step, self.group = 0, 0, None
        self.ticks = 0  # optimiser steps taken by this run (a group step counts once)

    def _named_start(self):
        yield from ((f"encoder.{n}", p) for n, p in self.encoder.named_parameters())
        yield from ((f"head.{n}", p) for n, p in self.head_init.named_parameters())

    def make_group(self, scouts: range):
        generator = torch.Generator(device=self.values.device)
        generator.manual_seed(child_seed(self.seed, _DROPOUT, scouts.start))
        if self.config.vectorized and len(scouts) > 1:
            return EnsembleScouts(self.encoder, self.head_init, len(scouts), self.config, generator)
        return LoopScout(self.encoder, self.head_init, self.config, generator)

    def batch(self, scouts: range, step: int):
        """Values ``(E, B, G)``, labels ``(E, B)`` and presence (``(G,)`` or ``(E, B, G)``)."""
        rows = self.schedule[scouts.start : scouts.stop, step]  # (E, B)
        ids = torch.arange(scouts.start, scouts.stop, device=rows.device).unsqueeze(1)
        present = self.present
        if present is not None and present.ndim == 2:  # per-sample presence
            present = present[rows]
        return self.values[rows], self.labels[ids, rows], present

    def run_step(self) -> None:
        scouts = self.groups[self.group_index]
        if self.group is None:
            self.group = self.make_group(scouts)
        values, labels, present = self.batch(scouts, self.step)
        self.losses[scouts.start : scouts.stop, self.step] = self.group.train_step(
            values, labels, present
        ).cpu()
        self.step += 1
        self.ticks += 1
        if self.step == self.config.steps:
            self.finish_group()

    def finish_group(self) -> None:
        for name, change in self.group.squared_change().items():
            self.sq_sum[name] += change
        self.group, self.step = None, 0
        self.group_index += 1

    @property
    def done(self) -> bool:
        return self.group_index == len(self.groups)

    @property
    def steps_done(self) -> int:
        finished = sum(len(g) for g in self.groups[: self.group_index])
        current = len(self.groups[self.group_index]) if not self.done else 0
        return finished * self.config.steps + current * self.step

    def state_dict(self, fingerprint: str) -> dict:
        return {
            "fingerprint": fingerprint,
            "sq_sum": self.sq_sum,
            "losses": self.losses,
            "group_index": self.group_index,
            "step": self.step,
            "ticks": self.ticks,
            "group": None if self.group is None else self.group.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.sq_sum = {n: t.to(self.values.device) for n, t in state["sq_sum"].items()}
        self.losses = state["losses"]
        self.group_index, self.step = state["group_index"], state["step"]
        self.ticks = state["ticks"]
        if state["group"] is not None:
            self.group = self.make_group(self.groups[self.group_index])
            self.group.load_state_dict(state["group"])


def train_scouts(
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
    distributed: bool = False,
) -> ScoutResult:
    """Train one scout per task from a shared start and return the raw guides.

    Parameters
    ----------
    encoder : ExpressionEncoder
        The pre-trained encoder; never modified (scouts train copies).
    head_init : nn.Module
        The seeded classification head every scout starts from (never modified).
    values : array or Tensor
        ``(n_samples, n_genes)`` corpus the tasks index into (on this rank's device).
    tasks : sequence
        Objects with ``.indices`` and ``.labels`` (e.g. ``CousinTask``); sizes may differ.
    config : ScoutConfig
        ``vectorized=True`` (default) trains scouts together; ``False`` is the plain loop.
    seed : int
        Root of batch schedules and dropout.
    present : array or Tensor or None
        ``(n_genes,)`` or ``(n_samples, n_genes)`` gene presence.
    progress : bool
        Show a tqdm progress bar of scout-steps (rank 0 only).
    checkpoint : CheckpointConfig or None
        Save state every ``checkpoint.every_n_steps`` optimiser steps and after the last; resume
        from ``checkpoint.path`` when it exists (a finished run returns at once). Under a process
        group every rank saves its own block to its own file (``scouts.rank1of2.pt`` for
        ``scouts.pt`` on rank 1 of 2), with no communication; another world size starts over,
        and a file from another rank, grouping, config, seed or data is refused (``ValueError``
        on every rank).
    distributed : bool
        Join the caller's ``torch.distributed`` process group: every rank passes the same
        arguments (all tasks), trains only its :func:`~gtlomics.train.distributed.shard_scouts`
        block with the batches and dropout seeds one process gives those scouts, and every rank
        returns the same, complete result (sums over ranks with one ``all_reduce``): equal to a
        single process's to float round-off, bit-identical when it groups scouts the same way.

    Returns
    -------
    ScoutResult
        ``guides`` keyed ``encoder.…`` / ``head.…`` and per-step losses ``(n_scouts, steps)``.
    """
    context = process_group_context(join=distributed)
    run = _start_run(encoder, head_init, values, tasks, config, seed, present, context)
    extra = ""
    if context.sharded:
        extra = f"|rank={context.rank}|world_size={context.world_size}"
        checkpoint = per_rank_checkpoint(checkpoint, f"rank{context.rank}of{context.world_size}")
    fingerprint = _fingerprint(run, tasks, extra)
    _resume(run, fingerprint, checkpoint, context)
    _drive(run, fingerprint, checkpoint, progress and context.is_main)
    losses = run.losses.to(run.values.device)
    names = list(run.sq_sum)
    all_reduce_sum([run.sq_sum[n] for n in names] + [losses], context)
    raw = {n: run.sq_sum[n] / run.n_scouts for n in names}
    return ScoutResult(GuideValues(raw=raw, n_scouts=run.n_scouts), losses.cpu().numpy())


def _start_run(encoder, head_init, values, tasks, config, seed, present, context):
    """Check the tasks, put the models and data on one device and set up the scout groups this
    rank trains (all of them in one process)."""
    values = to_tensor(values)
    _check_tasks(tasks, len(values), head_init.n_classes)
    block = range(len(tasks))
    if context.sharded:
        block = shard_scouts(len(tasks), context.rank, context.world_size)
    encoder.to(values.device)
    head_init.to(values.device)
    if present is not None:
        present = torch.as_tensor(present, dtype=torch.bool).to(values.device)
    return _ScoutRun(encoder, head_init, values, tasks, config, seed, present, block)


def _local_groups(
    block: range, config: ScoutConfig, values: torch.Tensor, encoder: ExpressionEncoder
) -> list[range]:
    """``block`` of scouts (all of them, or this rank's) grouped by the pass-size rule."""
    cost = ScoutCost.of(encoder.config, config.batch_size, values.element_size())
    size = max(scouts_per_pass(config, len(block), values.device, cost), 1)
    return [range(s, min(s + size, block.stop)) for s in range(block.start, block.stop, size)]


def _fingerprint(run: _ScoutRun, tasks: Sequence, extra: str = "") -> str:
    """What a scout checkpoint must match to resume ``run`` (``extra`` appended at the end)."""
    tasks_sig = repr([(len(t.indices), int(np.asarray(t.indices).sum())) for t in tasks])
    # The grouping decides which scouts a saved group holds and its state's layout (ensemble or
    # loop): a run grouped differently (another device, another version's rule) must not resume.
    groups_sig = f"{run.values.device.type}:{[(g.start, g.stop) for g in run.groups]!r}"
    signature = repr(run.encoder.config) + tasks_sig + groups_sig + extra
    return run_fingerprint("scouts", run.config, run.seed, run.values, signature)


def _resume(
    run: _ScoutRun,
    fingerprint: str,
    checkpoint: CheckpointConfig | None,
    context: DistributedContext,
) -> None:
    """Load ``checkpoint`` into ``run`` when it exists; a file another run wrote is refused, on
    every rank when any rank refuses its own."""
    refused = (
        "Another rank refused its scout checkpoint (written by a different run): delete the "
        "scouts.rank*of*.pt files in the checkpoint folder, or use another folder."
    )
    state = load_on_every_rank(checkpoint, fingerprint, context, run.values.device, refused)
    if state:
        run.load_state_dict(state)


def _drive(
    run: _ScoutRun, fingerprint: str, checkpoint: CheckpointConfig | None, progress: bool
) -> None:
    """Train every group of ``run`` that is left, saving to ``checkpoint`` when due."""
    total = sum(len(group) for group in run.groups) * run.config.steps
    with tqdm(total=total, initial=run.steps_done, disable=not progress, unit="scout-step") as bar:
        while not run.done:
            before = run.steps_done
            run.run_step()
            bar.update(run.steps_done - before)
            if checkpoint is not None and (checkpoint.due(run.ticks) or run.done):
                save_checkpoint(checkpoint.path, run.state_dict(fingerprint))
