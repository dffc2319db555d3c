"""``build_foundation``: corpus → vocabulary → cousin tasks → pre-training → scouts → Foundation.

One pipeline for every corpus (:func:`~gtlomics.corpus.open_corpus`): an in-memory AnnData or
DataFrame, or an ``.h5ad`` file read chunk by chunk with memory bounded by
:class:`~gtlomics.corpus.CorpusSizes`. Stages, each seeded by its own child of
``np.random.SeedSequence(random_state)``:

1. keep the corpus's ``n_genes`` most variable genes (:class:`GeneVocab`), chosen on every row
   of an in-memory corpus or on ``vocab_sample`` rows of a file (within studies with
   ``batch_key``);
2. align and normalise it, and standardise each study on its own with ``batch_key``;
3. cousin tasks from the *unlabelled* corpus (:class:`~gtlomics.corpus.SubsampledCousinTasks`:
   PCA → UMAP → KMeans → pairs of clusters on at most ``n_subsample`` rows), drawn before
   training so a corpus they cannot use fails in seconds;
4. masked-expression pre-training of a fresh encoder (:func:`~gtlomics.train.pretrain`: all rows
   shuffled in memory, or chunk-wise shuffles of a file);
5. one seeded binary head (``head_init``) and one scout per task from the same starting point
   (:func:`~gtlomics.train.train_scouts`), whose mean squared changes are the guides.

With ``checkpoint_dir`` both training stages checkpoint there and a re-run with the same
arguments resumes where a killed run stopped, ending with the same foundation. Under
``torchrun`` (``distributed=True`` in an initialised process group of k > 1 ranks) every rank
calls ``build_foundation`` with the same arguments: pre-training runs under DDP, rank 0 draws the
cousin tasks and broadcasts them, the scouts are sharded over the ranks, and every rank returns
the same foundation.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gtlomics._version import __version__
from gtlomics.corpus import (
    ChunkedCorpus,
    CorpusSizes,
    SubsampledCousinTasks,
    open_corpus,
    read_rows,
)
from gtlomics.expression import ExpressionTable, GeneVocab, PreprocessingConfig, ReadSettings
from gtlomics.foundation.presets import CousinTaskSettings, FoundationPreset, get_preset
from gtlomics.foundation.record import Foundation, Provenance
from gtlomics.foundation.timings import timed_phase
from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.scouts import ScoutCapWarning
from gtlomics.train import (
    CheckpointConfig,
    GuideValues,
    PretrainConfig,
    ScoutConfig,
    pretrain,
    train_scouts,
)
from gtlomics.train.distributed import (
    DistributedContext,
    broadcast_from_main,
    process_group_context,
)
from gtlomics.train.runtime import resolve_device

__all__ = ["DEFAULT_VALUE_ENCODING", "build_foundation"]

logger = logging.getLogger(__name__)

DEFAULT_VALUE_ENCODING = "log"
"""Value encoding of a foundation built without ``preprocessing``: log values (not ranks).

