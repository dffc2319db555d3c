"""NASA OSDR (GeneLab) bulk RNA-seq loader: list a study's files, fetch counts and labels.

Two kinds of source are accepted as ``base_url``:

* ``http(s)://`` — the OSDR API layout: ``{base}/osdr/data/osd/files/{n}`` lists the study's files
  (JSON) and each file downloads from ``{base}{remote_url}``. Downloads go to the cache.
* ``file://`` URL or a directory — a mirror holding one folder per study, ``{root}/OSD-{n}/``, with
  the counts table and the ISA study table (``s_OSD-{n}.txt`` or the ISA zip), optionally
  compressed (``.gz``/``.xz``/``.bz2``). Files are read in place.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gtlomics.datasets.download import (
    DownloadConfig,
    FetchedFile,
    fetch,
    is_remote,
    join_url,
    read_url_bytes,
    to_local_path,
)
from gtlomics.datasets.errors import DataFormatError, DownloadError, NoCountsTableError
from gtlomics.datasets.gene_ids import strip_ensembl_version
from gtlomics.datasets.isa import ARM_NAMES, arm_from_sample_name, check_arms, read_study_table
from gtlomics.datasets.tables import (
    COMPRESSION_SUFFIXES,
    compression_of,
    counts_anndata,
    open_binary,
    read_count_table,
)

__all__ = ["OSDR_URL", "OsdrFile", "list_osdr_files", "load_osdr", "pick_counts_file"]

OSDR_URL = "https://osdr.nasa.gov"
# Unnormalised counts tables, newest GeneLab pipeline first, legacy names last.
COUNTS_PREFERENCE = (
    re.compile(r"_rna_seq_RSEM_Unnormalized_Counts_GLbulkRNAseq\.csv$", re.I),
    re.compile(r"_rna_seq_RSEM_Unnormalized_Counts_rRNArm_GLbulkRNAseq\.csv$", re.I),
    re.compile(r"_rna_seq_RSEM_.*Unnormalized_Counts.*_GLbulkRNAseq\.csv$", re.I),
    re.compile(r"_rna_seq_STAR_Unnormalized_Counts_GLbulkRNAseq\.csv$", re.I),
    re.compile(r"_rna_seq_STAR_.*Unnormalized_Counts.*_GLbulkRNAseq\.csv$", re.I),
    re.compile(r"_rna_seq_RSEM_Unnormalized_Counts\.csv$", re.I),
    re.compile(r"_rna_seq_STAR_Unnormalized_Counts\.csv$", re.I),
    re.compile(r"_rna_seq_Unnormalized_Counts\.csv$", re.I),
)
ERCC_PREFIX = "ERCC-"


@dataclass(frozen=True)
class OsdrFile:
    """One file of a study: its name, where to fetch it, and its size if known."""

    name: str
    url: str
    size: int | None = None


def accession_number(accession: str | int) -> int:
    """``"OSD-105"``, ``"osd-105"``, ``"105"`` or ``105`` → ``105``."""
    match = re.fullmatch(r"(?:OSD-)?(\d+)", str(accession).strip(), flags=re.I)
    if match is None:
        raise ValueError(f"not an OSDR accession: {accession!r}; expected e.g. 'OSD-105'")
    return int(match.group(1))


def _logical_name(name: str) -> str:
    """File name without a mirror's compression suffix."""
    for suffix in COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def pick_counts_file(names) -> str:
    """Choose the unnormalised counts table among a study's file names.

    Raises
    ------
    NoCountsTableError
        When no name matches a known counts-table pattern.
    """
    names = list(names)
    for pattern in COUNTS_PREFERENCE:
        hits = sorted(
            n for n in names if pattern.search(_logical_name(n).replace("rna-seq", "rna_seq"))
        )
        if hits:
            return hits[0]
    raise NoCountsTableError(
        f"no unnormalised counts table among the study's {len(names)} files "
        f"({names[:8]}{'...' if len(names) > 8 else ''}); the study may not have been processed "
        "by GeneLab, or is not bulk RNA-seq"
    )


def list_osdr_files(
    accession: str | int, *, base_url: str = OSDR_URL, download: DownloadConfig | None = None
) -> list[OsdrFile]:
    """List a study's files from the OSDR API (http) or a mirror directory.

    Raises
    ------
    DownloadError
        When the API or mirror cannot be reached or does not know the study.
    DataFormatError
        When the API answer is not the expected JSON.
    """
    number = accession_number(accession)
    if not is_remote(base_url):
        return _list_mirror_folder(to_local_path(base_url) / f"OSD-{number}")
    url = join_url(base_url, f"osdr/data/osd/files/{number}")
    return parse_files_json(read_url_bytes(url, config=download), number, url, base_url)


