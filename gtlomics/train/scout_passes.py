"""How many scouts one ensemble pass trains: the cost of a scout-step and the pass-size rule.

On GPU a pass trains every scout (one set of kernel launches for all of them). On CPU a
scout-step is compute-bound above ~2 GFLOP, where batching saves only op dispatch and the loop is
as fast (``benchmarks/bench_scouts.py``); there each scout trains alone, and lighter scouts are
batched as far as keeps the widest temporary under the allocator's mmap threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gtlomics.nn.config import EncoderConfig
from gtlomics.nn.flops import encoder_training_flops
from gtlomics.train.config import ScoutConfig

__all__ = ["CPU_ENSEMBLE_MAX_FLOPS", "CPU_PASS_BYTES", "ScoutCost", "scouts_per_pass"]

# On CPU, ``chunk_size=None`` keeps each ensemble temporary under glibc's largest dynamic mmap
# threshold (32 MiB): bigger blocks are mmapped and unmapped on every step and page-fault back in.
CPU_PASS_BYTES = 32 * 2**20
# Above this many matmul FLOPs per scout-step a CPU step is compute-bound: batching scouts saves
# only op dispatch (~2 ms) and costs memory traffic, and the loop was as fast or faster in
# ``benchmarks/bench_scouts.py`` (the ensemble wins 1.1-1.7x below ~0.5 GFLOP, ties near 2).
CPU_ENSEMBLE_MAX_FLOPS = 2e9


@dataclass(frozen=True)
class ScoutCost:
    """What one scout-step costs: its widest activation temporary and its matmul FLOPs."""

    activation_bytes: int
    step_flops: float

    @classmethod
    def of(cls, encoder_config: EncoderConfig, batch_size: int, element_size: int = 4) -> ScoutCost:
        """Cost of a scout of ``encoder_config`` on batches of ``batch_size``.

        The widest temporary is ``(B, T, max(d_ff, 3·D, value_hidden))`` elements of
        ``element_size`` bytes; FLOPs are forward + backward of the encoder.
        """
        cfg = encoder_config
        width = max(cfg.ff_dim, 3 * cfg.d_model, cfg.value_dim)
        return cls(
            activation_bytes=batch_size * cfg.n_tokens * width * element_size,
            step_flops=encoder_training_flops(cfg, batch_size),
        )


def scouts_per_pass(
    config: ScoutConfig, n_scouts: int, device: torch.device, cost: ScoutCost
) -> int:
    """How many scouts one group trains together (a group of one trains with the loop).

    1 for the loop, else ``chunk_size``, else all of them on GPU. On CPU: 1 when a scout-step
    costs more than ``CPU_ENSEMBLE_MAX_FLOPS``, otherwise as many as fit ``CPU_PASS_BYTES``.

    Parameters
    ----------
    config : ScoutConfig
    n_scouts : int
        Scouts to train in all.
    device : torch.device
        Where they train.
    cost : ScoutCost
        One scout-step's cost (:meth:`ScoutCost.of`).
    """
    if not config.vectorized:
        return 1
    if config.chunk_size is not None:
        return config.chunk_size
    if device.type != "cpu":
        return n_scouts
    if cost.step_flops > CPU_ENSEMBLE_MAX_FLOPS:
        return 1
    return max(1, min(n_scouts, CPU_PASS_BYTES // max(cost.activation_bytes, 1)))