Chosen by the protocol fixed in ``docs/results.md``: mean per-fold AUROC of the default
``GTLClassifier`` over the four benchmark tasks run with both encodings, log 0.9203 vs rank
0.9200: a tie decided by 0.0003. Rank won OSD-758 by 0.11 and lost Benayoun aging by 0.11 (both
encodings score 1.000 on the neutrophil tasks). ``value_encoding="rank"`` stays an option.
"""


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
    sizes: CorpusSizes | None = None,
    reading: ReadSettings | None = None,
) -> Foundation:
    """Build a :class:`Foundation` from an unlabelled expression corpus.

    Parameters
    ----------
    corpus : AnnData, DataFrame, ExpressionTable, or path
        Samples × genes, raw counts or log1p values, gene ids in ``var_names`` / columns. A path
        to an ``.h5ad`` file (or a backed AnnData) is read chunk by chunk, so a corpus larger
        than memory can be used: dense or CSR ``X`` (a CSC matrix is refused; convert it once
        with ``adata.X = adata.X.tocsr()``).
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
        PCA / UMAP / KMeans settings; scaled down for small corpora (or subsamples).
    preprocessing : PreprocessingConfig, optional
        How the corpus is normalised (the foundation keeps it, with the resolved input scale,
        for its users). Default:
        ``PreprocessingConfig(value_encoding=DEFAULT_VALUE_ENCODING)`` (log values).
    corpus_description : str, optional
        Recorded in the provenance (default: the corpus's shape, or the file's name).
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
        every rank calls ``build_foundation`` with the same arguments and returns the same
        foundation. Without a process group (or with one rank) this is a plain build.
        ``False`` (the default) never joins one, even when it exists.
    batch_key : str, optional
        ``obs`` column naming each sample's study (or batch). Each study is then standardised
        on its own (per-gene mean 0, sd 1, sd floored at 0.1) before cousin tasks, pre-training
        and scouting, and the vocabulary keeps the genes most variable *within* studies: the
        encoder learns within-study variation, which is what a classifier standardised on its
        own training samples (``GTLClassifier(standardize="study")``) shows it.
    sizes : CorpusSizes, optional
        Row counts that bound memory: ``chunk_size`` (rows of a file read at a time),
        ``n_subsample`` (rows clustered for cousin tasks, any corpus), ``vocab_sample`` (rows of
        a file the vocabulary is chosen on), ``max_holdout`` (held-out rows of a file).
    reading : ReadSettings, optional
        Where the corpus keeps its values (``layer``) and gene ids (``gene_column``); default
        ``X`` and ``var_names``.

    Returns
    -------
    Foundation

    Raises
    ------
    FileNotFoundError
        No file at a corpus path.
    ValueError
        Bad sizes, a corpus that cannot be used (too few samples, bad values, identical samples,
        too few clusters for cousin tasks, an unreadable or CSC file), a ``checkpoint_dir`` that
        is a file, or a CUDA ``device`` on a machine without CUDA: all found before pre-training
        starts. Messages about a file name it.
    """
    context = _context(device, distributed)
    plan = _resolve_plan(preset, n_genes, pretrain_config, scout_config, n_scouts, cousin_tasks)
    _check_n_scouts(plan.n_scouts)
    sizes = sizes or CorpusSizes()
    preprocessing = preprocessing or PreprocessingConfig(value_encoding=DEFAULT_VALUE_ENCODING)
    source = open_corpus(corpus, reading, batch_key)
    seeds = _seeds(random_state, 6)
    encoder_seed, pretrain_seed, task_seed, head_seed, scout_seed, vocab_seed = seeds
    checkpoints = _checkpoints(checkpoint_dir, checkpoint_every)
    with source.naming_errors():
        sample, sample_batches = source.vocab_sample(
            sizes.vocab_sample, vocab_seed, sizes.chunk_size
        )
        vocab = _choose_vocab(sample, plan.n_genes, preprocessing, sample_batches)
        prepared = source.prepare(vocab, preprocessing, sample, sizes.chunk_size)
        # Cousin tasks need only the corpus: drawn first, a corpus they cannot use (identical
        # samples, too few clusters) fails in seconds, not after hours of pre-training.
        with timed_phase("tasks"):
            cousins = _shared_cousin_tasks(prepared.chunks, plan, sizes, task_seed, context)
    preprocessing = replace(preprocessing, input_scale=prepared.input_scale)
    if batch_key is not None:
        plan = replace(plan, pretrain=replace(plan.pretrain, standardize_inputs=False))
    enc_config = _encoder_config(encoder, plan, len(vocab))
    model = ExpressionEncoder(enc_config, seed=encoder_seed)
    logger.info("Pre-training on %d samples × %d genes.", source.n_samples, len(vocab))
    with timed_phase("pretrain"):
        pretrain(
            model,
            _on_device(prepared.training_data, context.device),
            config=plan.pretrain,
            seed=pretrain_seed,
            present=prepared.present,
            device=context.device,
            max_holdout=sizes.max_holdout,
            progress=progress,
            checkpoint=checkpoints.get("pretrain"),
            distributed=context.sharded,
        )
    head = ClassificationHead(enc_config.d_model, 2, seed=head_seed)
    logger.info("Training %d scouts on %d rows.", len(cousins.tasks), len(cousins.rows))
    with timed_phase("scouts"):
        values = cousins.values
        if values is None:  # a rank other than 0 under torchrun reads its copy of the rows
            values = read_rows(prepared.chunks, cousins.rows)
        result = train_scouts(
            model,
            head,
            torch.as_tensor(values).to(context.device),
            cousins.tasks,
            config=plan.scouts,
            seed=scout_seed,
            present=prepared.present,
            progress=progress,
            checkpoint=checkpoints.get("scouts"),
            distributed=context.sharded,
        )
    build_config = {**_build_record(plan, enc_config, context), "batch_key": batch_key}
    build_config["n_subsample"] = sizes.n_subsample  # bounds the clustered rows of any corpus
    if source.streamed:
        build_config["streaming"] = sizes.to_dict()
    provenance = Provenance(
        corpus=corpus_description or source.describe(),
        n_samples=int(source.n_samples),
        synthetic=source.synthetic,
        random_state=random_state,
        n_scouts=len(cousins.tasks),
        build_config=build_config,
        library_version=__version__,
    )
    return Foundation(
        vocab=vocab,
        preprocessing=preprocessing,
        encoder_config=enc_config,
        encoder_state=_cpu_state(model),
        head_init=_cpu_state(head),
        guides=_on_cpu(result.guides),
        provenance=provenance,
    )


@dataclass(frozen=True)
class _CousinDraw:
    """The cousin tasks rank 0 drew: the subsample's corpus rows, the tasks indexing them, and
    the subsample's values (None on the other ranks of a torchrun job: not broadcast)."""

    rows: np.ndarray
    tasks: list
    values: np.ndarray | None


