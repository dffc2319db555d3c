"""Scale-out on CPU: 2 gloo processes give the guides and the encoder one process gives."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.train import PretrainConfig, ScoutConfig, pretrain, train_scouts

distributed = importlib.import_module("gtlomics.train.distributed")

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


def _worker(rank: int, world_size: int, init_file: str, out_dir: str, config: ScoutConfig):
    """One gloo rank: sharded scouts and DDP pre-training; rank results saved to out_dir."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        values, tasks = _data()
        encoder, head = _start()
        scouts = distributed.train_scouts_sharded(
            encoder, head, values, tasks, config=config, seed=3
        )
        pretrain_encoder = ExpressionEncoder(CFG, seed=0)
        pretrained = distributed.pretrain_ddp(pretrain_encoder, values, config=PRETRAIN, seed=4)
        torch.save(
            {
                "guides": scouts.guides.raw,
                "losses": torch.from_numpy(scouts.losses),
                "encoder": pretrain_encoder.state_dict(),
                "holdout": [e.holdout_loss for e in pretrained.history],
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path: Path, config: ScoutConfig, world_size: int = 2) -> list[dict]:
    mp.spawn(
        _worker,
        args=(world_size, str(tmp_path / "init"), str(tmp_path), config),
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
    sharded = distributed.train_scouts_sharded(*_start(), values, tasks, config=SCOUTS, seed=3)
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
            assert torch.equal(rank["guides"][name], raw), name  # same groups: bit-identical
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
    groups = distributed._local_groups(block, SCOUTS, values, encoder)
    assert groups == [range(4, 7)]  # a light model: the whole block in one pass on CPU
    chunked = distributed._local_groups(block, ScoutConfig(chunk_size=2), values, encoder)
    assert chunked == [range(4, 6), range(6, 7)]
    loop = distributed._local_groups(block, ScoutConfig(vectorized=False), values, encoder)
    assert loop == [range(4, 5), range(5, 6), range(6, 7)]


def test_an_error_that_cannot_be_pickled_still_reaches_the_caller():
    class Local(Exception):  # defined in a function: pickle cannot find it by name
        pass

    picklable = distributed._picklable(Local("no clusters"))
    assert isinstance(picklable, RuntimeError)
    assert "Local on rank 0: no clusters" in str(picklable)
    plain = ValueError("bad corpus")
    assert distributed._picklable(plain) is plain
