"""Reading delimited count tables and their compressed containers, with errors that name the file.

A count table has gene ids in its first column and one column per sample; cells are counts
(floats allowed: RSEM expected counts). Files may be plain, gzip, xz, bzip2 or a zip archive holding
one table; the compression is recognised from the first bytes, not from the name.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gtlomics.datasets.errors import DataFormatError

__all__ = ["CountTable", "open_binary", "open_text", "read_count_table", "read_delimited_frame"]

_MAGIC = {b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz", b"BZh": "bz2", b"PK\x03\x04": "zip"}
_DECODE_ERRORS = (
    EOFError,
    OSError,
    lzma.LZMAError,
    zlib.error,
    zipfile.BadZipFile,
    UnicodeDecodeError,
    csv.Error,
)
COMPRESSION_SUFFIXES = (".gz", ".xz", ".bz2")


@dataclass(frozen=True)
class CountTable:
    """A parsed count table.

    Attributes
    ----------
    gene_ids : numpy.ndarray of str, shape (n_genes,)
    sample_ids : numpy.ndarray of str, shape (n_samples,)
    counts : numpy.ndarray of float64, shape (n_samples, n_genes)
    source : str
        The file it was read from.
    n_dropped_rows : int
        Incomplete gene rows dropped (``drop_incomplete_rows=True``).
    """

    gene_ids: np.ndarray
    sample_ids: np.ndarray
    counts: np.ndarray
    source: str
    n_dropped_rows: int = 0


def counts_anndata(counts: np.ndarray, obs: pd.DataFrame, genes, var: pd.DataFrame | None = None):
    """AnnData of float32 ``counts``, also in ``layers['counts']``; ``var`` defaults to ``genes``
    as an index named ``gene_id``."""
    import anndata as ad

    var = var if var is not None else pd.DataFrame(index=pd.Index(genes, name="gene_id"))
    adata = ad.AnnData(counts.astype(np.float32), obs=obs, var=var)
    adata.layers["counts"] = adata.X.copy()
    return adata


def compression_of(path: str | os.PathLike) -> str | None:
    """'gzip', 'xz', 'bz2', 'zip' or None, from the file's first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


@contextmanager
def open_binary(
    path: str | os.PathLike, *, member_pattern: str = ""
) -> Iterator[io.BufferedIOBase]:
    """Open a possibly compressed file for reading its decompressed bytes.

    For a zip archive, the single member whose name matches the regular expression
    ``member_pattern`` is opened.

    Raises
    ------
    DataFormatError
        When the archive holds no (or several) matching members.
    """
    kind = compression_of(path)
    if kind == "zip":
        with (
            zipfile.ZipFile(path) as archive,
            archive.open(_zip_member(archive, path, member_pattern)) as raw,
        ):
            yield raw
        return
    opener = {"gzip": gzip.open, "xz": lzma.open, "bz2": bz2.open}.get(kind, open)
    with opener(path, "rb") as handle:
        yield handle


@contextmanager
def open_text(path: str | os.PathLike, *, member_pattern: str = "") -> Iterator[io.TextIOBase]:
    """Open a possibly compressed text file (UTF-8); see :func:`open_binary`."""
    with open_binary(path, member_pattern=member_pattern) as raw:
        yield io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _zip_member(archive: zipfile.ZipFile, path, member_pattern: str) -> str:
    names = [n for n in archive.namelist() if not n.endswith("/")]
    matches = [n for n in names if re.search(member_pattern, Path(n).name)]
    if len(matches) != 1:
        found = matches or names
        raise DataFormatError(
            f"{path}: expected one archive member matching {member_pattern!r}, found {found}"
        )
    return matches[0]


def read_delimited_frame(
    path: str | os.PathLike,
    *,
    sep: str = "\t",
    member_pattern: str = "",
    comment: str | None = None,
) -> pd.DataFrame:
    """Read a small delimited metadata table as strings (keeps duplicated column names).

    Raises
    ------
    DataFormatError
        When the file cannot be decompressed or decoded, or has no header.
    """
    try:
        with open_text(path, member_pattern=member_pattern) as handle:
            rows = [
                r
                for r in csv.reader(handle, delimiter=sep)
                if r and not (comment and r[0].startswith(comment))
            ]
    except _DECODE_ERRORS as exc:
        raise DataFormatError(
            f"{path}: cannot read the table ({type(exc).__name__}: {exc})"
        ) from exc
    if not rows:
        raise DataFormatError(f"{path}: the table is empty; expected a header line")
    header, width = rows[0], len(rows[0])
    body = [(r + [""] * width)[:width] for r in rows[1:]]
    return pd.DataFrame(body, columns=range(width), dtype=object).set_axis(header, axis=1)


