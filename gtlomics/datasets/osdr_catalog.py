"""Finding OSDR studies in a sample catalogue (``selected_sample_metadata.tsv.gz``).

The catalogue has one row per sample with columns in the OSDR biodata-API naming
(``id.accession``, ``id.sample name``, ``study.characteristics.organism``,
``study.characteristics.material type``, ``study.factor value.spaceflight``, ``counts_file``, …).
"""

from __future__ import annotations

import os

import pandas as pd

from gtlomics.datasets.errors import DataFormatError
from gtlomics.datasets.tables import read_delimited_frame

__all__ = ["list_osdr_studies"]

_COLUMNS = {
    "accession": "id.accession",
    "organism": "study.characteristics.organism",
    "tissue": "study.characteristics.material type",
    "spaceflight": "study.factor value.spaceflight",
    "counts_file": "counts_file",
}


def list_osdr_studies(
    catalog_path: str | os.PathLike,
    *,
    organism: str | None = "Mus musculus",
    tissue: str | None = None,
    min_flight: int = 0,
    min_ground: int = 0,
) -> pd.DataFrame:
    """Summarise a sample catalogue per study, optionally filtered.

    Parameters
    ----------
    catalog_path : path-like
        The catalogue TSV (plain or gzip).
    organism : str, optional
        Keep samples whose organism contains this text (case-insensitive); None keeps all.
    tissue : str, optional
        Keep samples whose material type contains this text (case-insensitive), e.g. "liver".
    min_flight, min_ground : int
        Keep studies with at least this many Space Flight / Ground Control samples.

    Returns
    -------
    pandas.DataFrame
        One row per study: ``accession``, ``n_samples``, ``n_flight``, ``n_ground``,
        ``tissues`` (distinct material types joined by "; "), ``counts_file``; sorted by accession
        number.

    Examples
    --------
    >>> list_osdr_studies(path, tissue="soleus", min_flight=3)  # doctest: +SKIP
    """
    samples = _read_catalog(catalog_path)
    keep = pd.Series(True, index=samples.index)
    for column, text in (("organism", organism), ("tissue", tissue)):
        if text is not None:
            keep &= samples[column].str.contains(text, case=False, regex=False)
    summary = _summarise(samples[keep])
    enough = (summary["n_flight"] >= min_flight) & (summary["n_ground"] >= min_ground)
    return summary[enough].reset_index(drop=True)


def _read_catalog(path) -> pd.DataFrame:
    frame = read_delimited_frame(path, sep="\t")
    missing = sorted(set(_COLUMNS.values()) - set(frame.columns))
    if missing:
        raise DataFormatError(
            f"{path}: catalogue lacks columns {missing}; expected the format of "
            "selected_sample_metadata.tsv.gz"
        )
    return frame.rename(columns={v: k for k, v in _COLUMNS.items()})


def _summarise(samples: pd.DataFrame) -> pd.DataFrame:
    arm = samples["spaceflight"].str.strip().str.lower()
    flagged = samples.assign(flight=arm.eq("space flight"), ground=arm.eq("ground control"))
    summary = flagged.groupby("accession").agg(
        n_samples=("accession", "size"),
        n_flight=("flight", "sum"),
        n_ground=("ground", "sum"),
        tissues=("tissue", lambda t: "; ".join(sorted(set(t) - {""}))),
        counts_file=("counts_file", "first"),
    )
    order = summary.index.str.extract(r"(\d+)$", expand=False).astype(int).argsort()
    return summary.iloc[order].reset_index()
