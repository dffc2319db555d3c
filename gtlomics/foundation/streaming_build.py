"""``build_foundation_streaming``: a :class:`Foundation` from an on-disk ``.h5ad`` larger than RAM.

The stages and their seeds are those of :func:`~gtlomics.foundation.build_foundation`; what
differs is how the corpus is read, so that memory is bounded by ``chunk_size``, ``n_subsample``
and ``vocab_sample``, never by the number of samples in the file:

1. the gene vocabulary (the ``n_genes`` most variable genes) is chosen on ``vocab_sample`` rows
   drawn uniformly from the file, read ``chunk_size`` rows at a time; the input scale
   (``"auto"``) is resolved on them as well and then enforced on every chunk;
2. cousin tasks come from :class:`~gtlomics.scale.SubsampledCousinTasks`: PCA → UMAP → KMeans on
   ``n_subsample`` uniformly drawn rows (one streaming pass, which also checks every value of
   the file before training starts);
3. masked-expression pre-training streams the file through :class:`~gtlomics.scale.H5adCorpus`
   (:func:`~gtlomics.train.streaming.pretrain_streaming`: rows shuffled within each chunk);
4. the scouts train on the subsample's values (:func:`~gtlomics.train.train_scouts`).

Pre-training differs from the in-memory build (chunk-wise shuffling, a held-out set capped at
4096 rows), so a streamed foundation is not the same as ``build_foundation`` on the same file;
the same ``random_state`` gives the same streamed foundation (bit-identical on CPU at a fixed
thread count).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gtlomics._version import __version__
from gtlomics.expression import (
    GeneVocab,
    PreprocessingConfig,
)
from gtlomics.expression.prepare import prepare_table
from gtlomics.foundation.build import (
    _MIN_SAMPLES,
    _build_record,
    _check_n_scouts,
    _choose_vocab,
    _cpu_state,
    _encoder_config,
    _resolve_plan,
    _seeds,
)
from gtlomics.foundation.h5ad_source import H5adLayout, inspect_h5ad, read_sample_rows
from gtlomics.foundation.presets import CousinTaskSettings, FoundationPreset
from gtlomics.foundation.record import Foundation, Provenance
from gtlomics.foundation.trainers import BuildTrainers, _timed
from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder
from gtlomics.scale import H5adCorpus, SubsampledCousinTasks
from gtlomics.train import PretrainConfig, ScoutConfig, pretrain, train_scouts
from gtlomics.train.runtime import resolve_device
from gtlomics.train.streaming import pretrain_streaming

__all__ = [
    "SampledVocab",
    "StreamingSizes",
    "build_foundation_streaming",
    "choose_vocab_on_sample",
]

logger = logging.getLogger(__name__)

#: Most held-out rows pre-training keeps in memory (``pretrain_streaming(max_holdout=...)``).
MAX_HOLDOUT = 4096


@dataclass(frozen=True)
class StreamingSizes:
    """The row counts that bound a streamed build's memory (recorded in the provenance).

    Parameters
    ----------
    chunk_size : int
        Rows read from the file at a time (every pass, and the sampling reads).
    n_subsample : int
        Rows clustered for the cousin tasks and held in memory for the scouts.
    vocab_sample : int
        Rows the gene vocabulary (and the input scale) is chosen on.
    max_holdout : int
        Most held-out pre-training rows kept in memory.
    """

    chunk_size: int
    n_subsample: int
    vocab_sample: int
    max_holdout: int = MAX_HOLDOUT

    def __post_init__(self) -> None:
        _check_count("chunk_size", self.chunk_size, 1)
        _check_count("n_subsample", self.n_subsample, _MIN_SAMPLES)
        _check_count("vocab_sample", self.vocab_sample, _MIN_SAMPLES)
        _check_count("max_holdout", self.max_holdout, 0)

    def to_dict(self) -> dict[str, int]:
        """Plain JSON-serialisable dict."""
        return asdict(self)


@dataclass(frozen=True)
class SampledVocab:
    """The vocabulary chosen on a row sample, with what the sample says about the file.

    Attributes
    ----------
    vocab : GeneVocab
        The most variable genes of the sample, most variable first.
    present : ndarray
        ``bool (len(vocab),)``: vocabulary genes found in the file (all, unless ids repeat).
    input_scale : {"counts", "log1p"}
        The resolved input scale, enforced on every chunk afterwards.
    n_rows : int
        Rows the choice was made on.
    """

    vocab: GeneVocab
    present: np.ndarray
    input_scale: Literal["counts", "log1p"]
    n_rows: int


def build_foundation_streaming(
    path: str | os.PathLike,
    *,
    preset: str | FoundationPreset = "default",
    n_genes: int | None = None,
    encoder: EncoderConfig | dict | None = None,
    pretrain_config: PretrainConfig | None = None,
    scout_config: ScoutConfig | None = None,
    n_scouts: int | None = None,
    cousin_tasks: CousinTaskSettings | None = None,
    preprocessing: PreprocessingConfig | None = None,
    n_subsample: int = 20_000,
    chunk_size: int = 8192,
    vocab_sample: int = 2_000,
    corpus_description: str | None = None,
    random_state: int = 0,
    progress: bool = False,
    device: str | torch.device = "auto",
) -> Foundation:
    """Build a :class:`Foundation` from an ``.h5ad`` file read chunk by chunk (bounded memory).

    Same stages, presets, overrides and seeds as :func:`~gtlomics.foundation.build_foundation`
    (see the module notes for what is streamed and what is subsampled). Memory is about
    ``chunk_size`` rows of the file, plus ``n_subsample × n_genes`` float32 values (cousin tasks
    and scouts), plus ``vocab_sample`` rows of every gene in the file a few times over (float32
    and float64 copies while genes are ranked), plus the sample ids (~65 bytes a row).

    Parameters
    ----------
    path : str or path
        An ``.h5ad`` file written by anndata: dense or CSR ``X`` (or ``layers[layer]``) of raw
        counts or log1p values. A CSC matrix is refused (its rows cannot be read one slice at a
        time); convert it once with ``adata.X = adata.X.tocsr()``.
    preset, n_genes, encoder, pretrain_config, scout_config, n_scouts, cousin_tasks
        As for :func:`~gtlomics.foundation.build_foundation`; every ``CousinTaskSettings`` field
        applies to the subsample (scaled down when it is small).
    preprocessing : PreprocessingConfig, optional
        Every field applies: ``layer`` and ``gene_column`` say where the file's values and gene
        ids are, ``target_sum``, ``input_scale`` and ``min_overlap`` how they are normalised.
        ``input_scale="auto"`` is resolved on the vocabulary sample; the foundation records the
        resolved scale (and, as ``build_foundation`` does, no layer or gene column).
    n_subsample : int
        Rows (>= 8) drawn for the cousin tasks; the scouts train on them.
    chunk_size : int
        Rows read from the file at a time.
    vocab_sample : int
        Rows (>= 8) drawn to rank the genes by variance.
    corpus_description : str, optional
        Recorded in the provenance (default: the file name and its number of rows).
    random_state : int
        Root seed of every stage; the same value gives the same foundation.
    progress : bool
        Progress bars for the training stages.
    device : str or torch.device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda:1"``... On CUDA training
        runs under bf16 autocast (not bit-identical to CPU). The build runs in this one process,
        even inside a ``torchrun`` process group (streaming is not combined with DDP yet).

    Returns
    -------
    Foundation
        Saves, loads and fine-tunes like any other; ``provenance.n_samples`` is the file's
        number of rows and ``provenance.build_config["streaming"]`` the sizes above.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        A file that is not a readable AnnData ``.h5ad``, a CSC matrix, a missing layer or gene
        column, fewer than 8 samples, NaN / infinite / negative values, an input scale that
        changes between rows, bad sizes, or a CUDA ``device`` without CUDA: all found before
        pre-training starts. Messages about the file name it.
    TypeError
        ``path`` is not a path (an in-memory corpus goes to ``build_foundation``).

    Examples
    --------
    >>> foundation = build_foundation_streaming("recount3_mouse.h5ad")  # doctest: +SKIP
    >>> foundation.save("foundations/mouse")  # doctest: +SKIP
    """
    # One process, even inside a process group (streaming is not combined with torchrun yet).
    trainers = BuildTrainers.current(pretrain, train_scouts, resolve_device(device))
    sizes = StreamingSizes(chunk_size, n_subsample, vocab_sample)
    plan = _resolve_plan(preset, n_genes, pretrain_config, scout_config, n_scouts, cousin_tasks)
    _check_n_scouts(plan.n_scouts)
    preprocessing = preprocessing or PreprocessingConfig()
    layout = inspect_h5ad(path, preprocessing)
    encoder_seed, pretrain_seed, task_seed, head_seed, scout_seed, vocab_seed = _seeds(
        random_state, 6
    )
    with _naming_file(layout.path):
        chosen = choose_vocab_on_sample(layout, preprocessing, plan.n_genes, sizes, vocab_seed)
        stream_config = replace(preprocessing, input_scale=chosen.input_scale)
        corpus = H5adCorpus(layout.path, chosen.vocab, stream_config, chunk_size)
        cousins = trainers.cousin_tasks(lambda: _cousin_tasks(corpus, plan, sizes, task_seed))
    enc_config = _encoder_config(encoder, plan, len(chosen.vocab))
    model = ExpressionEncoder(enc_config, seed=encoder_seed)
    _pretrain(model, corpus, plan.pretrain, pretrain_seed, trainers.device, sizes, progress)
    head = ClassificationHead(enc_config.d_model, 2, seed=head_seed)
    logger.info("Training %d scouts on %d subsample rows.", len(cousins.tasks_), len(cousins.rows_))
    guides = trainers.train_scouts(
        model,
        head,
        cousins.values_,
        cousins.tasks_,
        config=plan.scouts,
        seed=scout_seed,
        present=chosen.present,
        progress=progress,
        checkpoint=None,
    )
    record = _build_record(plan, enc_config, trainers.device, trainers.context.world_size)
    provenance = Provenance(
        corpus=corpus_description or _describe(layout),
        n_samples=layout.n_samples,
        synthetic=layout.synthetic,
        random_state=random_state,
        n_scouts=len(cousins.tasks_),
        build_config={**record, "streaming": sizes.to_dict()},
        library_version=__version__,
    )
    return Foundation(
        vocab=chosen.vocab,
        preprocessing=replace(stream_config, layer=None, gene_column=None),
        encoder_config=enc_config,
        encoder_state=_cpu_state(model),
        head_init=_cpu_state(head),
        guides=guides,
        provenance=provenance,
    )


def choose_vocab_on_sample(
    layout: H5adLayout,
    preprocessing: PreprocessingConfig,
    n_genes: int,
    sizes: StreamingSizes,
    seed: int,
) -> SampledVocab:
    """The ``n_genes`` most variable genes of a uniform row sample, and its input scale.

    Reads ``sizes.vocab_sample`` rows (:func:`read_sample_rows`); ranks genes as
    ``build_foundation`` does on the whole corpus.
    """
    table = read_sample_rows(layout, preprocessing, sizes, seed)
    plain = replace(preprocessing, layer=None, gene_column=None)  # the table is already read
    vocab = _choose_vocab(table, n_genes, plain)
    prepared = prepare_table(table, vocab, plain, warn_duplicates=False)
    return SampledVocab(vocab, prepared.present, prepared.input_scale, table.shape[0])


def _pretrain(
    model: ExpressionEncoder,
    corpus: H5adCorpus,
    config: PretrainConfig,
    seed: int,
    device: torch.device,
    sizes: StreamingSizes,
    progress: bool,
) -> None:
    logger.info("Pre-training on %d × %d values, streamed.", corpus.n_samples, corpus.n_genes)
    with _timed("pretrain"):
        pretrain_streaming(
            model,
            corpus,
            config=config,
            seed=seed,
            device=device,
            max_holdout=sizes.max_holdout,
            progress=progress,
        )


def _cousin_tasks(
    corpus: H5adCorpus, plan: FoundationPreset, sizes: StreamingSizes, seed: int
) -> SubsampledCousinTasks:
    from gtlomics.scouts import ScoutCapWarning

    n_rows = min(sizes.n_subsample, corpus.n_samples)
    cousins = SubsampledCousinTasks(
        n_subsample=sizes.n_subsample, generator=plan.task_generator(n_rows, seed), seed=seed
    )
    with warnings.catch_warnings():  # sizes scaled to the subsample on purpose: log, don't warn
        warnings.simplefilter("ignore", ScoutCapWarning)
        cousins.fit(corpus)
    generator = cousins.generator_
    logger.info(
        "Cousin tasks on %d of %d rows: %d clusters, %d tasks (PCA %d → UMAP %d).",
        len(cousins.rows_),
        corpus.n_samples,
        generator.n_clusters_,
        len(cousins.tasks_),
        generator.n_pca_,
        generator.n_components_,
    )
    return cousins


@contextmanager
def _naming_file(path: Path) -> Iterator[None]:
    """Re-raise a reading stage's ``ValueError`` with the file's path in front."""
    try:
        yield
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"{path}: {error}") from error


def _describe(layout: H5adLayout) -> str:
    return f"{layout.path.name} ({layout.n_samples} samples × {layout.n_genes} genes, streamed)"


def _check_count(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}.")
