"""Loaders for local real sets: curatedAdipoRNA, Benayoun aging and neutrophils, Weger liver.

Each takes the folder the files sit in (nothing is bundled) and returns samples × genes AnnData
with the labels in ``obs``: raw read counts in ``.X`` and ``layers['counts']``, except the
neutrophil set, which is published already normalised (log2 DESeq2 values in ``.X``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gtlomics.datasets.errors import DataFormatError
from gtlomics.datasets.tables import CountTable, counts_anndata, read_count_table

__all__ = [
    "load_benayoun_aging",
    "load_benayoun_neutrophils",
    "load_curated_adipo",
    "load_weger_liver",
]

_BENAYOUN_COLUMN = re.compile(
    r"^(?:(?P<t1>[A-Za-z]+)_)?(?P<age>\d+)m(?P<rep>\d+)(?:_(?P<t2>[A-Za-z]+))?_"
)
TISSUE_NAMES = {
    "cereb": "cerebellum",
    "liver": "liver",
    "heart": "heart",
    "ob": "olfactory bulb",
    "npc": "neural progenitors",
}


def load_curated_adipo(folder: str | os.PathLike):
    """curatedAdipoRNA: 3T3-L1 adipocyte differentiation, MGI symbols × GSM samples.

    Parameters
    ----------
    folder : path-like
        Folder with ``adipo_gene_counts.csv.gz`` (symbols × GSM) and ``samples.csv``
        (id, study, time, stage, …).

    Returns
    -------
    anndata.AnnData
        98 samples; ``var_names`` are gene symbols (map them with
        :func:`gtlomics.datasets.gene_ids.harmonize_to_ensembl`); ``obs`` has ``study``, ``time``
        (hours from induction) and ``stage`` (0–3).
    """
    folder = Path(folder)
    table = read_count_table(folder / "adipo_gene_counts.csv.gz", sep=",")
    samples = pd.read_csv(folder / "samples.csv", dtype={"id": str}).set_index("id")
    missing = sorted(set(table.sample_ids.tolist()) - set(samples.index))
    if missing:
        raise DataFormatError(f"{folder / 'samples.csv'}: no rows for samples {missing[:3]}")
    obs = samples.loc[list(table.sample_ids)].rename_axis("sample")
    return counts_anndata(table.counts, obs, table.gene_ids)


def load_benayoun_aging(folder: str | os.PathLike, *, include_repeats: bool = False):
    """Benayoun et al. 2019 mouse aging: five tissues × 3/12/29 months, HOMER read counts.

    Parameters
    ----------
    folder : path-like
        Folder with the five ``*_RNA_genes_and_repeats_matrix.txt.gz`` files.
    include_repeats : bool
        Keep the repeat-family rows (names contain ``|``); by default only RefSeq genes are kept.

    Returns
    -------
    anndata.AnnData
        Samples of all tissues; ``var_names`` are RefSeq ids (genes present in every tissue file),
        ``var['length']``; ``obs`` has ``tissue`` and ``age_months``.

    Notes
    -----
    The published matrices have ragged rows (a third of the rows carry fewer counts than there
    are samples, with no way to tell which sample a value belongs to). Such rows are dropped;
    ``uns['benayoun_aging']['n_incomplete_rows_dropped']`` says how many per file.
    """
    paths = sorted(Path(folder).glob("*_RNA_genes_and_repeats_matrix.txt*"))
    if not paths:
        raise FileNotFoundError(f"no *_RNA_genes_and_repeats_matrix.txt.gz files in {folder}")
    tables = [read_count_table(p, sep="\t", drop_incomplete_rows=True) for p in paths]
    frames = [_benayoun_frame(t, include_repeats) for t in tables]
    shared = frames[0].columns
    for frame in frames[1:]:
        shared = shared.intersection(frame.columns, sort=False)
    counts = pd.concat([f[shared] for f in frames]).drop(index="length")
    lengths = frames[0].loc["length", shared]
    obs = pd.DataFrame([_benayoun_labels(s) for s in counts.index], index=counts.index)
    var = pd.DataFrame({"length": lengths.to_numpy()}, index=pd.Index(shared, name="gene_id"))
    adata = counts_anndata(counts.to_numpy(), obs, shared, var)
    adata.uns["benayoun_aging"] = {
        "n_incomplete_rows_dropped": {Path(t.source).name: t.n_dropped_rows for t in tables}
    }
    return adata


def _benayoun_frame(table: CountTable, include_repeats: bool) -> pd.DataFrame:
    """Samples × features of one tissue file, with the HOMER ``length`` column as a row."""
    if "length" not in table.sample_ids:
        raise DataFormatError(f"{table.source}: no 'length' column; not a HOMER count matrix")
    is_repeat = np.char.find(table.gene_ids.astype(str), "|") >= 0
    keep = np.ones_like(is_repeat) if include_repeats else ~is_repeat
    frame = pd.DataFrame(
        table.counts[:, keep], index=table.sample_ids, columns=table.gene_ids[keep]
    )
    return frame.rename(index=lambda s: s.removesuffix("_gene_and_repeat_counts.txt"))


def _benayoun_labels(sample: str) -> dict:
    match = _BENAYOUN_COLUMN.match(sample + "_")
    tissue = match and (match.group("t1") or match.group("t2"))
    if not tissue or tissue.lower() not in TISSUE_NAMES:
        raise DataFormatError(f"cannot read tissue and age from Benayoun column {sample!r}")
    return {"tissue": TISSUE_NAMES[tissue.lower()], "age_months": int(match.group("age"))}


_NEUTROPHIL_COLUMN = re.compile(r"^(?P<sex>Female|Male)_(?P<age>\d+)m_(?P<animal>[FM]\d+)[a-z]$")


def load_benayoun_neutrophils(folder: str | os.PathLike):
    """Benayoun lab mouse bone-marrow neutrophils: sex × age, log2 DESeq2 values after SVA.

    Parameters
    ----------
    folder : path-like
        Folder with ``neutrophils_log2_deseq2_sva.tsv.gz`` (MGI symbols × 16 samples).

    Returns
    -------
    anndata.AnnData
        16 samples; ``.X`` holds the published log2 values (not counts: fit with
        ``input_scale="log1p"`` or ``"auto"``); ``obs`` has ``sex``, ``age`` (``"4m"`` /
        ``"20m"``) and ``animal`` (``F1``…: the two samples sharing it must stay on one side
        of a split).
    """
    path = Path(folder) / "neutrophils_log2_deseq2_sva.tsv.gz"
    frame = _row_named_table(path)
    labels = [_NEUTROPHIL_COLUMN.match(name) for name in frame.columns]
    bad = [name for name, match in zip(frame.columns, labels, strict=True) if match is None]
    if bad:
        raise DataFormatError(f"{path}: unexpected sample names {bad[:3]}")
    obs = pd.DataFrame(
        [{"sex": m["sex"], "age": f"{m['age']}m", "animal": m["animal"]} for m in labels],
        index=pd.Index(frame.columns, name="sample"),
    )
    import anndata as ad

    var = pd.DataFrame(index=pd.Index(frame.index.astype(str), name="gene_id"))
    return ad.AnnData(frame.to_numpy(np.float32).T, obs=obs, var=var)


def load_weger_liver(folder: str | os.PathLike):
    """Weger et al. (GSE77221) male mouse liver over the day: Ensembl ids × 12 GSM samples.

    Parameters
    ----------
    folder : path-like
        Folder with ``weger18_liver_counts.tsv.gz``.

    Returns
    -------
    anndata.AnnData
        12 samples of integer Salmon gene counts; ``obs['tissue']`` is ``"liver"``.
    """
    path = Path(folder) / "weger18_liver_counts.tsv.gz"
    frame = _row_named_table(path)
    if (frame.to_numpy() < 0).any():
        raise DataFormatError(f"{path}: negative counts")
    obs = pd.DataFrame({"tissue": "liver"}, index=pd.Index(frame.columns, name="sample"))
    return counts_anndata(frame.to_numpy(np.float64).T, obs, frame.index.astype(str))


def _row_named_table(path: Path) -> pd.DataFrame:
    """A genes × samples table whose header names the samples only (R's row-named layout)."""
    try:
        frame = pd.read_csv(path, sep="\t")
    except (OSError, ValueError, EOFError) as error:
        raise DataFormatError(f"{path}: cannot read the table ({error})") from error
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    if numeric.isna().any().any() or frame.index.duplicated().any():
        raise DataFormatError(f"{path}: non-numeric, missing or duplicated entries")
    return numeric
