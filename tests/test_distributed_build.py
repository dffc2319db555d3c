"""build_foundation under a 2-rank gloo process group, and ``foundation build --distributed``.

Two spawned processes (``file://`` rendezvous, the test process's torch thread count) call
``build_foundation`` with the same arguments, as ``torchrun`` would. Both must return the same
foundation, rank 0's save must load back, and the guides must equal a one-process build's up to
the float round-off DDP's gradient all-reduce puts into the pre-trained encoder. The build
checkpoints, and a rerun with the same arguments resumes from its checkpoints to the same
foundation.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import anndata as ad
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from gtl_support import MICRO_PRESET, corpus, fewshot
from threadpoolctl import threadpool_limits

import gtlomics.foundation
from gtlomics.classifier import GTLClassifier
from gtlomics.cli import main
from gtlomics.datasets.synthetic import SyntheticDesign
from gtlomics.foundation import Foundation, build_foundation, get_preset
from gtlomics.train import ScoutConfig

distributed = importlib.import_module("gtlomics.train.distributed")
scouting = importlib.import_module("gtlomics.train.scouting")
build_module = importlib.import_module("gtlomics.foundation.build")

REPO_ROOT = Path(__file__).resolve().parents[1]
# A subprocess's native thread pools, set like the test process's (torch sets its own count).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# 4 scouts, so each of the 2 ranks trains a block of 2.
PRESET = replace(MICRO_PRESET, n_scouts=4, scouts=ScoutConfig(steps=5, batch_size=8))
# DDP averages the ranks' gradients of the same global batch, so the pre-trained encoder differs
# from one process's at float round-off (measured: at most 9.3e-7 absolute over all weights).
# Five scout steps carry that into guides differing by at most 2.6e-6 relative to each tensor's
# largest guide (measured; scouting itself adds only the order of the ranks' sums, ~1e-7).
# 1e-4 leaves a 40x margin and still fails on any real difference (measured on this build:
# another random_state changes guides by 0.85 relative, one more scout step by 0.45).
GUIDE_RTOL = 1e-4
# Pre-training takes 6 steps (180 training rows / 32) and saves at 2, 4, 6; each rank's scouts
# train as one group of 5 steps and save at 2, 4 and after the last, so a rerun of the finished
# build trains nothing (resuming inside a group under 2 ranks: tests/test_distributed.py).
CHECKPOINT_EVERY = 2
CHECKPOINTS = ("pretrain.world2.pt", "scouts.rank0of2.pt", "scouts.rank1of2.pt")


def _raise_on_main() -> None:
    raise ValueError("rank 0 cannot draw cousin tasks")


def _error_of(call) -> str | None:
    try:
        call()
    except ValueError as error:
        return str(error)
    return None


def _spy_on_trainers() -> dict[str, list]:
    """Record (in this spawned process only) which scouts this rank trains and DDP's calls."""
    calls = {"scout_groups": [], "pretrain_ddp": []}
    local_groups, pretrain = scouting._local_groups, build_module.pretrain

    def spied_groups(*args, **kwargs):
        groups = local_groups(*args, **kwargs)
        calls["scout_groups"].extend(list(group) for group in groups)
        return groups

    def spied_pretrain(*args, **kwargs):
        if kwargs["distributed"]:
            calls["pretrain_ddp"].append(kwargs["seed"])
        return pretrain(*args, **kwargs)

    scouting._local_groups, build_module.pretrain = spied_groups, spied_pretrain
    return calls


def _checkpointed_build(out: Path) -> Foundation:
    return build_foundation(
        corpus(),
        preset=PRESET,
        random_state=0,
        distributed=True,
        checkpoint_dir=out / "checkpoints",
        checkpoint_every=CHECKPOINT_EVERY,
    )


def _checkpoint_files(out: Path) -> dict[str, tuple]:
    """Name → (inode, mtime) of each checkpoint: an atomic save replaces both."""
    files = sorted((out / "checkpoints").iterdir())
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in files}