def _list_mirror_folder(folder: Path) -> list[OsdrFile]:
    if not folder.is_dir():
        raise DownloadError(
            f"mirror folder {folder} does not exist; a directory mirror holds one "
            "folder per study named OSD-<n>"
        )
    return [
        OsdrFile(p.name, str(p), p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file()
    ]


def parse_files_json(payload: bytes, number: int, url: str, base_url: str) -> list[OsdrFile]:
    """Parse the ``/osdr/data/osd/files/{n}`` answer into :class:`OsdrFile` records."""
    try:
        entries = json.loads(payload.decode("utf-8"))["studies"][f"OSD-{number}"]["study_files"]
        return [_file_record(entry, base_url, url) for entry in entries]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(
            f"{url} did not answer JSON ({exc}); is base_url an OSDR API?"
        ) from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise DataFormatError(
            f"{url}: unexpected JSON shape, missing {exc!s}; expected "
            f"studies['OSD-{number}'].study_files[].file_name/remote_url"
        ) from exc


def _file_record(entry: dict, base_url: str, url: str) -> OsdrFile:
    name, remote = str(entry["file_name"]), str(entry["remote_url"])
    if Path(name).name != name or name in ("", ".", ".."):
        raise DataFormatError(f"{url}: file_name {name!r} is not a plain file name")
    target = remote if is_remote(remote) else join_url(base_url, remote)
    return OsdrFile(name, target, _as_size(entry.get("file_size")))


def _as_size(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _study_table_file(files: list[OsdrFile], number: int) -> OsdrFile | None:
    preferred = (f"s_OSD-{number}.txt", f"OSD-{number}_metadata_OSD-{number}-ISA.zip")
    by_name = {_logical_name(f.name): f for f in files}
    found = next((by_name[n] for n in preferred if n in by_name), None)
    return found or next((f for f in files if f.name.endswith("-ISA.zip")), None)


def load_osdr(
    accession: str | int,
    *,
    base_url: str = OSDR_URL,
    cache_dir: str | os.PathLike | None = None,
    checksums: str | os.PathLike | dict[str, str] | None = None,
    round_counts: bool = False,
    on_label_mismatch: Literal["raise", "warn"] = "raise",
    download: DownloadConfig | None = None,
    progress: bool = False,
):
    """Load an OSDR bulk RNA-seq study as AnnData (samples × genes, raw counts).

    Parameters
    ----------
    accession : str or int
        ``"OSD-105"``.
    base_url : str
        OSDR API root (default the public service), or a mirror directory / ``file://`` URL.
    cache_dir : path-like, optional
        Download cache (default ``$GTLOMICS_CACHE`` or ``~/.cache/gtlomics``).
    checksums : path, URL or dict, optional
        Table of expected sha256 per file name (the format of OSDR catalogue
        ``lfs_count_files_sizes.tsv``: name, size, ``sha256:<hex>``). Files named there are
        verified; others are recorded unverified.
    round_counts : bool
        Round RSEM expected counts to integers.
    on_label_mismatch : {"raise", "warn"}
        What to do when ``Factor Value[Spaceflight]`` disagrees with the sample-name arm token.
    download : DownloadConfig, optional
        Timeouts and retries.
    progress : bool
        Progress bars for downloads.

    Returns
    -------
    anndata.AnnData
        ``.X`` and ``layers['counts']``: float32 counts, Ensembl ids without versions in
        ``var_names``. ``obs``: ``arm`` (FLT/GC/… from the factor), ``name_arm`` (token in the
        sample name), ``spaceflight`` and the study's other factors and characteristics.
        ``obsm['ercc']``: ERCC spike-in rows (a DataFrame, samples × spike-ins), removed from
        ``.X``. ``uns['osdr']``: accession, counts file, factor names, and ``source_files``
        (name → url, sha256, verified).
    """
    number = accession_number(accession)
    expected = _load_checksums(checksums, download)
    files = list_osdr_files(number, base_url=base_url, download=download)
    counts_name = pick_counts_file(f.name for f in files)
    fetched: dict[str, FetchedFile] = {}

    def get(file: OsdrFile) -> FetchedFile:
        fetched[file.name] = fetch(
            file.url,
            cache_dir=cache_dir,
            relpath=f"osdr/OSD-{number}/{file.name}",
            sha256=expected.get(_logical_name(file.name)),
            config=download,
            progress=progress,
            content_sha256=_decompressed_sha256,
        )
        return fetched[file.name]

    with get(next(f for f in files if f.name == counts_name)).parsing() as path:
        table = read_count_table(path)
    study_file = _study_table_file(files, number)
    study = None if study_file is None else get(study_file)
    obs = _sample_obs(table.sample_ids, study, on_label_mismatch)
    factors = list(obs.attrs.pop("factors", []))
    adata = _build_anndata(table, obs, round_counts)
    adata.uns["osdr"] = {
        "accession": f"OSD-{number}",
        "counts_file": _logical_name(counts_name),
        "factors": factors,
        "source_files": {
            name: {"url": f.url, "sha256": f.sha256, "verified": f.verified}
            for name, f in fetched.items()
        },
    }
    return adata


def _decompressed_sha256(path: Path) -> str:
    """sha256 of a compressed mirror file's content; "" for plain files and zip archives."""
    if compression_of(path) in (None, "zip"):
        return ""
    digest = hashlib.sha256()
    try:
        with open_binary(path) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise DataFormatError(f"{path}: cannot decompress ({type(exc).__name__}: {exc})") from exc
    return digest.hexdigest()


def _load_checksums(checksums, download) -> dict[str, str]:
    if checksums is None:
        return {}
    if isinstance(checksums, dict):
        return {str(k): str(v) for k, v in checksums.items()}
    source = str(checksums)
    text = read_url_bytes(source, config=download).decode("utf-8", errors="replace")
    table: dict[str, str] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.strip().split("\t")
        if not line.strip() or fields[0].lower() in ("file", "name", "file_name"):
            continue
        digest = next((f for f in fields[1:] if f.lower().startswith("sha256:")), None)
        if digest is None:
            raise DataFormatError(
                f"{source} line {line_no}: no 'sha256:<hex>' field; expected "
                "name, size, sha256:<hex> separated by tabs"
            )
        table[fields[0]] = digest
    return table


def _sample_obs(
    sample_ids: np.ndarray, study: FetchedFile | None, on_mismatch: Literal["raise", "warn"]
) -> pd.DataFrame:
    name_arm = [arm_from_sample_name(s) for s in sample_ids]
    if study is None:
        warnings.warn(
            "the study lists no ISA study table; arms come from sample names only",
            UserWarning,
            stacklevel=3,
        )
        return pd.DataFrame({"arm": name_arm, "name_arm": name_arm}, index=sample_ids)
    with study.parsing() as path:
        table = read_study_table(path)
    rows = _match_samples(sample_ids, table.index, study.path)
    obs = table.iloc[rows].set_axis(pd.Index(sample_ids, name="sample"))
    obs.attrs["factors"] = table.attrs["factors"]
    if "spaceflight" not in obs.columns:
        raise DataFormatError(
            f"{study.path}: no 'Factor Value[Spaceflight]' column; cannot label the spaceflight arm"
        )
    check_arms(sample_ids, obs["spaceflight"], source=str(study.path), on_mismatch=on_mismatch)
    arm_of = {name.lower(): token for token, name in ARM_NAMES.items()}
    obs.insert(0, "arm", [arm_of.get(v.lower(), v) for v in obs["spaceflight"]])
    obs.insert(1, "name_arm", name_arm)
    return obs


def _match_samples(sample_ids: np.ndarray, names: pd.Index, source) -> np.ndarray:
    def key(name: str) -> str:
        return re.sub(r"[^0-9a-z]", "", name.lower())

    exact = {n: i for i, n in enumerate(names)}
    loose = {key(n): i for i, n in enumerate(names)}
    rows = [exact.get(s, loose.get(key(s), -1)) for s in sample_ids]
    missing = [s for s, r in zip(sample_ids.tolist(), rows, strict=True) if r < 0]
    if missing:
        raise DataFormatError(
            f"{source}: {len(missing)} counts-table sample(s) not in the study "
            f"table, e.g. {missing[:3]}; the files may belong to different studies"
        )
    return np.asarray(rows)


def _build_anndata(table, obs: pd.DataFrame, round_counts: bool):
    genes = strip_ensembl_version(table.gene_ids)
    is_ercc = np.char.startswith(genes.astype(str), ERCC_PREFIX)
    counts = np.rint(table.counts) if round_counts else table.counts
    if pd.Index(genes[~is_ercc]).duplicated().any():
        raise DataFormatError(f"{table.source}: gene ids repeat once versions are stripped")
    adata = counts_anndata(counts[:, ~is_ercc], obs, genes[~is_ercc])
    adata.obsm["ercc"] = pd.DataFrame(
        counts[:, is_ercc].astype(np.float32), index=obs.index, columns=genes[is_ercc]
    )
    return adata
