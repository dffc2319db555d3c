"""Scale-out on CPU: 2 gloo processes give the guides and the encoder one process gives, and
resume from their checkpoints to the numbers of an uninterrupted 2-process run."""

from __future__ import annotations

import importlib
import shutil
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.train import CheckpointConfig, PretrainConfig, ScoutConfig, pretrain, train_scouts

distributed = importlib.import_module("gtlomics.train.distributed")
scouting = importlib.import_module("gtlomics.train.scouting")
pretraining = importlib.import_module("gtlomics.train.pretrain")

CFG = EncoderConfig(n_genes=24, d_model=16, n_heads=2, n_layers=1)
SCOUTS = ScoutConfig(steps=5, batch_size=8)
PRETRAIN = PretrainConfig(epochs=2, batch_size=16)


@dataclass(frozen=True)
class Task:
    indices: np.ndarray
    labels: np.ndarray


def _data() -> tuple[np.ndarray, list[Task]]:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(64, CFG.n_genes)).astype(np.float32)
    tasks = [
        Task(rng.choice(64, size=size, replace=False), np.arange(size) % 2)
        for size in (10, 16, 12, 9, 20)
    ]
    return values, tasks


def _start():
    return ExpressionEncoder(CFG, seed=0), ClassificationHead(CFG.d_model, 2, seed=1)


