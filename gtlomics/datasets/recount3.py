"""recount3 loader: gene-level read counts of SRA projects, and a streaming corpus builder.

recount3 gene-sum files hold summed base coverage per gene, not reads; dividing by the sample's
``star.average_mapped_length`` (from the project's ``recount_qc`` table) and rounding gives read
counts, as recount3's own ``transform_counts`` does. The layout under ``base_url`` is the one of the
recount3 servers, so a ``file://`` URL or a directory copy of it works as a mirror.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from gtlomics.datasets.download import DownloadConfig, fetch, is_remote, join_url
from gtlomics.datasets.errors import DataFormatError
from gtlomics.datasets.gene_ids import strip_ensembl_version
from gtlomics.datasets.tables import read_count_table, read_delimited_frame

__all__ = [
    "RECOUNT3_URL",
    "build_recount3_corpus",
    "list_recount3_projects",
    "load_recount3",
    "recount3_url",
]

RECOUNT3_URL = "http://duffel.rail.bio/recount3"
DEFAULT_ANNOTATION = {"mouse": "M023", "human": "G026"}
METADATA_TABLES = ("recount_project", "recount_qc", "recount_seq_qc", "recount_pred", "sra")
MAPPED_LENGTH = "star.average_mapped_length"
Organism = Literal["mouse", "human"]


def recount3_url(base_url: str, organism: str, project: str, kind: str, table: str = "") -> str:
    """URL of a project's ``gene_sums`` file (``table`` = annotation) or metadata table."""
    if not re.fullmatch(r"[A-Z]{3}\d+", project):
        raise ValueError(f"not an SRA project accession: {project!r}; expected e.g. 'SRP014565'")
    folder = f"{organism}/data_sources/sra/{kind}/{project[-2:]}/{project}"
    name = (
        f"sra.gene_sums.{project}.{table}.gz"
        if kind == "gene_sums"
        else f"sra.{table}.{project}.MD.gz"
    )
    return join_url(base_url, folder, name)


def load_recount3(
    project: str,
    organism: Organism = "mouse",
    *,
    base_url: str = RECOUNT3_URL,
    annotation: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: DownloadConfig | None = None,
    progress: bool = False,
):
    """Load one recount3 SRA project as AnnData of read counts (samples × genes).

    Parameters
    ----------
    project : str
        SRA project accession, e.g. ``"SRP014565"``.
    organism : {"mouse", "human"}
        Which recount3 tree.
    base_url : str
        recount3 root (default the public server), a ``file://`` URL or a directory mirror.
    annotation : str, optional
        Gene annotation code; default ``M023`` (mouse) or ``G026`` (human).
    cache_dir : path-like, optional
        Download cache.
    download : DownloadConfig, optional
        Timeouts and retries.
    progress : bool
        Progress bars for downloads.

    Returns
    -------
    anndata.AnnData
        ``.X``: float32 CSR read counts (coverage / average mapped length, rounded);
        ``var_names``: Ensembl ids without versions; ``obs``: the project's metadata tables joined
        on the run accession (``external_id``), including ``star.average_mapped_length``;
        ``uns['recount3']``: project, organism, annotation and source URLs.
    """
    import anndata as ad

    if organism not in DEFAULT_ANNOTATION:
        raise ValueError(f"organism must be 'mouse' or 'human', got {organism!r}")
    annotation = annotation or DEFAULT_ANNOTATION[organism]

    def get(url: str):
        relpath = "recount3/" + url.removeprefix(join_url(base_url, "")) if is_remote(url) else None
        return fetch(url, cache_dir=cache_dir, relpath=relpath, config=download, progress=progress)

    sums_url = recount3_url(base_url, organism, project, "gene_sums", annotation)
    with get(sums_url).parsing() as path:
        table = read_count_table(path, sep="\t", comment="##")
    obs = _project_metadata(base_url, organism, project, get)
    reads = np.rint(table.counts / _mapped_lengths(obs, table.sample_ids, project)[:, None])
    obs = obs.loc[list(table.sample_ids)].rename(columns=str)
    adata = ad.AnnData(
        sp.csr_matrix(reads.astype(np.float32)),
        obs=obs.set_axis(pd.Index(table.sample_ids, name="run")),
        var=pd.DataFrame(index=pd.Index(strip_ensembl_version(table.gene_ids), name="gene_id")),
    )
    adata.uns["recount3"] = {
        "project": project,
        "organism": organism,
        "annotation": annotation,
        "gene_sums": sums_url,
    }
    return adata


def _project_metadata(base_url: str, organism: str, project: str, get) -> pd.DataFrame:
    merged: pd.DataFrame | None = None
    for table_name in METADATA_TABLES:
        url = recount3_url(base_url, organism, project, "metadata", table_name)
        with get(url).parsing() as path:
            frame = read_delimited_frame(path, sep="\t")
            if "external_id" not in frame.columns:
                raise DataFormatError(f"{url}: no 'external_id' column; not a recount3 table")
        frame = frame.loc[:, ~frame.columns.duplicated()].set_index("external_id")
        if merged is None:
            merged = frame
        else:
            merged = merged.join(frame[frame.columns.difference(merged.columns)], how="left")
    return _numeric_where_possible(merged)


