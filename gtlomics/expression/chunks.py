"""Prepare a corpus block by block with bounded memory (on-disk ``.h5ad`` files)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gtlomics.expression.config import PreprocessingConfig
from gtlomics.expression.prepare import PreparedExpression, prepare_table
from gtlomics.expression.table import ExpressionTable, is_anndata, read_expression

if TYPE_CHECKING:
    from gtlomics.expression.vocab import GeneVocab

__all__ = ["H5adArrays", "PreparedChunk", "h5ad_arrays", "iter_prepared_chunks"]


@dataclass(frozen=True)
class PreparedChunk:
    """Rows ``start:stop`` of a corpus, prepared (see :class:`PreparedExpression`)."""

    start: int
    stop: int
    expression: PreparedExpression


def iter_prepared_chunks(
    source: str | Path | Any,
    vocab: GeneVocab,
    config: PreprocessingConfig | None = None,
    *,
    chunk_size: int = 4096,
    gene_ids: Any = None,
) -> Iterator[PreparedChunk]:
    """Yield prepared blocks of at most ``chunk_size`` rows.

    An ``.h5ad`` path or a backed AnnData (``anndata.read_h5ad(path, backed="r")``) is read
    slice by slice from disk (``.X`` or ``layers[config.layer]``, dense or CSR), so memory stays
    near ``chunk_size × n_genes`` whatever the number of samples. In-memory AnnData, DataFrames
    and arrays are sliced the same way. ``input_scale="auto"`` is resolved on the first block and
    enforced on the rest; library sizes are per sample, so blocks equal one big
    :func:`prepare_expression` call row for row. Duplicate-gene warnings are given once.
    ``gene_ids`` names the columns of an array input.

    Examples
    --------
    >>> import numpy as np
    >>> from gtlomics.expression import GeneVocab
    >>> counts = np.arange(1, 11).reshape(5, 2)
    >>> chunks = iter_prepared_chunks(counts, GeneVocab(("a", "b")), chunk_size=2, gene_ids="ab")
    >>> [(c.start, c.stop) for c in chunks]
    [(0, 2), (2, 4), (4, 5)]
    """
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    config = config or PreprocessingConfig()
    scale = None
    for start, table in _iter_tables(source, config, int(chunk_size), gene_ids):
        prepared = prepare_table(table, vocab, config, scale=scale, warn_duplicates=scale is None)
        scale = prepared.input_scale
        yield PreparedChunk(start, start + table.shape[0], prepared)


def _iter_tables(source: Any, config: PreprocessingConfig, chunk_size: int, gene_ids: Any):
    if isinstance(source, str | Path):
        yield from _iter_h5ad(Path(source), config, chunk_size)
    elif is_anndata(source) and source.isbacked:
        yield from _iter_h5ad(Path(source.filename), config, chunk_size)
    else:
        table = read_expression(
            source, layer=config.layer, gene_column=config.gene_column, gene_ids=gene_ids
        )
        for start in range(0, table.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            yield start, ExpressionTable(table.values[rows], table.gene_ids, table.sample_ids[rows])


def _iter_h5ad(path: Path, config: PreprocessingConfig, chunk_size: int):
    import anndata as ad
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"No .h5ad file at {path}.")
    with h5py.File(path, "r") as handle:
        arrays = h5ad_arrays(handle, config, path)
        matrix = arrays.matrix
        reader = matrix if isinstance(matrix, h5py.Dataset) else ad.io.sparse_dataset(matrix)
        for start in range(0, reader.shape[0], chunk_size):
            stop = min(start + chunk_size, reader.shape[0])
            rows = slice(start, stop)
            block = read_expression(
                reader[rows], gene_ids=arrays.gene_ids, sample_ids=arrays.sample_ids[rows]
            )
            yield start, block


@dataclass(frozen=True)
class H5adArrays:
    """What a row reader needs from an open ``.h5ad``, read lazily where it can be.

    Attributes
    ----------
    matrix
        ``X`` or the configured layer: an ``h5py.Dataset`` (dense) or a CSR group, not read yet.
    gene_ids
        ``(n_genes,)`` ids: ``var``'s index, or the configured ``gene_column``.
    sample_ids
        ``(n_samples,)`` ids: ``obs``'s index.
    """

    matrix: Any
    gene_ids: np.ndarray
    sample_ids: np.ndarray


def h5ad_arrays(handle: Any, config: PreprocessingConfig, path: Path) -> H5adArrays:
    """The matrix (per ``config.layer``) and the ids of an ``.h5ad`` opened with h5py.

    Raises
    ------
    KeyError
        The layer or ``config.gene_column`` is not in the file.
    ValueError
        The matrix is CSC (rows cannot be sliced).
    """
    return H5adArrays(
        _h5_matrix(handle, config.layer, path),
        _h5_gene_ids(handle, config.gene_column),
        np.asarray(_h5_index(handle["obs"]), dtype=object),
    )


def _h5_matrix(handle, layer: str | None, path: Path):
    """``X`` or ``layers[layer]`` of an open ``.h5ad``: a dense dataset or a CSR group.

    A CSC matrix is refused: its rows cannot be sliced, so every chunk would read it whole.
    """
    if layer is None:
        matrix = handle["X"]
    else:
        layers = handle.get("layers")
        if layers is None or layer not in layers:
            available = [] if layers is None else list(layers.keys())
            raise KeyError(f"layer={layer!r} not found in {path}; available layers: {available}.")
        matrix = layers[layer]
    if matrix.attrs.get("encoding-type") == "csc_matrix":
        where = "X" if layer is None else f"layers/{layer}"
        raise ValueError(
            f"{where} of {path} is a CSC matrix; reading it in row chunks would load it whole for "
            "every chunk. Convert it once: adata.X = adata.X.tocsr(); adata.write_h5ad(path)."
        )
    return matrix


def _h5_gene_ids(handle, gene_column: str | None) -> np.ndarray:
    import anndata as ad

    var = handle["var"]
    if gene_column is None:
        return np.asarray(_h5_index(var), dtype=object)
    if gene_column not in var:
        raise KeyError(f"gene_column={gene_column!r} is not a column of var in the file.")
    return np.asarray(ad.io.read_elem(var[gene_column]), dtype=object)


def _h5_index(group) -> np.ndarray:
    import anndata as ad

    return np.asarray(ad.io.read_elem(group[group.attrs["_index"]]))
