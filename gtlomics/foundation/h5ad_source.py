"""Inspect and sample a backed ``.h5ad`` file without reading its values whole.

:func:`inspect_h5ad` checks, from the HDF5 metadata only, that a file is an AnnData whose rows can
be streamed (dense or CSR, numeric, enough samples, the asked-for layer and gene column), and
:func:`read_sample_rows` reads a seeded uniform sample of rows ``chunk_size`` at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from gtlomics.expression import ExpressionTable, PreprocessingConfig, read_expression
from gtlomics.expression.chunks import h5ad_arrays
from gtlomics.foundation.build import _MIN_SAMPLES

if TYPE_CHECKING:
    from gtlomics.foundation.streaming_build import StreamingSizes

__all__ = ["H5adLayout", "inspect_h5ad", "read_sample_rows"]


@dataclass(frozen=True)
class H5adLayout:
    """What a checked ``.h5ad`` file holds, read from its HDF5 metadata only (no values)."""

    path: Path
    n_samples: int
    n_genes: int
    synthetic: bool


def inspect_h5ad(path: str | os.PathLike, preprocessing: PreprocessingConfig) -> H5adLayout:
    """Check that ``path`` is an ``.h5ad`` whose rows can be streamed, from its metadata only.

    Raises
    ------
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
            "anndata (adata.write_h5ad(path)), or pass an in-memory corpus to build_foundation."
        ) from error
    with handle:
        _check_anndata_groups(handle, file)
        shape = _check_matrix(handle, preprocessing.layer, file)
        _check_gene_column(handle, preprocessing.gene_column, file)
        synthetic = "uns" in handle and "synthetic" in handle["uns"]
    if shape[0] < _MIN_SAMPLES:
        raise ValueError(
            f"{file} has {shape[0]} samples; a foundation needs at least {_MIN_SAMPLES} "
            "(pre-training holds some out and cousin tasks cluster them). Add unlabelled samples."
        )
    return H5adLayout(file, int(shape[0]), int(shape[1]), bool(synthetic))


def read_sample_rows(
    layout: H5adLayout, preprocessing: PreprocessingConfig, sizes: StreamingSizes, seed: int
) -> ExpressionTable:
    """``min(vocab_sample, n_samples)`` uniformly drawn rows, read ``chunk_size`` at a time.

    Values are returned as stored (raw counts or log1p values, dense or CSR), with the gene ids
    of ``preprocessing.gene_column`` and the rows' sample ids.
    """
    import anndata as ad
    import h5py

    n_take = min(sizes.vocab_sample, layout.n_samples)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(layout.n_samples, size=n_take, replace=False))
    with h5py.File(layout.path, "r") as handle:
        arrays = h5ad_arrays(handle, preprocessing, layout.path)
        if isinstance(arrays.matrix, h5py.Dataset):
            values = _read_dense_rows(arrays.matrix, rows, sizes.chunk_size)
        else:
            values = _read_csr_rows(ad.io.sparse_dataset(arrays.matrix), rows, sizes.chunk_size)
    return read_expression(values, gene_ids=arrays.gene_ids, sample_ids=arrays.sample_ids[rows])


def _read_dense_rows(dataset, rows: np.ndarray, chunk_size: int) -> np.ndarray:
    out = np.empty((len(rows), dataset.shape[1]), dtype=dataset.dtype)
    for start in range(0, len(rows), chunk_size):
        out[start : start + chunk_size] = dataset[rows[start : start + chunk_size]]
    return out


def _read_csr_rows(reader, rows: np.ndarray, chunk_size: int) -> sp.csr_matrix:
    blocks = [
        sp.csr_matrix(reader[rows[start : start + chunk_size]])
        for start in range(0, len(rows), chunk_size)
    ]
    return sp.vstack(blocks, format="csr")


def _existing_file(path: Any) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            f"build_foundation_streaming reads an .h5ad file: pass its path, not a "
            f"{type(path).__name__} (for a backed AnnData pass adata.filename; an in-memory "
            "corpus goes to build_foundation)."
        )
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a directory, not" if file.is_dir() else "does not exist; expected"
        raise FileNotFoundError(
            f"{file} {what} an .h5ad file. Check the path, or write the corpus with "
            "adata.write_h5ad(path) first."
        )
    return file


def _check_anndata_groups(handle, file: Path) -> None:
    missing = [name for name in ("X", "obs", "var") if name not in handle]
    if missing or "_index" not in handle["obs"].attrs or "_index" not in handle["var"].attrs:
        raise ValueError(
            f"{file} is an HDF5 file but not an AnnData .h5ad (missing {missing or 'indices'}). "
            "Write the corpus with anndata: adata.write_h5ad(path)."
        )


def _check_matrix(handle, layer: str | None, file: Path) -> tuple[int, int]:
    import h5py

    if layer is not None and ("layers" not in handle or layer not in handle["layers"]):
        available = list(handle["layers"].keys()) if "layers" in handle else []
        raise ValueError(
            f"layer={layer!r} is not in {file}; available layers: {available}. Pass one of "
            "them, or layer=None to read X."
        )
    matrix = handle["X"] if layer is None else handle["layers"][layer]
    where = "X" if layer is None else f"layers/{layer}"
    if isinstance(matrix, h5py.Dataset):
        shape, dtype = matrix.shape, matrix.dtype
    else:
        encoding = matrix.attrs.get("encoding-type", "unknown")
        if encoding != "csr_matrix":
            raise ValueError(
                f"{where} of {file} is stored as {encoding!r}; streaming reads rows, which needs "
                "a dense or CSR matrix (a CSC matrix would be read whole for every chunk). "
                "Convert it once: adata.X = adata.X.tocsr(); adata.write_h5ad(path)."
            )
        shape, dtype = tuple(matrix.attrs["shape"]), matrix["data"].dtype
    if len(shape) != 2 or dtype.kind not in "iuf":
        raise ValueError(
            f"{where} of {file} has shape {tuple(shape)} and dtype {dtype}; expected a samples × "
            "genes matrix of numbers (raw counts or log1p values)."
        )
    return int(shape[0]), int(shape[1])


def _check_gene_column(handle, gene_column: str | None, file: Path) -> None:
    if gene_column is not None and gene_column not in handle["var"]:
        columns = [key for key in handle["var"].keys() if key != handle["var"].attrs["_index"]]
        raise ValueError(
            f"gene_column={gene_column!r} is not a var column of {file}; available: {columns}. "
            "Pass one of them, or gene_column=None to use var_names."
        )
