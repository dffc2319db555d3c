"""``build_foundation``: corpus → vocabulary → cousin tasks → pre-training → scouts → Foundation.

Stages, each seeded by its own child of ``np.random.SeedSequence(random_state)``:

1. read the corpus and keep its ``n_genes`` most variable genes (:class:`GeneVocab`);
2. align and normalise it (:func:`~gtlomics.expression.prepare_expression`);
3. cousin tasks from the *unlabelled* corpus (:class:`~gtlomics.scouts.ClusterScoutGenerator`:
   PCA → UMAP → KMeans → pairs of clusters), drawn before training so a corpus they cannot use
   fails in seconds;
4. masked-expression pre-training of a fresh encoder (:func:`~gtlomics.train.pretrain`);
5. one seeded binary head (``head_init``) and one scout per task from the same starting point
   (:func:`~gtlomics.train.train_scouts`), whose mean squared changes are the guides.

With ``checkpoint_dir`` the two training stages checkpoint there and a re-run with the same
arguments resumes where a killed run stopped, ending with the same foundation.

Under ``torchrun`` (an initialised process group of k > 1 ranks) every rank calls
``build_foundation(..., distributed=True)`` with the same arguments: pre-training runs under
DDP, rank 0 draws the cousin tasks and broadcasts them, the scouts are sharded over the ranks,
and every rank returns the same foundation (:mod:`gtlomics.foundation.trainers`).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gtlomics._version import __version__
from gtlomics.expression import (
    ExpressionTable,
    GeneVocab,
    PreprocessingConfig,
    prepare_expression,
    read_expression,
)
from gtlomics.expression.scale import check_values
from gtlomics.foundation.presets import CousinTaskSettings, FoundationPreset, get_preset
from gtlomics.foundation.record import Foundation, Provenance
from gtlomics.foundation.trainers import BuildTrainers
from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.train import CheckpointConfig, PretrainConfig, ScoutConfig, pretrain, train_scouts
from gtlomics.train.runtime import resolve_device

__all__ = ["build_foundation"]

logger = logging.getLogger(__name__)

_MIN_SAMPLES = 8
DEFAULT_VALUE_ENCODING = "log"
"""Value encoding of a foundation built without ``preprocessing``: log values (not ranks).

