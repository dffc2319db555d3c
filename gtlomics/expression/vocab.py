"""GeneVocab: the ordered gene list a foundation model is built on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gtlomics.expression.config import PreprocessingConfig, ReadSettings
from gtlomics.expression.ids import duplicated_ids, strip_ensembl_version
from gtlomics.expression.variable_genes import most_variable_genes

__all__ = ["GeneVocab"]


@dataclass(frozen=True)
class GeneVocab:
    """An ordered, duplicate-free tuple of gene ids (Ensembl versions stripped).

    Inputs are aligned to it with :func:`~gtlomics.expression.prepare_expression`: vocabulary
    genes missing from an input become absent (masked) tokens, extra genes are dropped.

    Examples
    --------
    >>> vocab = GeneVocab(("ENSMUSG00000000001.4", "Actb"))
    >>> vocab.genes
    ('ENSMUSG00000000001', 'Actb')
    >>> vocab.positions(["Actb", "Gapdh"]).tolist()
    [1, -1]
    """

    genes: tuple[str, ...]

    def __post_init__(self) -> None:
        genes = strip_ensembl_version(self.genes)
        if genes.size == 0:
            raise ValueError("A GeneVocab needs at least one gene id.")
        repeated = duplicated_ids(genes)
        if repeated:
            raise ValueError(
                f"GeneVocab ids must be unique after removing Ensembl versions; repeated: "
                f"{repeated[:3]} ({len(repeated)} in all). Deduplicate the list first."
            )
        object.__setattr__(self, "genes", tuple(genes.tolist()))

    def __len__(self) -> int:
        return len(self.genes)

    def positions(self, gene_ids: Iterable[object]) -> np.ndarray:
        """Vocabulary position of each id in ``gene_ids`` (``-1`` where it is not in the vocab)."""
        index = {gene: i for i, gene in enumerate(self.genes)}
        stripped = strip_ensembl_version(gene_ids)
        return np.fromiter(
            (index.get(g, -1) for g in stripped), dtype=np.int64, count=stripped.size
        )

    def to_list(self) -> list[str]:
        """The gene ids as a plain list (e.g. for ``genes.txt``)."""
        return list(self.genes)

    @classmethod
    def from_list(cls, genes: Iterable[object]) -> GeneVocab:
        """Build from any iterable of ids (e.g. the lines of ``genes.txt``)."""
        return cls(tuple(str(g) for g in genes))

    @classmethod
    def from_most_variable(
        cls,
        X: Any,
        n_genes: int = 2048,
        config: PreprocessingConfig | None = None,
        *,
        gene_ids: Any = None,
        flavor: Literal["variance", "seurat"] = "variance",
        batches: Any = None,
        reading: ReadSettings | None = None,
    ) -> GeneVocab:
        """Select the ``n_genes`` most variable genes of a corpus.

        The corpus is library-size normalised and log1p transformed as ``config`` says (duplicate
        ids summed), then genes are ranked by ``flavor``:

        * ``"variance"`` (default): variance of the log1p-CPM values across samples, the usual
          choice for bulk RNA-seq (and the one behind the project's logistic-regression
          baselines). At CPM scale rarely detected genes have small log values, so they do not
          dominate as they would at a target sum of 1e4.
        * ``"seurat"``: scanpy's ``highly_variable_genes(flavor="seurat")`` normalised dispersion
          (dispersion of the linear values z-scored within 20 bins of mean expression), a
          *relative* score: genes that vary together at a similar mean share a bin and cancel
          out, and with few genes per bin the scores are noise.

        Exactly ``n_genes`` genes are kept, most variable first (so a smaller vocabulary is a
        prefix of a larger one), ties broken by input order; constant genes rank last. Asking for
        more genes than the corpus has keeps them all with a warning. The whole corpus is held in
        memory as float32 ``(n_samples, n_distinct_genes)``: subsample rows of very large corpora.

        Parameters
        ----------
        X
            Corpus: AnnData, DataFrame or array (with ``gene_ids``), as in ``read_expression``.
        n_genes
            Vocabulary size.
        config
            Preprocessing settings (target sum, input scale, value encoding).
        gene_ids
            Gene ids of an array input.
        flavor
            Ranking statistic, see above.
        batches
            One study (batch) label per sample: ``"variance"`` is then the mean of the
            within-study variances, weighted by study size, so genes that only tell studies or
            tissues apart do not crowd out those that vary inside a study.
        reading
            Where an AnnData keeps its values and gene ids (:class:`ReadSettings`).
        """
        if int(n_genes) < 1:
            raise ValueError(f"n_genes must be >= 1, got {n_genes}.")
        config = config or PreprocessingConfig()
        genes = most_variable_genes(X, int(n_genes), config, gene_ids, flavor, batches, reading)
        return cls(genes)
