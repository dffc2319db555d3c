"""Read AnnData, DataFrames and arrays into one samples × genes table."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from gtlomics.expression.ids import duplicated_ids, strip_ensembl_version

__all__ = ["ExpressionTable", "check_numeric_dtype", "is_anndata", "read_expression"]

Matrix = np.ndarray | sp.csr_matrix


@dataclass(frozen=True)
class ExpressionTable:
    """Samples × genes values with their ids, as read from the user's input.

    Attributes
    ----------
    values
        ``(n_samples, n_genes)`` numeric ndarray or CSR matrix, unchanged from the input.
    gene_ids
        ``(n_genes,)`` strings, Ensembl version suffixes removed; may contain duplicates.
    sample_ids
        ``(n_samples,)`` strings.
    """

    values: Matrix
    gene_ids: np.ndarray
    sample_ids: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    @property
    def duplicate_gene_ids(self) -> list[str]:
        """Gene ids occurring more than once (after version stripping)."""
        return duplicated_ids(self.gene_ids)


def read_expression(
    X: Any,
    *,
    layer: str | None = None,
    gene_column: str | None = None,
    gene_ids: Any = None,
    sample_ids: Any = None,
) -> ExpressionTable:
    """Read a samples × genes matrix and its ids from AnnData, a DataFrame or an array.

    Parameters
    ----------
    X
        ``AnnData`` (in memory or backed; ``.X`` or a layer, dense or sparse), a pandas
        ``DataFrame`` with genes as columns and samples as index, or a 2-D ndarray / scipy sparse
        matrix together with ``gene_ids``.
    layer
        AnnData layer to read instead of ``.X``.
    gene_column
        AnnData ``var`` column holding the gene ids instead of ``var_names``.
    gene_ids
        Gene ids of the columns; required for arrays, not allowed otherwise.
    sample_ids
        Sample ids of arrays; default ``sample_0, sample_1, …``.

    Returns
    -------
    ExpressionTable
        The values unchanged (a backed AnnData is read into memory; use
        :func:`~gtlomics.corpus.iter_prepared_chunks` for bounded memory).

    Examples
    --------
    >>> import numpy as np
    >>> table = read_expression(np.ones((2, 2)), gene_ids=["ENSG00000141510.17", "ERCC-00002"])
    >>> table.gene_ids.tolist()
    ['ENSG00000141510', 'ERCC-00002']
    """
    if is_anndata(X):
        values, genes, samples = _from_anndata(X, layer, gene_column, gene_ids)
    elif isinstance(X, pd.DataFrame):
        _refuse_options("a DataFrame", layer=layer, gene_column=gene_column, gene_ids=gene_ids)
        values, genes, samples = _from_dataframe(X)
    else:
        _refuse_options("an array", layer=layer, gene_column=gene_column)
        values, genes, samples = _from_array(X, gene_ids, sample_ids)
    return ExpressionTable(
        values=values,
        gene_ids=strip_ensembl_version(genes),
        sample_ids=np.asarray([str(s) for s in samples], dtype=object),
    )


def is_anndata(obj: object) -> bool:
    """True for an ``anndata.AnnData`` (without importing anndata when it is not loaded)."""
    anndata = sys.modules.get("anndata")
    return anndata is not None and isinstance(obj, anndata.AnnData)


def check_numeric_dtype(dtype: np.dtype, where: str) -> None:
    """Refuse dtypes that cannot hold expression values (bool, complex, strings, objects)."""
    if dtype.kind not in "iuf":
        raise TypeError(
            f"{where} has dtype {dtype}; expression values must be integer or float numbers. "
            "Convert the matrix (e.g. X.astype(np.float32)) or drop non-numeric columns."
        )


def _from_anndata(adata: Any, layer: str | None, gene_column: str | None, gene_ids: Any):
    if gene_ids is not None:
        raise ValueError("gene_ids= is for arrays; for AnnData use var_names or gene_column=.")
    values = _anndata_matrix(adata, layer)
    if gene_column is None:
        genes = adata.var_names
    elif gene_column in adata.var.columns:
        genes = adata.var[gene_column]
    else:
        raise KeyError(
            f"gene_column={gene_column!r} is not a column of adata.var; "
            f"available columns: {list(adata.var.columns)}."
        )
    return values, np.asarray(genes, dtype=object), np.asarray(adata.obs_names)


def _anndata_matrix(adata: Any, layer: str | None) -> Matrix:
    if layer is None:
        matrix, where = adata.X, "adata.X"
    elif layer in adata.layers:
        matrix, where = adata.layers[layer], f"adata.layers[{layer!r}]"
    else:
        raise KeyError(
            f"layer={layer!r} not found in adata.layers; available layers: "
            f"{list(adata.layers.keys())}. Use layer=None to read adata.X."
        )
    if matrix is None:
        raise ValueError(f"{where} is empty (None); pass layer= naming the layer with values.")
    if not isinstance(matrix, np.ndarray) and not sp.issparse(matrix):
        matrix = matrix[:]  # backed h5py dataset or backed sparse dataset
    return _as_matrix(matrix, where)


def _from_dataframe(frame: pd.DataFrame):
    bad = [str(c) for c, d in frame.dtypes.items() if d.kind not in "iuf"]
    if bad:
        raise TypeError(
            f"{len(bad)} DataFrame columns are not numeric (e.g. {bad[:3]}); genes must be columns "
            "of numbers and samples the index. Move annotation columns to the index or drop them."
        )
    values = _as_matrix(frame.to_numpy(), "DataFrame")
    return values, np.asarray(frame.columns, dtype=object), np.asarray(frame.index)


def _from_array(matrix: Any, gene_ids: Any, sample_ids: Any):
    if gene_ids is None:
        raise ValueError(
            "gene_ids= is required with an array input (one id per column); or pass an AnnData "
            "or a DataFrame whose columns are gene ids."
        )
    values = _as_matrix(matrix, "X")
    genes = np.asarray(list(gene_ids), dtype=object)
    if genes.shape != (values.shape[1],):
        raise ValueError(
            f"gene_ids has {genes.size} ids but X has {values.shape[1]} columns (genes); "
            "X must be samples × genes."
        )
    if sample_ids is None:
        samples = np.asarray([f"sample_{i}" for i in range(values.shape[0])], dtype=object)
    else:
        samples = np.asarray(list(sample_ids), dtype=object)
        if samples.shape != (values.shape[0],):
            raise ValueError(f"sample_ids has {samples.size} ids but X has {values.shape[0]} rows.")
    return values, genes, samples


def _as_matrix(matrix: Any, where: str) -> Matrix:
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix)
    else:
        matrix = np.asarray(matrix)
    check_numeric_dtype(matrix.dtype, where)
    if matrix.ndim != 2:
        raise ValueError(f"{where} must be 2-D (samples × genes), got shape {matrix.shape}.")
    if 0 in matrix.shape:
        raise ValueError(f"{where} is empty (shape {matrix.shape}); need ≥ 1 sample and gene.")
    return matrix


def _refuse_options(kind: str, **options: Any) -> None:
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise ValueError(
            f"{given[0]}= does not apply to {kind}: layer= and gene_column= are for AnnData, "
            "gene_ids= for arrays (a DataFrame's columns are its gene ids)."
        )
