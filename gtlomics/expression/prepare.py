"""Align any input to a GeneVocab and normalise it: the one call models make."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gtlomics.expression.config import PreprocessingConfig, ReadSettings
from gtlomics.expression.scale import (
    DuplicateGeneWarning,
    Scale,
    aligned_log1p,
    checked_scale,
    warn_repeated_genes,
)
from gtlomics.expression.table import ExpressionTable, read_expression

if TYPE_CHECKING:
    from gtlomics.expression.vocab import GeneVocab

__all__ = [
    "DuplicateGeneWarning",
    "PreparedExpression",
    "check_overlap",
    "prepare_expression",
    "prepare_table",
]


@dataclass(frozen=True)
class PreparedExpression:
    """Expression aligned to a vocabulary, ready for the encoder.

    Attributes
    ----------
    values
        ``float32 (n_samples, n_genes_vocab)`` log1p of library-size normalised values, in vocab
        order; ``0.0`` where the gene is absent.
    present
        ``bool (n_genes_vocab,)``: False for vocabulary genes missing from the input.
    sample_ids
        ``(n_samples,)`` sample ids.
    n_matched
        Number of vocabulary genes found in the input (``present.sum()``).
    input_scale
        How the input was read: ``"counts"`` (normalised here) or ``"log1p"`` (used as given).
    """

    values: np.ndarray
    present: np.ndarray
    sample_ids: np.ndarray
    n_matched: int
    input_scale: Scale


def prepare_expression(
    X: Any,
    vocab: GeneVocab,
    config: PreprocessingConfig | None = None,
    *,
    gene_ids: Any = None,
    sample_ids: Any = None,
    reading: ReadSettings | None = None,
) -> PreparedExpression:
    """Read ``X`` (from ``reading``'s layer and gene column), check it, normalise it and align
    it to ``vocab``.

    Counts are scaled to ``config.target_sum`` per sample (library size over *all* input genes)
    then ``log1p``-transformed; log1p input is used as given (see
    :class:`PreprocessingConfig`). Input columns that map to one vocabulary gene are summed on the
    linear scale with a :class:`DuplicateGeneWarning`.

    Parameters
    ----------
    X
        AnnData, DataFrame, array (with ``gene_ids``) or an :class:`ExpressionTable`.
    vocab
        The gene vocabulary to align to.
    config
        Preprocessing settings; default :class:`PreprocessingConfig()`.
    gene_ids, sample_ids
        Ids for array input.
    reading
        Where an AnnData keeps its values and gene ids; default ``.X`` and ``var_names``.

    Returns
    -------
    PreparedExpression

    Raises
    ------
    ValueError
        NaN/inf or negative values (naming sample and gene), a scale contradicting
        ``config.input_scale``, empty libraries, or too little overlap with ``vocab``.

    Examples
    --------
    >>> import numpy as np
    >>> from gtlomics.expression import GeneVocab
    >>> vocab = GeneVocab(("g1", "g2", "g3"))
    >>> out = prepare_expression(np.array([[1, 3]]), vocab, gene_ids=["g2", "g1"])
    >>> out.present.tolist(), out.n_matched
    ([True, True, False], 2)
    """
    config = config or PreprocessingConfig()
    reading = reading or ReadSettings()
    if isinstance(X, ExpressionTable):
        table = X
    else:
        table = read_expression(
            X,
            layer=reading.layer,
            gene_column=reading.gene_column,
            gene_ids=gene_ids,
            sample_ids=sample_ids,
        )
    return prepare_table(table, vocab, config)


def prepare_table(
    table: ExpressionTable,
    vocab: GeneVocab,
    config: PreprocessingConfig,
    *,
    scale: Scale | None = None,
    warn_duplicates: bool = True,
) -> PreparedExpression:
    """:func:`prepare_expression` on an already-read table; ``scale`` overrides auto-detection."""
    resolved = checked_scale(table, scale or config.input_scale)
    targets = vocab.positions(table.gene_ids)
    n_matched = check_overlap(targets, table.gene_ids, vocab, config.min_overlap)
    if warn_duplicates:
        warn_repeated_genes(targets, vocab.genes)
    values = aligned_log1p(table, targets, len(vocab), config, resolved)
    present = np.zeros(len(vocab), dtype=bool)
    present[targets[targets >= 0]] = True
    return PreparedExpression(values, present, table.sample_ids, n_matched, resolved)


def check_overlap(
    targets: np.ndarray, gene_ids, vocab: GeneVocab, min_overlap: float, *, what: str = "vocabulary"
) -> int:
    """Number of ``vocab`` genes found (``targets`` = ``vocab.positions(gene_ids)``); too few is
    a ``ValueError`` that shows an id of each side (``what`` names the vocabulary's role)."""
    n_matched = int(np.unique(targets[targets >= 0]).size)
    if n_matched == 0 or n_matched < min_overlap * len(vocab):
        raise ValueError(
            f"Only {n_matched} of {len(vocab)} {what} genes ({n_matched / len(vocab):.1%}) "
            f"were found in the input (min_overlap={min_overlap:.0%}). Example {what} id: "
            f"{vocab.genes[0]!r}; example input id: {gene_ids[0]!r}. Are both the same id type "
            "(Ensembl, symbol, RefSeq)? Map the ids, or pass gene_column= to read another "
            "adata.var column."
        )
    return n_matched