def read_count_table(
    path: str | os.PathLike,
    *,
    sep: str = ",",
    comment: str | None = None,
    member_pattern: str = "",
    drop_incomplete_rows: bool = False,
) -> CountTable:
    """Parse a genes × samples count table into samples × genes.

    Parameters
    ----------
    path : path-like
        The table (plain or compressed).
    sep : str
        Field delimiter (',' for GeneLab tables, '\\t' for recount3).
    comment : str, optional
        Lines starting with this prefix before the header are skipped (recount3 '##').
    member_pattern : str
        For zip archives: regular expression selecting the member to read.
    drop_incomplete_rows : bool
        Drop gene rows with empty or missing cells instead of raising (their number is in
        ``CountTable.n_dropped_rows``).

    Raises
    ------
    DataFormatError
        Naming the file and the problem: undecodable/garbled file, wrong delimiter, missing gene
        column, duplicated sample or gene ids, non-numeric, missing, negative or infinite cells.
    """
    try:
        with open_text(path, member_pattern=member_pattern) as handle:
            header = _read_header(handle, path, sep, comment)
            frame = _read_body(handle, path, sep, header)
    except _DECODE_ERRORS as exc:
        raise DataFormatError(
            f"{path}: cannot read the table ({type(exc).__name__}: {exc}); "
            "the file may be truncated or not the format expected"
        ) from exc
    return _to_count_table(frame, header, path, drop_incomplete_rows)


def _read_header(handle, path, sep: str, comment: str | None) -> list[str]:
    line = handle.readline()
    while comment and line.startswith(comment):
        line = handle.readline()
    if not line.strip():
        raise DataFormatError(f"{path}: no header line; expected gene ids then sample names")
    header = next(csv.reader([line], delimiter=sep))
    if len(header) < 2:
        other = next((d for d in ("\t", ",", ";", " ") if d != sep and d in line), None)
        hint = f" (it looks {other!r}-delimited)" if other else ""
        raise DataFormatError(
            f"{path}: the header has one column with delimiter {sep!r}{hint}; expected the gene "
            "id column followed by one column per sample"
        )
    samples = header[1:]
    duplicated = sorted({s for s in samples if samples.count(s) > 1})
    if duplicated:
        raise DataFormatError(
            f"{path}: duplicated sample columns {duplicated[:5]}; each sample must appear once"
        )
    if any(not s.strip() for s in samples):
        raise DataFormatError(f"{path}: a sample column has an empty name")
    return header


def _read_body(handle, path, sep: str, header: list[str]) -> pd.DataFrame:
    names = ["__gene__", *range(len(header) - 1)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # extra fields → error
            return pd.read_csv(
                handle,
                sep=sep,
                header=None,
                names=names,
                dtype={"__gene__": str},
                index_col=False,
                keep_default_na=False,
                na_values=[""],
            )
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=names)
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise DataFormatError(
            f"{path}: rows do not match the header's {len(header)} columns ({exc})"
        ) from exc


def _to_count_table(frame: pd.DataFrame, header: list[str], path, drop_incomplete: bool):
    incomplete = frame.iloc[:, 1:].isna().any(axis=1).to_numpy()
    if drop_incomplete and incomplete.any():
        frame = frame.loc[~incomplete]
    genes = frame.pop("__gene__").astype(str).str.strip().to_numpy()
    _check_genes(genes, path)
    values = _numeric_values(frame, header, genes, path)
    n_dropped = int(incomplete.sum()) if drop_incomplete else 0
    samples = np.asarray(header[1:], dtype=str)
    return CountTable(genes, samples, values.T.copy(), str(path), n_dropped)


def _check_genes(genes: np.ndarray, path) -> None:
    if len(genes) == 0:
        raise DataFormatError(f"{path}: the table has a header but no gene rows")
    if (genes == "").any() or (genes == "nan").any():
        raise DataFormatError(f"{path}: empty gene id in the first column")
    if pd.to_numeric(pd.Series(genes[:100]), errors="coerce").notna().all():
        raise DataFormatError(
            f"{path}: the first column holds numbers, not gene ids; the table "
            "must start with a gene id column"
        )
    duplicated = pd.Series(genes).duplicated()
    if duplicated.any():
        raise DataFormatError(f"{path}: duplicated gene ids, e.g. {genes[duplicated][:3].tolist()}")


def _numeric_values(frame: pd.DataFrame, header, genes, path) -> np.ndarray:
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        cell = frame.iat[row, col]
        what = "missing value" if pd.isna(cell) else f"non-numeric value {cell!r}"
        raise DataFormatError(
            f"{path}: {what} at gene {genes[row]!r}, sample {header[col + 1]!r}; "
            "count tables must hold numbers only"
        )
    values = numeric.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataFormatError(f"{path}: infinite count values; expected finite counts")
    if (values < 0).any():
        raise DataFormatError(f"{path}: negative count values; expected raw (unnormalised) counts")
    return values