Chosen by the protocol fixed in ``docs/results.md``: mean per-fold AUROC of the default
``GTLClassifier`` over the four benchmark tasks run with both encodings, log 0.9203 vs rank
0.9200: a tie decided by 0.0003. Rank won OSD-758 by 0.11 and lost Benayoun aging by 0.11 (both
encodings score 1.000 on the neutrophil tasks). ``value_encoding="rank"`` stays an option.
"""
MIN_STUDY_STD = 0.1
"""Floor of a corpus study's per-gene sd, as for a classifier's training samples."""


def build_foundation(
    corpus: Any,
    *,
    preset: str | FoundationPreset = "default",
    n_genes: int | None = None,
    encoder: EncoderConfig | dict | None = None,
    pretrain_config: PretrainConfig | None = None,
    scout_config: ScoutConfig | None = None,
    n_scouts: int | None = None,
    cousin_tasks: CousinTaskSettings | None = None,
    preprocessing: PreprocessingConfig | None = None,
    corpus_description: str | None = None,
    random_state: int = 0,
    progress: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 50,
    device: str | torch.device = "auto",
    distributed: bool = False,
    batch_key: str | None = None,
) -> Foundation:
    """Build a :class:`Foundation` from an unlabelled expression corpus.

    Parameters
    ----------
    corpus : AnnData, DataFrame or ExpressionTable
        Samples × genes, raw counts or log1p values, gene ids in ``var_names`` / columns.
    preset : {"tiny", "small", "default"} or FoundationPreset
        Sizes of every stage; the arguments below override single parts of it.
    n_genes : int, optional
        Vocabulary size (the most variable genes), capped to the corpus's genes.
    encoder : EncoderConfig or dict, optional
        Encoder shape; a dict gives ``EncoderConfig`` keywords (``n_genes`` is set here).
    pretrain_config, scout_config : optional
        :class:`~gtlomics.train.PretrainConfig`, :class:`~gtlomics.train.ScoutConfig`.
    n_scouts : int, optional
        Number of cousin tasks (one scout each), >= 1; capped at the number of distinct
        cluster pairs the corpus offers.
    cousin_tasks : CousinTaskSettings, optional
        PCA / UMAP / KMeans settings; scaled down for small corpora.
    preprocessing : PreprocessingConfig, optional
        How the corpus is read and normalised (the foundation keeps it for its users). Default:
        ``PreprocessingConfig(value_encoding=DEFAULT_VALUE_ENCODING)`` (log values).
    corpus_description : str, optional
        Recorded in the provenance (default: the corpus's shape).
    random_state : int
        Root seed of every stage; the same value gives the same foundation.
    progress : bool
        Progress bars for the training stages.
    checkpoint_dir : path, optional
        Folder for resumable checkpoints of pre-training and scouting (created when missing);
        a re-run with the same arguments resumes from them. Under ``torchrun`` too: rank 0
        saves ``pretrain.world<k>.pt``, each rank its ``scouts.rank<r>of<k>.pt``; the folder
        must be one every rank sees (shared storage across nodes), and another world size
        starts over.
    checkpoint_every : int
        Optimiser steps between checkpoints.
    device : str or torch.device
        Where pre-training and scouting run: ``"auto"`` (CUDA when available, else CPU),
        ``"cpu"``, ``"cuda:1"``... On CUDA both run under bf16 autocast, so a GPU build is not
        bit-identical to a CPU build (docs/reproducibility.md). Under ``torchrun`` each rank
        uses its own device instead.
    distributed : bool
        Join the ``torch.distributed`` process group the caller initialised (``torchrun``):
        every rank calls ``build_foundation`` with the same arguments, pre-training runs under
        DDP, rank 0 draws the cousin tasks and broadcasts them, the scouts are sharded, and every
        rank returns the same foundation. Without a process group (or with one rank) this is a
        plain build. ``False`` (the default) never joins one, even when it exists.
    batch_key : str, optional
        ``corpus.obs`` column naming each sample's study (or batch). Each study is then
        standardised on its own (per-gene mean 0, sd 1, sd floored at 0.1) before cousin tasks,
        pre-training and scouting, and the vocabulary keeps the genes most variable *within*
        studies: the encoder learns within-study variation, which is what a classifier
        standardised on its own training samples (``GTLClassifier(standardize="study")``)
        shows it. Without it the corpus is standardised as one study.

    Returns
    -------
    Foundation

    Raises
    ------
    ValueError
        Bad sizes, a corpus that cannot be used (too few samples, bad values, identical samples,
        too few clusters for cousin tasks), a ``checkpoint_dir`` that is a file, or a CUDA
        ``device`` on a machine without CUDA: all found before pre-training starts.
    """
    trainers = BuildTrainers.current(
        pretrain, train_scouts, resolve_device(device), join_process_group=distributed
    )
    plan = _resolve_plan(preset, n_genes, pretrain_config, scout_config, n_scouts, cousin_tasks)
    _check_n_scouts(plan.n_scouts)
    preprocessing = preprocessing or PreprocessingConfig(value_encoding=DEFAULT_VALUE_ENCODING)
    table = _read_corpus(corpus, preprocessing)
    plain = replace(preprocessing, layer=None, gene_column=None)
    encoder_seed, pretrain_seed, task_seed, head_seed, scout_seed = _seeds(random_state, 5)
    batches = corpus_batches(corpus, batch_key, table.shape[0])
    vocab = _choose_vocab(table, plan.n_genes, plain, batches)
    prepared = prepare_expression(table, vocab, plain)
    plain = replace(plain, input_scale=prepared.input_scale)
    if batches is not None:
        prepared = replace(prepared, values=standardize_per_batch(prepared.values, batches))
        plan = replace(plan, pretrain=replace(plan.pretrain, standardize_inputs=False))
    enc_config = _encoder_config(encoder, plan, len(vocab))
    model = ExpressionEncoder(enc_config, seed=encoder_seed)
    checkpoints = _checkpoints(checkpoint_dir, checkpoint_every)
    # Cousin tasks need only the corpus: drawn first, a corpus they cannot use (identical
    # samples, too few clusters) fails in seconds, not after hours of pre-training.
    tasks = trainers.cousin_tasks(lambda: _cousin_tasks(prepared.values, plan, task_seed))
    logger.info("Pre-training on %d samples × %d genes.", *prepared.values.shape)
    trainers.pretrain(
        model,
        prepared.values,
        config=plan.pretrain,
        seed=pretrain_seed,
        present=prepared.present,
        progress=progress,
        checkpoint=checkpoints.get("pretrain"),
    )
    head = ClassificationHead(enc_config.d_model, 2, seed=head_seed)
    logger.info("Training %d scouts.", len(tasks))
    guides = trainers.train_scouts(
        model,
        head,
        prepared.values,
        tasks,
        config=plan.scouts,
        seed=scout_seed,
        present=prepared.present,
        progress=progress,
        checkpoint=checkpoints.get("scouts"),
    )
    provenance = Provenance(
        corpus=corpus_description or f"corpus of {table.shape[0]} samples × {table.shape[1]} genes",
        n_samples=int(table.shape[0]),
        synthetic=_is_synthetic(corpus),
        random_state=random_state,
        n_scouts=len(tasks),
        build_config={
            **_build_record(plan, enc_config, trainers.device, trainers.context.world_size),
            "batch_key": batch_key,
        },
        library_version=__version__,
    )
    return Foundation(
        vocab=vocab,
        preprocessing=plain,
        encoder_config=enc_config,
        encoder_state=_cpu_state(model),
        head_init=_cpu_state(head),
        guides=guides,
        provenance=provenance,
    )


def _resolve_plan(preset, n_genes, pretrain_config, scout_config, n_scouts, cousin_tasks):
    plan = get_preset(preset) if isinstance(preset, str) else preset
    overrides = {
        "n_genes": n_genes,
        "pretrain": pretrain_config,
        "scouts": scout_config,
        "n_scouts": n_scouts,
        "cousin_tasks": cousin_tasks,
    }
    return replace(plan, **{key: value for key, value in overrides.items() if value is not None})


def _read_corpus(corpus: Any, preprocessing: PreprocessingConfig) -> ExpressionTable:
    if isinstance(corpus, ExpressionTable):
        table = corpus
    else:
        table = read_expression(
            corpus, layer=preprocessing.layer, gene_column=preprocessing.gene_column
        )
    check_values(table.values, table.sample_ids, table.gene_ids)  # errors name the sample
    if table.shape[0] < _MIN_SAMPLES:
        raise ValueError(
            f"The corpus has {table.shape[0]} samples; a foundation needs at least {_MIN_SAMPLES} "
            "(pre-training holds some out and cousin tasks cluster them). Add unlabelled samples."
        )
    return table


def _seeds(random_state: int, n: int) -> list[int]:
    children = np.random.SeedSequence(random_state).spawn(n)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in children]


def _choose_vocab(
    table: ExpressionTable,
    n_genes: int,
    config: PreprocessingConfig,
    batches: np.ndarray | None = None,
) -> GeneVocab:
    n_distinct = len(set(table.gene_ids.tolist()))
    return GeneVocab.from_most_variable(
        table.values,
        n_genes=min(n_genes, n_distinct),
        config=config,
        gene_ids=table.gene_ids,
        batches=batches,
    )


def corpus_batches(corpus: Any, batch_key: str | None, n_samples: int) -> np.ndarray | None:
    """The study label of every corpus sample (``corpus.obs[batch_key]``), or None."""
    if batch_key is None:
        return None
    obs = getattr(corpus, "obs", None)
    if obs is None or batch_key not in obs.columns:
        columns = [] if obs is None else list(obs.columns)
        raise ValueError(
            f"batch_key={batch_key!r} needs an AnnData corpus with that obs column (columns: "
            f"{columns}); pass batch_key=None to standardise the corpus as one study."
        )
    batches = obs[batch_key].astype(str).to_numpy()
    if len(batches) != n_samples:
        raise ValueError(f"obs[{batch_key!r}] has {len(batches)} rows for {n_samples} samples.")
    return batches


def standardize_per_batch(
    values: np.ndarray, batches: np.ndarray, *, min_std: float = MIN_STUDY_STD
) -> np.ndarray:
    """Each batch's rows with per-gene mean 0 and sd 1 (sd floored at ``min_std``), float32.

    Examples
    --------
    >>> v = np.array([[1.0, 0.0], [3.0, 0.0], [10.0, 4.0], [10.0, 8.0]])
    >>> standardize_per_batch(v, np.array(["a", "a", "b", "b"])).tolist()
    [[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]
    """
    out = np.empty(values.shape, dtype=np.float32)
    for batch in np.unique(batches):
        rows = batches == batch
        block = values[rows].astype(np.float64)
        scale = np.maximum(block.std(axis=0), min_std)
        out[rows] = (block - block.mean(axis=0)) / scale
    return out


def _encoder_config(
    encoder: EncoderConfig | dict | None, plan: FoundationPreset, n_genes: int
) -> EncoderConfig:
    if isinstance(encoder, EncoderConfig):
        return replace(encoder, n_genes=n_genes)
    settings = {"d_model": plan.d_model, "n_layers": plan.n_layers, "n_heads": plan.n_heads}
    settings.update(encoder or {})
    settings["n_genes"] = n_genes
    return EncoderConfig(**settings)


def _check_n_scouts(n_scouts: int) -> None:
    if isinstance(n_scouts, bool) or not isinstance(n_scouts, int | np.integer) or n_scouts < 1:
        raise ValueError(
            f"n_scouts must be an integer >= 1 (one scout per cousin task), got {n_scouts!r}. "
            "Pass n_scouts=None to use the preset's number."
        )


def _checkpoints(checkpoint_dir: str | os.PathLike | None, every: int) -> dict:
    if checkpoint_dir is None:
        return {}
    folder = Path(checkpoint_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"checkpoint_dir {folder} is a file, not a folder; pass a folder path (it is "
            "created when missing)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "pretrain": CheckpointConfig(folder / "pretrain.pt", every_n_steps=every),
        "scouts": CheckpointConfig(folder / "scouts.pt", every_n_steps=every),
    }


def _cousin_tasks(values: np.ndarray, plan: FoundationPreset, seed: int) -> list:
    from gtlomics.scouts import ScoutCapWarning, shift_to_nonnegative

    values = shift_to_nonnegative(values)  # standardised or rank values are negative by design
    generator = plan.task_generator(values.shape[0], seed)
    with warnings.catch_warnings():  # sizes scaled to the corpus on purpose: log, don't warn
        warnings.simplefilter("ignore", ScoutCapWarning)
        generator.fit(values)
    logger.info(
        "Cousin tasks: %d clusters, %d tasks (PCA %d → UMAP %d).",
        generator.n_clusters_,
        len(generator.tasks_),
        generator.n_pca_,
        generator.n_components_,
    )
    return list(generator.tasks_)


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu").clone() for name, t in module.state_dict().items()}


def _is_synthetic(corpus: Any) -> bool:
    uns = getattr(corpus, "uns", None)
    return bool(uns is not None and "synthetic" in uns)


def _build_record(
    plan: FoundationPreset,
    enc_config: EncoderConfig,
    device: torch.device | None = None,
    world_size: int = 1,
) -> dict[str, Any]:
    """What the build ran with: sizes, configs, and where it trained (device type, processes)."""
    return {
        "device": "cpu" if device is None else device.type,
        "world_size": world_size,
        "encoder": enc_config.to_dict(),
        "pretrain": _plain(plan.pretrain),
        "scouts": _plain(plan.scouts),
        "cousin_tasks": plan.cousin_tasks.to_dict(),
        "n_scouts": plan.n_scouts,
        "n_genes": plan.n_genes,
    }


def _plain(config: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)
