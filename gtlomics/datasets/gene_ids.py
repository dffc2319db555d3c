"""Gene identifier helpers: strip Ensembl versions, map symbols / RefSeq ids to Ensembl ids.

The maps are user-supplied files (never bundled): a link table with columns
``ensembl_id, symbol, entrez_id, refseq`` (one row per link, empty = unknown) and, optionally, an
alias table with columns ``lookup_symbol, symbol, ensembl_id, mgi_id, kind, n_genes``.
An id that maps to several Ensembl genes is ambiguous and left unmapped ("").
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["harmonize_to_ensembl", "map_gene_ids", "strip_ensembl_version"]

IdKind = Literal["symbol", "refseq"]
_VERSION = re.compile(r"^(ENS[A-Z]*[GTP]\d+)\.\d+(_PAR_Y)?$")
_REFSEQ_VERSION = re.compile(r"^([A-Z]{2}_\d+)\.\d+$")


def strip_ensembl_version(ids) -> np.ndarray:
    """Drop Ensembl version suffixes: ``ENSMUSG00000000001.4`` → ``ENSMUSG00000000001``.

    ``_PAR_Y`` suffixes (GENCODE pseudo-autosomal copies) are kept, so ids stay unique. Other ids
    pass unchanged.

    Examples
    --------
    >>> strip_ensembl_version(["ENSG00000002586.18_PAR_Y", "ERCC-00002", "ENSMUSG01.2"]).tolist()
    ['ENSG00000002586_PAR_Y', 'ERCC-00002', 'ENSMUSG01']
    """
    return np.asarray([_VERSION.sub(r"\1\2", str(i)) for i in ids], dtype=object).astype(str)


def map_gene_ids(
    ids,
    *,
    map_path: str | os.PathLike,
    from_: IdKind = "symbol",
    to: Literal["ensembl"] = "ensembl",
    aliases_path: str | os.PathLike | None = None,
) -> np.ndarray:
    """Map gene symbols or RefSeq ids to Ensembl gene ids.

    Parameters
    ----------
    ids : sequence of str
        Ids to map (RefSeq version suffixes such as ``.2`` are ignored).
    map_path : path-like
        Link table (format of ``mouse_gene_map.csv.gz``).
    from_ : {"symbol", "refseq"}
        The kind of ``ids``.
    to : {"ensembl"}
        Target id kind.
    aliases_path : path-like, optional
        Alias table; symbols not found exactly are looked up as unambiguous aliases.

    Returns
    -------
    numpy.ndarray of str
        Ensembl ids, "" where unmapped or ambiguous.
    """
    if to != "ensembl" or from_ not in ("symbol", "refseq"):
        raise ValueError(
            f"map_gene_ids maps 'symbol' or 'refseq' to 'ensembl'; got from_={from_!r}, to={to!r}"
        )
    lookup = _lookup(str(Path(map_path)), from_, "ensembl_id, symbol, entrez_id, refseq")
    keys = [_REFSEQ_VERSION.sub(r"\1", str(i)) if from_ == "refseq" else str(i) for i in ids]
    mapped = [lookup.get(k, "") for k in keys]
    if aliases_path is not None and from_ == "symbol":
        expected = "the alias table format (lookup_symbol, symbol, ensembl_id, ...)"
        aliases = _lookup(str(Path(aliases_path)), "lookup_symbol", expected)
        mapped = [m or aliases.get(k, "") for m, k in zip(mapped, keys, strict=True)]
    return np.asarray(mapped, dtype=object).astype(str)


@functools.lru_cache(maxsize=6)
def _lookup(path: str, column: str, expected: str) -> Mapping[str, str]:
    """``column`` → Ensembl id, for the ids of ``path`` that link to exactly one Ensembl gene
    (read-only: the cache shares it between calls)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"ensembl_id", column} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; expected {expected}")
    links = table.loc[(table[column] != "") & (table["ensembl_id"] != ""), [column, "ensembl_id"]]
    links = links.drop_duplicates()
    counts = links[column].value_counts()
    unique = links[links[column].isin(counts.index[counts == 1])]
    return MappingProxyType(dict(zip(unique[column], unique["ensembl_id"], strict=True)))


def harmonize_to_ensembl(
    adata,
    *,
    map_path: str | os.PathLike,
    from_: IdKind = "symbol",
    aliases_path: str | os.PathLike | None = None,
    layer: str | None = None,
):
    """Return a copy of ``adata`` with Ensembl ``var_names``; duplicates summed, unmapped dropped.

    Parameters
    ----------
    adata : anndata.AnnData
        Samples × genes with symbols or RefSeq ids in ``var_names``.
    map_path, from_, aliases_path
        As in :func:`map_gene_ids`.
    layer : str, optional
        Matrix to harmonise instead of ``.X`` (the result keeps it in ``.X``).

    Returns
    -------
    anndata.AnnData
        ``obs`` unchanged; ``uns['gene_id_mapping']`` records how many ids mapped.
    """
    import anndata as ad

    ensembl = map_gene_ids(
        adata.var_names, map_path=map_path, from_=from_, aliases_path=aliases_path
    )
    keep = np.flatnonzero(ensembl != "")
    if keep.size == 0:
        raise ValueError(
            f"none of the {adata.n_vars} var_names mapped to Ensembl from {from_!r}; "
            f"are they {from_} ids? Try from_='symbol' or 'refseq'"
        )
    targets, column = np.unique(ensembl[keep], return_inverse=True)
    summing = sp.csr_matrix(
        (np.ones(keep.size), (keep, column)), shape=(adata.n_vars, targets.size)
    )
    matrix = adata.layers[layer] if layer is not None else adata.X
    summed = matrix @ summing
    result = ad.AnnData(
        summed if sp.issparse(summed) else np.asarray(summed),
        obs=adata.obs.copy(),
        var=pd.DataFrame(index=pd.Index(targets, name="ensembl_id")),
    )
    result.uns["gene_id_mapping"] = {
        "from": from_,
        "n_input": int(adata.n_vars),
        "n_mapped": int(keep.size),
        "n_ensembl": int(targets.size),
    }
    return result
