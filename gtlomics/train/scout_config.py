"""``ScoutConfig``: the settings of scouting, shared by the loop and the pass-size rule."""

from __future__ import annotations

from dataclasses import dataclass

from gtlomics.train.runtime import OPTIMIZERS

__all__ = ["ScoutConfig"]


@dataclass(frozen=True)
class ScoutConfig:
    """Settings of :func:`~gtlomics.train.train_scouts`.

    ``chunk_size`` bounds how many scouts the vectorised path trains in one pass; ``None`` trains
    all scouts together on GPU. On CPU, ``None`` trains one scout at a time (the loop) when a
    scout-step costs more than ``CPU_ENSEMBLE_MAX_FLOPS`` (2 GFLOP, e.g. 257 tokens, d_model 64,
    batch 32: 8.3 GFLOP), where batching cannot beat the loop; smaller models train as many
    scouts per pass as keep the widest activation temporary under ``CPU_PASS_BYTES`` (32 MiB),
    since the default allocator page-faults larger temporaries in on every step
    (``benchmarks/bench_scouts.py``, ``docs/scale_out.md``). Activation
    memory grows with ``chunk_size × batch_size × tokens`` (e.g. 32 scouts × 32 × 257 tokens ×
    d_ff 256 is ~270 MB per feed-forward temporary), so cap it on small GPUs. The vectorised path
    matches the loop for ``dropout = 0``.

    Examples
    --------
    >>> ScoutConfig(steps=20, vectorized=False).optimizer
    'adam'
    """

    steps: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    vectorized: bool = True
    chunk_size: int | None = None
    autocast_bf16: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {self.chunk_size}.")