def _shared_cousin_tasks(
    chunks: ChunkedCorpus,
    plan: FoundationPreset,
    sizes: CorpusSizes,
    seed: int,
    context: DistributedContext,
) -> _CousinDraw:
    """Rank 0 draws the cousin tasks and keeps their values; every other rank receives the rows
    and tasks only (the values are large and each rank can read them itself)."""
    drawn = None

    def draw() -> _CousinDraw:
        nonlocal drawn
        drawn = _draw_cousin_tasks(chunks, plan, sizes, seed)
        return replace(drawn, values=None)

    shared = broadcast_from_main(draw, context)
    return drawn if drawn is not None else shared


def _draw_cousin_tasks(
    chunks: ChunkedCorpus, plan: FoundationPreset, sizes: CorpusSizes, seed: int
) -> _CousinDraw:
    n_rows = min(sizes.n_subsample, chunks.n_samples)
    generator = plan.task_generator(n_rows, seed)
    cousins = SubsampledCousinTasks(n_subsample=sizes.n_subsample, generator=generator, seed=seed)
    with warnings.catch_warnings():  # sizes scaled to the corpus on purpose: log, don't warn
        warnings.simplefilter("ignore", ScoutCapWarning)
        cousins.fit(chunks)
    logger.info(
        "Cousin tasks on %d of %d rows: %d clusters, %d tasks (PCA %d → UMAP %d).",
        len(cousins.rows_),
        chunks.n_samples,
        generator.n_clusters_,
        len(cousins.tasks_),
        generator.n_pca_,
        generator.n_components_,
    )
    return _CousinDraw(cousins.rows_, list(cousins.tasks_), cousins.values_)


def _context(device: str | torch.device, distributed: bool) -> DistributedContext:
    """This build's place: rank 0 of 1 on ``device``, or the rank's device in a process group
    (a ``GTLClassifier`` fit inside a DDP job must not turn into a distributed build)."""
    context = process_group_context(join=distributed)
    if context.sharded:
        return context
    return replace(context, device=resolve_device(device))


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


def _seeds(random_state: int, n: int) -> list[int]:
    children = np.random.SeedSequence(random_state).spawn(n)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in children]


def _choose_vocab(
    table: ExpressionTable,
    n_genes: int,
    config: PreprocessingConfig,
    batches: np.ndarray | None,
) -> GeneVocab:
    n_distinct = len(set(table.gene_ids.tolist()))
    return GeneVocab.from_most_variable(
        table.values,
        n_genes=min(n_genes, n_distinct),
        config=config,
        gene_ids=table.gene_ids,
        batches=batches,
    )


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


def _on_device(data: np.ndarray | ChunkedCorpus, device: torch.device):
    """An in-memory array as a tensor on ``device``; a chunked corpus as it is."""
    if isinstance(data, np.ndarray):
        return torch.as_tensor(data).to(device)
    return data


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu").clone() for name, t in module.state_dict().items()}


def _on_cpu(guides: GuideValues) -> GuideValues:
    raw = {name: tensor.cpu() for name, tensor in guides.raw.items()}
    return GuideValues(raw=raw, n_scouts=guides.n_scouts)


def _build_record(
    plan: FoundationPreset, enc_config: EncoderConfig, context: DistributedContext
) -> dict[str, Any]:
    """What the build ran with: sizes, configs, and where it trained (device type, processes)."""
    return {
        "device": context.device.type,
        "world_size": context.world_size,
        "encoder": enc_config.to_dict(),
        "pretrain": asdict(plan.pretrain),
        "scouts": asdict(plan.scouts),
        "cousin_tasks": plan.cousin_tasks.to_dict(),
        "n_scouts": plan.n_scouts,
        "n_genes": plan.n_genes,
    }