def _build_worker(rank: int, world_size: int, init_file: str, out_dir: str, threads: int) -> None:
    """One gloo rank: rank 0's error broadcast, a checkpointed build, its rerun, a plain one.

    ``threads``: the torch thread count of the test process, which builds the one-process
    reference.
    """
    torch.set_num_threads(threads)
    calls = _spy_on_trainers()
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    out = Path(out_dir)
    try:
        broadcast_error = _error_of(lambda: distributed.broadcast_from_main(_raise_on_main))
        # Every rank saves before the scouts' final all-reduce, so once a build returns here
        # no rank writes checkpoints any more.
        foundation = _checkpointed_build(out)
        build_calls = {name: list(made) for name, made in calls.items()}
        saved = _checkpoint_files(out)
        rerun = _checkpointed_build(out)
        checkpoints = {"first": saved, "rerun": _checkpoint_files(out)}
        # Without distributed=True a build inside the group stays in its own process: ranks
        # building from different samples (e.g. per-rank CV folds) get their own encoders.
        own = build_foundation(corpus()[rank * 100 :].copy(), preset=PRESET, random_state=0)
        if rank == 0:
            foundation.save(out / "foundation")
        torch.save(
            {
                "broadcast_error": broadcast_error,
                "checkpoints": checkpoints,
                "rerun_encoder": dict(rerun.encoder_state),
                "rerun_guides": rerun.guides.raw,
                "genes": list(foundation.vocab.genes),
                "provenance": foundation.provenance.to_dict(),
                "encoder": dict(foundation.encoder_state),
                "head": dict(foundation.head_init),
                "guides": foundation.guides.raw,
                "calls": build_calls,
                "own_encoder": dict(own.encoder_state),
                "own_world_size": own.provenance.build_config["world_size"],
            },
            out / f"rank{rank}.pt",
        )
        # gloo can abort (SIGABRT) a process that tears its group down while its peer is
        # still finishing the last collective; meet first (on success only: no hang).
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Rank 0's save folder and both ranks' build outputs of one 2-process gloo job."""
    out = tmp_path_factory.mktemp("gloo_build")
    args = (2, str(out / "init"), str(out), torch.get_num_threads())
    mp.spawn(_build_worker, args=args, nprocs=2, join=True)
    return out, [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.fixture(scope="module")
def one_process() -> Foundation:
    return build_foundation(corpus(), preset=PRESET, random_state=0)


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def test_both_ranks_return_the_same_foundation(two_ranks):
    _, (first, second) = two_ranks
    assert first["genes"] == second["genes"]
    assert first["provenance"] == second["provenance"]
    assert first["provenance"]["n_scouts"] == PRESET.n_scouts
    for part in ("encoder", "head", "guides"):
        assert first[part].keys() == second[part].keys()
        for name, tensor in first[part].items():
            assert torch.equal(tensor, second[part][name]), (part, name)


def test_each_rank_pretrains_under_ddp_and_trains_its_half_of_the_scouts(two_ranks):
    _, (first, second) = two_ranks
    assert len(first["calls"]["pretrain_ddp"]) == len(second["calls"]["pretrain_ddp"]) == 1
    scouts = [[i for g in rank["calls"]["scout_groups"] for i in g] for rank in (first, second)]
    assert scouts == [[0, 1], [2, 3]]


def test_rank_0_save_loads_back_and_fits_a_classifier(two_ranks):
    out, (_, second) = two_ranks
    loaded = Foundation.load(out / "foundation")
    assert list(loaded.vocab.genes) == second["genes"]
    for name, tensor in second["encoder"].items():
        assert torch.equal(loaded.encoder_state[name], tensor), name
    for name, tensor in second["guides"].items():
        assert torch.equal(loaded.guides.raw[name], tensor), name
    few = fewshot(12)
    clf = GTLClassifier(foundation=out / "foundation", epochs=2, batch_size=8, random_state=0)
    assert clf.fit(few).predict(few).shape == (12,)


def test_two_ranks_give_the_guides_of_one_process(two_ranks, one_process):
    _, (first, _) = two_ranks
    assert first["genes"] == list(one_process.vocab.genes)
    sharded, single = first["provenance"], one_process.provenance.to_dict()
    assert (sharded["build_config"]["world_size"], single["build_config"]["world_size"]) == (2, 1)
    sharded["build_config"]["world_size"] = 1
    assert sharded == single
    torch.testing.assert_close(first["head"], dict(one_process.head_init), rtol=0, atol=0)
    for name, weight in one_process.encoder_state.items():
        torch.testing.assert_close(first["encoder"][name], weight, rtol=1e-4, atol=1e-5, msg=name)
    reference = one_process.guides.raw
    assert first["guides"].keys() == reference.keys()
    worst = max(_relative_difference(first["guides"][n], reference[n]) for n in reference)
    assert worst <= GUIDE_RTOL, worst
    assert torch.count_nonzero(reference["encoder.blocks.0.attn.qkv.weight"]) > 0


def test_a_build_without_distributed_stays_in_its_own_process(two_ranks):
    _, (first, second) = two_ranks
    assert first["own_world_size"] == second["own_world_size"] == 1
    own = first["own_encoder"]
    differs = [not torch.equal(own[name], second["own_encoder"][name]) for name in own]
    assert any(differs)  # a joined (DDP) build would have given both ranks the same weights


def test_two_ranks_checkpoint_and_a_rerun_resumes_to_the_same_foundation(two_ranks):
    out, ranks = two_ranks
    for rank in ranks:
        assert sorted(rank["checkpoints"]["first"]) == list(CHECKPOINTS)
        # Nothing rewritten: a rerun that started over would have saved again at step 2.
        assert rank["checkpoints"]["rerun"] == rank["checkpoints"]["first"]
        for part, rerun in (("encoder", "rerun_encoder"), ("guides", "rerun_guides")):
            assert rank[part].keys() == rank[rerun].keys()
            for name, tensor in rank[part].items():
                assert torch.equal(rank[rerun][name], tensor), (part, name)
    pretrain_state = torch.load(out / "checkpoints" / CHECKPOINTS[0], weights_only=True)
    scout_states = [
        torch.load(out / "checkpoints" / name, weights_only=True) for name in CHECKPOINTS[1:]
    ]
    assert pretrain_state["step"] == 6
    # Saved at ticks 2 and 4 and after the last (5): finished, so a rerun trains nothing.
    assert [(state["ticks"], state["group"]) for state in scout_states] == [(5, None), (5, None)]


def test_an_error_on_rank_0_reaches_every_rank(two_ranks):
    _, ranks = two_ranks
    assert [rank["broadcast_error"] for rank in ranks] == ["rank 0 cannot draw cousin tasks"] * 2


def _pythonpath() -> str:
    """PYTHONPATH under which a subprocess imports the ``gtlomics`` this process tests."""
    return os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))


CLI_ARGS = ["--preset", "tiny", "--n-genes", "24", "--n-scouts", "2", "--scout-steps", "2",
            "--pretrain-epochs", "1", "--seed", "3", "--device", "cpu",
            "--distributed"]  # fmt: skip


def _cli_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.h5ad"
    SyntheticDesign.random(n_genes=200, random_state=3).sample(60, random_state=4).write_h5ad(path)
    return path


def test_cli_distributed_in_one_process_writes_the_foundation_of_a_plain_build(tmp_path):
    corpus_path, out = _cli_corpus(tmp_path), tmp_path / "foundation"
    threads = str(torch.get_num_threads())  # OMP_NUM_THREADS: torch's threads in the subprocess
    command = [sys.executable, "-m", "gtlomics", "-q", "foundation", "build"]
    command += ["--input", str(corpus_path), "--out", str(out), *CLI_ARGS]
    command += ["--timings", str(tmp_path / "timings.json")]
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, threads), "PYTHONPATH": _pythonpath()}
    subprocess.run(command, capture_output=True, text=True, check=True, timeout=300, env=env)
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert timings["pretrain"] > 0 and timings["scouts"] > 0
    loaded = Foundation.load(out)
    assert (loaded.n_genes, loaded.provenance.n_scouts) == (24, 2)
    plan = get_preset("tiny")
    plan = replace(
        plan,
        pretrain=replace(plan.pretrain, epochs=1),
        scouts=replace(plan.scouts, steps=2),
    )
    with threadpool_limits(limits=int(threads)):  # numpy's BLAS as in the subprocess
        expected = build_foundation(
            ad.read_h5ad(corpus_path), preset=plan, n_genes=24, n_scouts=2, random_state=3,
            device="cpu",
        )  # fmt: skip
    assert list(loaded.vocab.genes) == list(expected.vocab.genes)
    # The same build with the same thread counts in another process: the same bits.
    for name, guide in expected.guides.raw.items():
        assert torch.equal(loaded.guides.raw[name], guide), name
    for name, weight in expected.encoder_state.items():
        assert torch.equal(loaded.encoder_state[name], weight), name


def test_cli_refuses_an_existing_out_before_building(tmp_path, monkeypatch, capsys):
    def build_started(*args, **kwargs):
        raise AssertionError("the build started before --out was checked")

    monkeypatch.setattr(gtlomics.foundation, "build_foundation", build_started)
    command = ["foundation", "build", "--input", str(_cli_corpus(tmp_path)), "--out", str(tmp_path)]
    assert main([*command, *CLI_ARGS]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_cli_passes_checkpoints_and_joins_the_process_group(tmp_path, monkeypatch):
    seen = {}

    def spy(corpus, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(gtlomics.foundation, "build_foundation", spy)
    command = ["foundation", "build", "--input", str(_cli_corpus(tmp_path))]
    command += ["--out", str(tmp_path / "f"), "--checkpoint-dir", "ck"]
    with pytest.raises(_Stop):
        main([*command, *CLI_ARGS])
    assert seen["checkpoint_dir"] == "ck"
    assert seen["distributed"] is True


class _Stop(Exception):
    """Raised by the spy: the build would have started here."""
