"""Every read of an ``.h5ad`` file in gtlomics: metadata checks, row slices, row samples.

The file is opened with h5py and read a slice of rows at a time (dense or CSR ``X`` or a layer),
so memory stays near ``chunk_size × n_genes`` whatever the number of samples.
:func:`inspect_h5ad` checks, from the HDF5 metadata only, that a file can be streamed;
:func:`iter_h5ad_tables` yields its rows in order and :func:`read_h5ad_rows` reads chosen rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from gtlomics.expression import ExpressionTable, ReadSettings, read_expression

__all__ = [
    "MIN_CORPUS_SAMPLES",
    "H5adLayout",
    "check_n_samples",
    "h5ad_n_rows",
    "inspect_h5ad",
    "iter_h5ad_tables",
    "read_h5ad_obs_column",
    "read_h5ad_rows",
    "read_h5ad_whole",
]

MIN_CORPUS_SAMPLES = 8
"""Fewest samples a foundation is built from (pre-training holds some out, cousin tasks
cluster them)."""


@dataclass(frozen=True)
class H5adLayout:
    """What a checked ``.h5ad`` file holds, read from its HDF5 metadata only (no values)."""

    path: Path
    n_samples: int
    n_genes: int
    synthetic: bool
    reading: ReadSettings

    def describe(self) -> str:
        """One line for a provenance record: the file name and its shape."""
        return f"{self.path.name} ({self.n_samples} samples × {self.n_genes} genes, streamed)"


def inspect_h5ad(path: str | os.PathLike, reading: ReadSettings) -> H5adLayout:
    """Check that ``path`` is an ``.h5ad`` whose rows can be streamed, from its metadata only.

    Raises
    ------
    TypeError
        ``path`` is not a path.
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not HDF5, not AnnData, a CSC or unknown matrix encoding, non-numeric values, a missing
        layer or gene column, or fewer than 8 rows; each message names the file.
    """
    import h5py

    file = _existing_file(path)
    try:
        handle = h5py.File(file, "r")
    except OSError as error:
        raise ValueError(
            f"{file} is not a readable .h5ad (HDF5) file ({error}). Write the corpus with "
            "anndata (adata.write_h5ad(path)), or pass an in-memory corpus."
        ) from error
    with handle:
        _check_anndata_groups(handle, file)
        shape = _matrix_shape(_matrix(handle, reading.layer, file), reading.layer, file)
        _gene_ids(handle, reading.gene_column, file)
        synthetic = "uns" in handle and "synthetic" in handle["uns"]
    check_n_samples(shape[0], str(file))
    return H5adLayout(file, int(shape[0]), int(shape[1]), bool(synthetic), reading)


def check_n_samples(n_samples: int, what: str) -> None:
    """Refuse a corpus (named ``what``) of fewer than :data:`MIN_CORPUS_SAMPLES` samples."""
    if n_samples < MIN_CORPUS_SAMPLES:
        raise ValueError(
            f"{what} has {n_samples} samples; a foundation needs at least {MIN_CORPUS_SAMPLES} "
            "(pre-training holds some out and cousin tasks cluster them). Add unlabelled samples."
        )


def h5ad_n_rows(path: str | os.PathLike, layer: str | None = None) -> int:
    """Rows of ``X`` (or ``layers[layer]``), from the file's metadata."""
    import h5py

    path = _existing_file(path)
    with h5py.File(path, "r") as handle:
        return _matrix_shape(_matrix(handle, layer, path), layer, path)[0]


def read_h5ad_whole(path: str | os.PathLike):
    """The whole file as an in-memory AnnData; a missing or unreadable file is one clear error
    naming it."""
    import anndata as ad

    path = _existing_file(path)
    try:
        return ad.read_h5ad(path)
    except OSError as error:
        raise ValueError(f"{path} is not a readable .h5ad file ({error}).") from error


def iter_h5ad_tables(
    path: str | os.PathLike, reading: ReadSettings, chunk_size: int
) -> Iterator[tuple[int, ExpressionTable]]:
    """``(start, table)`` for each block of ``chunk_size`` rows, in file order, values as stored."""
    import h5py

    path = _existing_file(path)
    with h5py.File(path, "r") as handle:
        matrix, gene_ids, sample_ids = _open_arrays(handle, reading, path)
        for start in range(0, matrix.shape[0], chunk_size):
            rows = slice(start, min(start + chunk_size, matrix.shape[0]))
            yield (
                start,
                read_expression(matrix[rows], gene_ids=gene_ids, sample_ids=sample_ids[rows]),
            )


def read_h5ad_rows(layout: H5adLayout, rows: np.ndarray, chunk_size: int) -> ExpressionTable:
    """Rows ``rows`` (sorted, unique) of the file, read ``chunk_size`` at a time, values as stored.

    Returns the values (dense or CSR), the gene ids of ``layout.reading.gene_column`` and the
    rows' sample ids.
    """
    import h5py

    with h5py.File(layout.path, "r") as handle:
        matrix, gene_ids, sample_ids = _open_arrays(handle, layout.reading, layout.path)
        blocks = [
            matrix[rows[start : start + chunk_size]] for start in range(0, len(rows), chunk_size)
        ]
    if isinstance(matrix, h5py.Dataset):
        values = np.concatenate(blocks)
    else:
        values = sp.vstack([sp.csr_matrix(block) for block in blocks], format="csr")
    return read_expression(values, gene_ids=gene_ids, sample_ids=sample_ids[rows])