def _numeric_where_possible(frame: pd.DataFrame) -> pd.DataFrame:
    """Convert columns whose non-empty cells are all numbers ('NA' counts as empty)."""
    typed = {}
    for column in frame.columns:
        text = frame[column].replace({"NA": None, "": None})
        numbers = pd.to_numeric(text, errors="coerce")
        typed[column] = numbers if numbers.notna().sum() == text.notna().sum() else frame[column]
    return pd.DataFrame(typed, index=frame.index)


def list_recount3_projects(
    organism: Organism = "mouse",
    *,
    base_url: str = RECOUNT3_URL,
    cache_dir: str | os.PathLike | None = None,
    download: DownloadConfig | None = None,
) -> pd.DataFrame:
    """The SRA projects recount3 holds for ``organism``: one row per project with its run count."""
    url = join_url(base_url, organism, "data_sources/sra/metadata/sra.recount_project.MD.gz")
    relpath = f"recount3/{organism}/sra.recount_project.MD.gz"
    runs = read_delimited_frame(
        fetch(url, cache_dir=cache_dir, relpath=relpath, config=download).path, sep="\t"
    )
    if "project" not in runs.columns:
        raise DataFormatError(f"{url}: no 'project' column; not a recount3 project list")
    return runs.groupby("project").size().rename("n_samples").reset_index()


def _mapped_lengths(obs: pd.DataFrame, sample_ids: np.ndarray, project: str) -> np.ndarray:
    if MAPPED_LENGTH not in obs.columns:
        raise DataFormatError(
            f"recount_qc of {project} has no {MAPPED_LENGTH!r} column; cannot "
            "convert coverage to reads"
        )
    missing = [s for s in sample_ids.tolist() if s not in obs.index]
    if missing:
        raise DataFormatError(f"{project}: samples {missing[:3]} have no metadata rows")
    lengths = pd.to_numeric(obs.loc[list(sample_ids), MAPPED_LENGTH], errors="coerce").to_numpy()
    if not (np.isfinite(lengths) & (lengths > 0)).all():
        raise DataFormatError(
            f"{project}: {MAPPED_LENGTH} is missing or not positive for some "
            "samples; cannot convert coverage to reads"
        )
    return lengths


def build_recount3_corpus(
    projects: Sequence[str],
    organism: Organism = "mouse",
    *,
    base_url: str = RECOUNT3_URL,
    annotation: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    genes: Sequence[str] | None = None,
    obs_columns: Sequence[str] = ("study", "sample_acc", "library_strategy", "library_layout"),
    download: DownloadConfig | None = None,
    progress: bool = True,
):
    """Concatenate many recount3 projects into one sparse corpus, one project in memory at a time.

    Parameters
    ----------
    projects : sequence of str
        SRA project accessions.
    organism, base_url, annotation, cache_dir, download
        As in :func:`load_recount3`.
    genes : sequence of str, optional
        Keep only these Ensembl ids, in this order (absent genes are zero); default the first
        project's genes.
    obs_columns : sequence of str
        Metadata columns kept per sample (missing ones are left empty); ``project`` is added.
    progress : bool
        Show a progress bar over projects.

    Returns
    -------
    anndata.AnnData
        float32 CSR read counts, samples of all projects stacked.
    """
    import anndata as ad
    from tqdm.auto import tqdm

    if len(projects) == 0:
        raise ValueError("projects is empty; pass at least one SRA project accession")
    blocks, frames, gene_index = [], [], None if genes is None else pd.Index(genes)
    for project in tqdm(projects, desc="recount3 projects", disable=not progress):
        part = load_recount3(
            project,
            organism,
            base_url=base_url,
            annotation=annotation,
            cache_dir=cache_dir,
            download=download,
        )
        gene_index = part.var_names if gene_index is None else gene_index
        blocks.append(_align_columns(part.X, part.var_names, gene_index))
        frames.append(part.obs.reindex(columns=list(obs_columns)).assign(project=project))
        del part
    obs = pd.concat(frames)
    if obs.index.duplicated().any():
        raise DataFormatError(
            "the same run appears in several projects: "
            f"{obs.index[obs.index.duplicated()][:3].tolist()}"
        )
    return ad.AnnData(
        sp.vstack(blocks, format="csr"),
        obs=obs.fillna("").astype(str),
        var=pd.DataFrame(index=pd.Index(gene_index, name="gene_id")),
    )


def _align_columns(matrix: sp.csr_matrix, have: pd.Index, want: pd.Index) -> sp.csr_matrix:
    """Columns of ``matrix`` (named ``have``) reordered to ``want``; absent ones are zero."""
    position = have.get_indexer(want)
    found = np.flatnonzero(position >= 0)
    selector = sp.csr_matrix(
        (np.ones(found.size, dtype=np.float32), (position[found], found)),
        shape=(len(have), len(want)),
    )
    return (matrix @ selector).astype(np.float32).tocsr()
