"""Pure-torch training loops: pre-training, scouting, guides, guided updates, fine-tuning."""

from gtlomics.train.checkpoint import load_checkpoint, save_checkpoint
from gtlomics.train.config import (
    CheckpointConfig,
    FinetuneConfig,
    GuidanceConfig,
    PretrainConfig,
    ScoutConfig,
)
from gtlomics.train.finetune import FinetuneEpoch, FinetuneResult, finetune
from gtlomics.train.guided_update import GuidedUpdate
from gtlomics.train.guides import (
    CONTROL_MODES,
    GuideSummary,
    GuideValues,
    adapt_guides,
    control_guides,
)
from gtlomics.train.pretrain import PretrainEpoch, PretrainResult, pretrain
from gtlomics.train.scouting import ScoutResult, scout_batch_schedule, train_scouts

__all__ = [
    "CONTROL_MODES",
    "CheckpointConfig",
    "FinetuneConfig",
    "FinetuneEpoch",
    "FinetuneResult",
    "GuidanceConfig",
    "GuideSummary",
    "GuideValues",
    "GuidedUpdate",
    "PretrainConfig",
    "PretrainEpoch",
    "PretrainResult",
    "ScoutConfig",
    "ScoutResult",
    "adapt_guides",
    "control_guides",
    "finetune",
    "load_checkpoint",
    "pretrain",
    "save_checkpoint",
    "scout_batch_schedule",
    "train_scouts",
]