def read_h5ad_obs_column(layout: H5adLayout, key: str) -> np.ndarray:
    """``obs[key]`` of the file as strings, one per sample (a study or batch label).

    Raises
    ------
    ValueError
        ``key`` is not an ``obs`` column of the file.
    """
    import anndata as ad
    import h5py

    with h5py.File(layout.path, "r") as handle:
        obs = handle["obs"]
        if key not in obs:
            columns = [name for name in obs.keys() if name != obs.attrs["_index"]]
            raise ValueError(
                f"batch_key={key!r} is not an obs column of {layout.path} (columns: {columns}); "
                "pass batch_key=None to standardise the corpus as one study."
            )
        labels = ad.io.read_elem(obs[key])
    return np.asarray(labels).astype(str)


def _open_arrays(
    handle: Any, reading: ReadSettings, path: Path
) -> tuple[Any, np.ndarray, np.ndarray]:
    """A row-sliceable reader of the matrix, the gene ids and the sample ids of an open file."""
    import anndata as ad
    import h5py

    matrix = _matrix(handle, reading.layer, path)
    reader = matrix if isinstance(matrix, h5py.Dataset) else ad.io.sparse_dataset(matrix)
    sample_ids = np.asarray(_h5_index(handle["obs"]), dtype=object)
    return reader, _gene_ids(handle, reading.gene_column, path), sample_ids


def _matrix(handle: Any, layer: str | None, file: Path) -> Any:
    """``X`` or ``layers[layer]``: a dense dataset or a CSR group. A CSC one is refused: its rows
    cannot be sliced, so every chunk would read it whole."""
    if layer is not None and ("layers" not in handle or layer not in handle["layers"]):
        available = list(handle["layers"].keys()) if "layers" in handle else []
        raise ValueError(
            f"layer={layer!r} is not in {file}; available layers: {available}. Pass one of "
            "them, or layer=None to read X."
        )
    matrix = handle["X"] if layer is None else handle["layers"][layer]
    encoding = matrix.attrs.get("encoding-type", "array")
    if encoding not in ("array", "csr_matrix"):
        kind = "CSC" if encoding == "csc_matrix" else repr(encoding)
        raise ValueError(
            f"{_where(layer)} of {file} is a {kind} matrix ({encoding}); reading it in row "
            "chunks would load it whole for every chunk. "
            "Convert it once: adata.X = adata.X.tocsr(); adata.write_h5ad(path)."
        )
    return matrix


def _matrix_shape(matrix: Any, layer: str | None, file: Path) -> tuple[int, int]:
    """``(n_samples, n_genes)`` of a matrix of numbers, from its metadata."""
    import h5py

    if isinstance(matrix, h5py.Dataset):
        shape, dtype = matrix.shape, matrix.dtype
    else:
        shape, dtype = tuple(matrix.attrs["shape"]), matrix["data"].dtype
    if len(shape) != 2 or dtype.kind not in "iuf":
        raise ValueError(
            f"{_where(layer)} of {file} has shape {tuple(shape)} and dtype {dtype}; expected a "
            "samples × genes matrix of numbers (raw counts or log1p values)."
        )
    return int(shape[0]), int(shape[1])


def _where(layer: str | None) -> str:
    return "X" if layer is None else f"layers/{layer}"


def _gene_ids(handle: Any, gene_column: str | None, file: Path) -> np.ndarray:
    import anndata as ad

    var = handle["var"]
    if gene_column is None:
        return np.asarray(_h5_index(var), dtype=object)
    if gene_column not in var:
        columns = [key for key in var.keys() if key != var.attrs["_index"]]
        raise ValueError(
            f"gene_column={gene_column!r} is not a var column of {file}; available: {columns}. "
            "Pass one of them, or gene_column=None to use var_names."
        )
    return np.asarray(ad.io.read_elem(var[gene_column]), dtype=object)


def _h5_index(group: Any) -> np.ndarray:
    import anndata as ad

    return np.asarray(ad.io.read_elem(group[group.attrs["_index"]]))


def _existing_file(path: Any) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            f"An .h5ad corpus is given by its path, not a {type(path).__name__} (for a backed "
            "AnnData pass adata.filename; an in-memory AnnData is read as it is)."
        )
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a directory, not" if file.is_dir() else "does not exist; expected"
        raise FileNotFoundError(
            f"{file} {what} an .h5ad file. Check the path, or write the corpus with "
            "adata.write_h5ad(path) first."
        )
    return file


def _check_anndata_groups(handle: Any, file: Path) -> None:
    missing = [name for name in ("X", "obs", "var") if name not in handle]
    if missing or "_index" not in handle["obs"].attrs or "_index" not in handle["var"].attrs:
        raise ValueError(
            f"{file} is an HDF5 file but not an AnnData .h5ad (missing {missing or 'indices'}). "
            "Write the corpus with anndata: adata.write_h5ad(path)."
        )