def _worker(
    rank: int, world_size: int, init_file: str, out_dir: str, config: ScoutConfig, threads: int
):
    """One gloo rank: sharded scouts and DDP pre-training; rank results saved to out_dir.

    ``threads``: the torch thread count of the test process, which the one-process references
    use (another count reduces in another order and changes the last bits).
    """
    torch.set_num_threads(threads)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        values, tasks = _data()
        encoder, head = _start()
        scouts = train_scouts(encoder, head, values, tasks, config=config, seed=3, distributed=True)
        pretrain_encoder = ExpressionEncoder(CFG, seed=0)
        pretrained = pretrain(pretrain_encoder, values, config=PRETRAIN, seed=4, distributed=True)
        torch.save(
            {
                "guides": scouts.guides.raw,
                "losses": torch.from_numpy(scouts.losses),
                "encoder": pretrain_encoder.state_dict(),
                "holdout": [e.holdout_loss for e in pretrained.history],
                "history": [astuple(e) for e in pretrained.history],
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
        # gloo can abort (SIGABRT) a process that tears its group down while its peer is
        # still finishing the last collective; meet first (on success only: no hang).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path: Path, config: ScoutConfig, world_size: int = 2) -> list[dict]:
    mp.spawn(
        _worker,
        args=(world_size, str(tmp_path / "init"), str(tmp_path), config, torch.get_num_threads()),
        nprocs=world_size,
        join=True,
    )
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(world_size)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """Both ranks' outputs of one 2-process gloo job (vectorised scouts, one group per rank)."""
    return _spawn(tmp_path_factory.mktemp("gloo"), SCOUTS)


def test_shards_are_disjoint_cover_all_scouts_and_balanced():
    for n_scouts in (0, 1, 5, 64):
        blocks = [distributed.shard_scouts(n_scouts, r, 3) for r in range(3)]
        assert sorted(i for b in blocks for i in b) == list(range(n_scouts))
        assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    with pytest.raises(ValueError, match="rank must be in"):
        distributed.shard_scouts(4, 2, 2)


def test_without_process_group_equals_train_scouts_bitwise():
    values, tasks = _data()
    single = train_scouts(*_start(), values, tasks, config=SCOUTS, seed=3)
    sharded = train_scouts(*_start(), values, tasks, config=SCOUTS, seed=3, distributed=True)
    for name, raw in single.guides.raw.items():
        assert torch.equal(sharded.guides.raw[name], raw), name
    np.testing.assert_array_equal(sharded.losses, single.losses)


def test_two_processes_give_the_guides_of_one_process(two_ranks):
    values, tasks = _data()
    same_groups = ScoutConfig(steps=5, batch_size=8, chunk_size=3)  # rank blocks are 3 and 2
    single = train_scouts(*_start(), values, tasks, config=same_groups, seed=3)
    one_group = train_scouts(*_start(), values, tasks, config=SCOUTS, seed=3)
    for rank in two_ranks:
        assert set(rank["guides"]) == set(single.guides.raw)
        np.testing.assert_array_equal(rank["losses"].numpy(), single.losses)
        for name, raw in single.guides.raw.items():
            # same groups on the same thread count: the same kernels summed in the same order
            assert torch.equal(rank["guides"][name], raw), name
            other = one_group.guides.raw[name]  # other groups: equal to float round-off
            assert (rank["guides"][name] - other).abs().max() <= 1e-4 * other.abs().max(), name
    assert torch.count_nonzero(single.guides.raw["encoder.blocks.0.attn.qkv.weight"]) > 0


def test_ddp_pretraining_matches_one_process_and_ranks_agree(two_ranks):
    values, _ = _data()
    encoder = ExpressionEncoder(CFG, seed=0)
    result = pretrain(encoder, values, config=PRETRAIN, seed=4)
    first, second = two_ranks
    for name, weight in encoder.state_dict().items():
        assert torch.equal(first["encoder"][name], second["encoder"][name]), name
        torch.testing.assert_close(first["encoder"][name], weight, rtol=1e-4, atol=1e-5, msg=name)
    np.testing.assert_allclose(
        first["holdout"], [e.holdout_loss for e in result.history], rtol=1e-4
    )
    assert not torch.equal(
        first["encoder"]["gene_embedding"], ExpressionEncoder(CFG).gene_embedding
    )


def test_without_torchrun_the_context_is_rank_0_of_1(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = distributed.init_distributed()
    assert (context.rank, context.world_size, context.is_main) == (0, 1, True)
    assert not dist.is_initialized()


def test_each_rank_groups_its_own_block_of_scouts():
    values, encoder = torch.zeros(4, CFG.n_genes), ExpressionEncoder(CFG, seed=0)
    block = distributed.shard_scouts(7, 1, 2)  # scouts 4, 5, 6
    assert list(block) == [4, 5, 6]
    groups = scouting._local_groups(block, SCOUTS, values, encoder)
    assert groups == [range(4, 7)]  # a light model: the whole block in one pass on CPU
    chunked = scouting._local_groups(block, ScoutConfig(chunk_size=2), values, encoder)
    assert chunked == [range(4, 6), range(6, 7)]
    loop = scouting._local_groups(block, ScoutConfig(vectorized=False), values, encoder)
    assert loop == [range(4, 5), range(5, 6), range(6, 7)]


def test_an_error_that_cannot_be_pickled_still_reaches_the_caller():
    class Local(Exception):  # defined in a function: pickle cannot find it by name
        pass

    picklable = distributed._picklable(Local("no clusters"))
    assert isinstance(picklable, RuntimeError)
    assert "Local on rank 0: no clusters" in str(picklable)
    plain = ValueError("bad corpus")
    assert distributed._picklable(plain) is plain


# Checkpoint and resume under 2 ranks. Both jobs train SCOUTS (each rank's block is one group of
# 5 steps) and PRETRAIN (58 training rows / 16 = 4 steps per epoch, 8 steps) with the seeds of
# `two_ranks`, which is the uninterrupted reference.
SCOUT_EVERY, PRETRAIN_EVERY = 2, 3  # scouts save at ticks 2 and 4, pre-training at steps 3, 6
PRETRAIN_CRASH_STEP = 5  # after rank 0's save at step 3, mid-epoch 1 (4 steps per epoch)


class _Crash(Exception):
    """Stands in for a killed job (raised in spawned processes only)."""


def _instrument(crash: bool) -> dict[str, list]:
    """Log saves and steps in this spawned process; with ``crash``, stop like a killed job.

    Scouting stops each rank right after its 2nd save (scouts have no collective before their
    final sums, so ranks stop independently). Pre-training stops every rank at the same step:
    one rank alone would leave the others waiting in DDP's all-reduce.
    """
    log = {"scout_saves": [], "scout_steps": [], "pretrain_saves": [], "pretrain_steps": []}
    save_scouts, save_pretrain = scouting.save_checkpoint, pretraining.save_checkpoint
    run_step, advance = scouting._ScoutRun.run_step, pretraining._Pretrainer.advance

    def scouts_saved(path, state):
        save_scouts(path, state)
        log["scout_saves"].append((Path(path).name, state["ticks"]))
        if crash and len(log["scout_saves"]) == 2:
            raise _Crash

    def pretrain_saved(path, state):
        save_pretrain(path, state)
        log["pretrain_saves"].append((Path(path).name, state["step"]))

    def counted_step(run):
        log["scout_steps"].append(run.ticks)
        run_step(run)

    def counted_advance(trainer):
        if crash and trainer.step == PRETRAIN_CRASH_STEP:
            raise _Crash
        log["pretrain_steps"].append(trainer.step)
        return advance(trainer)

    scouting.save_checkpoint, pretraining.save_checkpoint = scouts_saved, pretrain_saved
    scouting._ScoutRun.run_step = counted_step
    pretraining._Pretrainer.advance = counted_advance
    return log


def _pretrain_error(values: np.ndarray, checkpoint: CheckpointConfig) -> str | None:
    try:
        pretrain(
            ExpressionEncoder(CFG, seed=0),
            values,
            config=PRETRAIN,
            seed=4,
            checkpoint=checkpoint,
            distributed=True,
        )
    except RuntimeError as error:
        return str(error)
    return None


def _stale_scouts_error(out: Path, rank: int) -> str:
    """Rank 1 finds a scout checkpoint another run wrote (rank 0's file under its name)."""
    stale = out / "stale"
    if rank == 1:
        stale.mkdir()
        shutil.copy(out / "checkpoints" / "scouts.rank0of2.pt", stale / "scouts.rank1of2.pt")
    dist.barrier()  # the stale file is in place before either rank looks
    values, tasks = _data()
    checkpoint = CheckpointConfig(stale / "scouts.pt", every_n_steps=SCOUT_EVERY)
    try:
        train_scouts(
            *_start(), values, tasks, config=SCOUTS, seed=3, checkpoint=checkpoint, distributed=True
        )
    except (ValueError, RuntimeError) as error:
        return f"{type(error).__name__}: {error}"
    return "no error"


def _stale_pretrain_error(out: Path, rank: int) -> str:
    """Rank 1 alone finds a pre-training checkpoint another run wrote (a scout file renamed)."""
    folder = out / f"stale_pretrain{rank}"
    folder.mkdir()
    if rank == 1:
        shutil.copy(out / "checkpoints" / "scouts.rank0of2.pt", folder / "pretrain.world2.pt")
    dist.barrier()
    try:
        pretrain(
            ExpressionEncoder(CFG, seed=0),
            _data()[0],
            config=PRETRAIN,
            seed=4,
            checkpoint=CheckpointConfig(folder / "pretrain.pt"),
            distributed=True,
        )
    except (ValueError, RuntimeError) as error:
        return f"{type(error).__name__}: {error}"
    return "no error"


def _train_from_checkpoints(out: Path, crash: bool) -> dict:
    """Sharded scouts, then DDP pre-training, checkpointed in ``out``; a crash is recorded."""
    values, tasks = _data()
    scout_ckpt = CheckpointConfig(out / "scouts.pt", every_n_steps=SCOUT_EVERY)
    pretrain_ckpt = CheckpointConfig(out / "pretrain.pt", every_n_steps=PRETRAIN_EVERY)
    result = {"crashed": []}
    try:
        scouts = train_scouts(
            *_start(), values, tasks, config=SCOUTS, seed=3, checkpoint=scout_ckpt, distributed=True
        )
        result.update(guides=scouts.guides.raw, losses=torch.from_numpy(scouts.losses))
    except _Crash:
        result["crashed"].append("scouts")
    encoder = ExpressionEncoder(CFG, seed=0)
    try:
        pretrained = pretrain(
            encoder, values, config=PRETRAIN, seed=4, checkpoint=pretrain_ckpt, distributed=True
        )
        history = [astuple(e) for e in pretrained.history]
        result.update(encoder=encoder.state_dict(), history=history)
    except _Crash:
        result["crashed"].append("pretrain")
    return result


def _resume_worker(rank: int, world_size: int, out_dir: str, crash: bool, threads: int) -> None:
    """One gloo rank of the crashing job (``crash``) or of its rerun with the same arguments,
    on the test process's ``threads`` (like :func:`_worker`, whose outputs are the reference)."""
    torch.set_num_threads(threads)
    log = _instrument(crash)
    out, job = Path(out_dir), "crash" if crash else "rerun"
    init_method = f"file://{out / f'init_{job}'}"
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size)
    try:
        result = _train_from_checkpoints(out / "checkpoints", crash)
        if not crash:  # a folder the ranks do not share: only rank 0 finds the checkpoint
            if rank == 0:
                (out / "node0").mkdir()
                shutil.copy(out / "checkpoints" / "pretrain.world2.pt", out / "node0")
            checkpoint = CheckpointConfig(out / f"node{rank}" / "pretrain.pt")
            result["unshared"] = _pretrain_error(_data()[0], checkpoint)
            result["stale"] = _stale_scouts_error(out, rank)
            result["stale_pretrain"] = _stale_pretrain_error(out, rank)
        torch.save({**result, "log": log}, out / f"{job}{rank}.pt")
        # gloo can abort (SIGABRT) a process that tears its group down while its peer is
        # still finishing the last collective; meet first (on success only: no hang).
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> tuple[Path, list[dict], list[dict]]:
    """The checkpoint folder and both ranks' outputs of a crashed 2-rank job and its rerun."""
    out = tmp_path_factory.mktemp("gloo_resume")
    outputs = []
    for crash in (True, False):
        args = (2, str(out), crash, torch.get_num_threads())
        mp.spawn(_resume_worker, args=args, nprocs=2, join=True)
        job = "crash" if crash else "rerun"
        outputs.append([torch.load(out / f"{job}{rank}.pt") for rank in range(2)])
    return out / "checkpoints", *outputs


def test_sharded_scouts_resume_per_rank_to_the_uninterrupted_guides(resumed, two_ranks):
    _, crashed, rerun = resumed
    for rank, (before, after) in enumerate(zip(crashed, rerun, strict=True)):
        name = f"scouts.rank{rank}of2.pt"
        assert before["crashed"] == ["scouts", "pretrain"]
        assert before["log"]["scout_saves"] == [(name, 2), (name, 4)]
        assert after["crashed"] == [] and after["log"]["scout_saves"] == [(name, 5)]  # the last
        assert after["log"]["scout_steps"] == [4]  # resumed inside the group: its 5th step only
        np.testing.assert_array_equal(after["losses"].numpy(), two_ranks[rank]["losses"].numpy())
        for name, raw in two_ranks[rank]["guides"].items():
            assert torch.equal(after["guides"][name], raw), name


def test_ddp_pretraining_resumes_from_rank_0_checkpoint(resumed, two_ranks):
    folder, crashed, rerun = resumed
    assert sorted(p.name for p in folder.iterdir()) == [
        "pretrain.world2.pt",
        "scouts.rank0of2.pt",
        "scouts.rank1of2.pt",
    ]
    assert [r["log"]["pretrain_saves"] for r in crashed] == [[("pretrain.world2.pt", 3)], []]
    saves = [("pretrain.world2.pt", 6), ("pretrain.world2.pt", 8)]  # due at 6, and the last
    assert [r["log"]["pretrain_saves"] for r in rerun] == [saves, []]
    for before, after, reference in zip(crashed, rerun, two_ranks, strict=True):
        assert before["log"]["pretrain_steps"] == list(range(PRETRAIN_CRASH_STEP))
        assert after["log"]["pretrain_steps"] == list(range(PRETRAIN_EVERY, 8))
        assert after["history"] == reference["history"]
        for name, weight in reference["encoder"].items():
            assert torch.equal(after["encoder"][name], weight), name


def test_ranks_that_do_not_share_the_checkpoint_folder_all_stop(resumed):
    _, _, rerun = resumed
    for rank in rerun:  # rank 0 copied the last save (step 8, the end); rank 1 found none
        assert "different steps (0 to 8)" in rank["unshared"]
        assert "every rank sees" in rank["unshared"]


def test_a_stale_scout_checkpoint_on_one_rank_stops_every_rank(resumed):
    _, _, (rank0, rank1) = resumed
    assert rank1["stale"].startswith("ValueError") and "different settings" in rank1["stale"]
    assert rank0["stale"].startswith("RuntimeError") and "Another rank refused" in rank0["stale"]


def test_a_stale_pretraining_checkpoint_on_one_rank_stops_every_rank(resumed):
    _, _, (rank0, rank1) = resumed
    assert rank1["stale_pretrain"].startswith("ValueError")
    assert rank0["stale_pretrain"].startswith("RuntimeError")
    assert "Another rank refused the pre-training checkpoint" in rank0["stale_pretrain"]


def test_one_process_ignores_two_rank_scout_checkpoints_and_refuses_them_renamed(resumed, tmp_path):
    folder, _, _ = resumed
    for rank in range(2):
        shutil.copy(folder / f"scouts.rank{rank}of2.pt", tmp_path)
    values, tasks = _data()
    checkpoint = CheckpointConfig(tmp_path / "scouts.pt", every_n_steps=SCOUT_EVERY)
    alone = train_scouts(
        *_start(), values, tasks, config=SCOUTS, seed=3, checkpoint=checkpoint, distributed=True
    )  # no process group: world size 1, the plain file
    reference = train_scouts(*_start(), values, tasks, config=SCOUTS, seed=3)
    np.testing.assert_array_equal(alone.losses, reference.losses)
    for name, raw in reference.guides.raw.items():
        assert torch.equal(alone.guides.raw[name], raw), name
    assert (tmp_path / "scouts.pt").exists()
    for rank in range(2):
        copied = (tmp_path / f"scouts.rank{rank}of2.pt").read_bytes()
        assert copied == (folder / f"scouts.rank{rank}of2.pt").read_bytes()
    shutil.copy(folder / "scouts.rank0of2.pt", tmp_path / "scouts.pt")
    with pytest.raises(ValueError, match="different settings"):
        train_scouts(
            *_start(), values, tasks, config=SCOUTS, seed=3, checkpoint=checkpoint, distributed=True
        )
