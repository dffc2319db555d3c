"""Every training setting in one place: pre-training, scouting, fine-tuning, checkpoints.

Frozen dataclasses checked at construction, so a bad value fails where it is written, not
steps into a run. The loops (:mod:`~gtlomics.train.pretrain`, :mod:`~gtlomics.train.scouting`,
:mod:`~gtlomics.train.finetune`) take them whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gtlomics.train.guides import CONTROL_MODES, MODES
from gtlomics.train.runtime import OPTIMIZERS

__all__ = [
    "GUIDANCE_MODES",
    "LOSSES",
    "CheckpointConfig",
    "FinetuneConfig",
    "GuidanceConfig",
    "PretrainConfig",
    "ScoutConfig",
]


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of :func:`pretrain`.

    With ``standardize_inputs`` the encoder's per-gene input standardisation
    (:meth:`~gtlomics.nn.ExpressionEncoder.set_gene_standardization`) is set from the training
    rows' mean and standard deviation before training.

    Examples
    --------
    >>> PretrainConfig(epochs=5, mask_fraction=0.2).lr
    0.001
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    mask_fraction: float = 0.15
    grad_clip: float | None = 1.0
    holdout_fraction: float = 0.1
    standardize_inputs: bool = True
    autocast_bf16: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1.")
        for name in ("warmup_fraction", "mask_fraction", "holdout_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}.")
        if self.mask_fraction == 0.0:
            raise ValueError("mask_fraction must be > 0: nothing would be predicted.")


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


LOSSES: tuple[str, ...] = ("cross_entropy", "mse")
"""``"cross_entropy"``: integer classes, logits ``(B, C)``; ``"mse"``: float targets, ``(B, 1)``."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`finetune`.

    Examples
    --------
    >>> FinetuneConfig(epochs=10, optimizer="sgd").early_stopping_fraction is None
    True
    >>> FinetuneConfig(loss="mse").loss
    'mse'
    """

    epochs: int = 30
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    grad_clip: float | None = 1.0
    early_stopping_fraction: float | None = None
    patience: int = 5
    autocast_bf16: bool = True
    loss: str = "cross_entropy"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}.")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be >= 1.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        frac = self.early_stopping_fraction
        if frac is not None and not 0.0 < frac < 1.0:
            raise ValueError(f"early_stopping_fraction must be in (0, 1) or None, got {frac}.")


@dataclass(frozen=True)
class CheckpointConfig:
    """Where and how often a training loop saves its state.

    Parameters
    ----------
    path : str or Path
        Checkpoint file. If it exists when training starts, training resumes from it.
    every_n_steps : int
        Save after every this many optimiser steps (and at the end).

    Examples
    --------
    >>> CheckpointConfig("run/pretrain.pt", every_n_steps=50).every_n_steps
    50
    """

    path: str | Path
    every_n_steps: int = 100

    def __post_init__(self) -> None:
        if self.every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {self.every_n_steps}.")

    def due(self, step: int) -> bool:
        """True when ``step`` (1-based count of finished steps) is a save point."""
        return step % self.every_n_steps == 0


GUIDANCE_MODES = ("scouts", "none", *CONTROL_MODES)
"""Where guides come from: the scouts', none (unguided), or one of the two controls."""


@dataclass(frozen=True)
class GuidanceConfig:
    """How fine-tuning is guided: which guides, how they are normalised, how strongly.

    Built once (by the estimator from its ``guidance``, ``guide_normalize`` and
    ``guide_strength`` parameters) and passed whole: :meth:`Foundation.guides_for
    <gtlomics.foundation.Foundation.guides_for>` applies ``mode`` and ``normalize`` to a
    foundation's raw guides, :func:`~gtlomics.train.finetune` applies ``strength``.

    Parameters
    ----------
    mode : {"scouts", "none", "shuffled", "constant"}
        ``"scouts"``: the scouts' guides; ``"none"``: unguided; ``"shuffled"`` / ``"constant"``:
        the controls of :func:`~gtlomics.train.control_guides` (same amount, other placement).
    normalize : {"global", "per_tensor"}
        Min-max normalisation of the raw guides over the whole model or per tensor.
    strength : float
        In [0, 1]: an update is scaled by ``1 - strength + strength * guide``.

    Examples
    --------
    >>> GuidanceConfig(mode="shuffled", strength=0.5).control
    'shuffled'
    >>> GuidanceConfig(mode="none").guided
    False
    """

    mode: str = "scouts"
    normalize: str = "global"
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in GUIDANCE_MODES:
            raise ValueError(
                f"guidance mode must be one of {GUIDANCE_MODES}, got {self.mode!r}; use "
                "'none' for unguided fine-tuning."
            )
        if self.normalize not in MODES:
            raise ValueError(f"normalize must be one of {MODES}, got {self.normalize!r}.")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(
                f"strength must be in [0, 1] (0: unguided, 1: full guides), got {self.strength}."
            )

    @property
    def guided(self) -> bool:
        """Whether guides are used at all (every mode but ``"none"``)."""
        return self.mode != "none"

    @property
    def control(self) -> str | None:
        """The control replacing the scouts' guides (``"shuffled"``, ``"constant"``), or None."""
        return self.mode if self.mode in CONTROL_MODES else None
