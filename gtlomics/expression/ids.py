"""Gene identifiers: Ensembl version stripping and validation."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

__all__ = ["duplicated_ids", "strip_ensembl_version"]

# ENSG00000141510.17, ENSMUSG00000000001.4, ENSMUST...; ids of other styles are left untouched.
_ENSEMBL_VERSIONED = re.compile(r"^(ENS[A-Z]*[GTPE]\d{6,})\.\d+$")


def strip_ensembl_version(gene_ids: Iterable[object]) -> np.ndarray:
    """Return gene ids as strings with Ensembl version suffixes removed.

    ``ENSMUSG00000000001.4`` becomes ``ENSMUSG00000000001``; symbols, RefSeq ids and ``ERCC-``
    spike-ins are returned unchanged. Empty or missing ids are an error.

    Examples
    --------
    >>> strip_ensembl_version(["ENSMUSG00000000001.4", "ERCC-00002", "Actb"]).tolist()
    ['ENSMUSG00000000001', 'ERCC-00002', 'Actb']
    """
    texts = (_as_text(gene_id, position) for position, gene_id in enumerate(gene_ids))
    return np.asarray([_ENSEMBL_VERSIONED.sub(r"\1", text) for text in texts], dtype=object)


def duplicated_ids(gene_ids: np.ndarray) -> list[str]:
    """Ids that occur more than once, in order of first occurrence."""
    counts = Counter(str(gene_id) for gene_id in gene_ids)
    return [gene_id for gene_id, count in counts.items() if count > 1]


def _as_text(gene_id: object, position: int) -> str:
    missing = gene_id is None or (isinstance(gene_id, float) and np.isnan(gene_id))
    text = "" if missing else str(gene_id).strip()
    if not text:
        raise ValueError(
            f"Gene id at position {position} is {'missing (None/NaN)' if missing else 'empty'}; "
            "every gene needs an id. Fill or drop it, or pass gene_column= to read ids from "
            "another var column."
        )
    return text
