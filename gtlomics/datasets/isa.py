"""ISA-Tab study tables (``s_OSD-N.txt``): sample factors and characteristics, arm cross-checks."""

from __future__ import annotations

import os
import re
import warnings
from typing import Literal

import numpy as np
import pandas as pd

from gtlomics.datasets.errors import DataFormatError, LabelMismatchError
from gtlomics.datasets.tables import read_delimited_frame

__all__ = ["ARM_NAMES", "arm_from_sample_name", "check_arms", "read_study_table"]

ARM_NAMES = {
    "FLT": "Space Flight",
    "GC": "Ground Control",
    "BSL": "Basal Control",
    "VIV": "Vivarium Control",
}
_ARM_TOKEN = re.compile(r"(?<![A-Za-z])(FLT|[HA]?GC|BSL|VIV)(?![A-Za-z])")
_BRACKETED = re.compile(r"^(Factor Value|Characteristics)\[(.+)\]$")


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def read_study_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read an ISA study table into one row per ``Sample Name``.

    Columns are the factors (``Factor Value[X]`` → ``x`` in snake case, e.g. ``spaceflight``,
    ``altered_gravity``) and characteristics (``Characteristics[Material Type]`` →
    ``material_type``), with ``attrs['factors']`` listing the factor columns. Ontology reference
    and unit columns are dropped. Accepts plain, compressed or zipped (ISA archive) files.

    Raises
    ------
    DataFormatError
        When the file has no ``Sample Name`` column or repeats a sample.
    """
    frame = read_delimited_frame(path, sep="\t", member_pattern=r"^s_.*\.txt$")
    if "Sample Name" not in frame.columns:
        raise DataFormatError(
            f"{path}: no 'Sample Name' column; is this an ISA study table (s_*.txt)?"
        )
    columns, factors = {}, []
    for position, name in enumerate(frame.columns):
        match = _BRACKETED.match(str(name))
        if match is None or _snake(match.group(2)) in columns:
            continue
        key = _snake(match.group(2))
        columns[key] = frame.iloc[:, position].str.strip().to_numpy()
        if match.group(1) == "Factor Value":
            factors.append(key)
    samples = frame.iloc[:, list(frame.columns).index("Sample Name")]  # the first, if repeated
    table = pd.DataFrame(columns, index=pd.Index(samples.str.strip(), name="sample"))
    if table.index.duplicated().any():
        raise DataFormatError(
            f"{path}: duplicated Sample Name {table.index[table.index.duplicated()][:3].tolist()}"
        )
    table.attrs["factors"] = factors
    return table


def arm_from_sample_name(name: str) -> str:
    """The arm token in a GeneLab sample name ('FLT', 'GC', 'BSL', 'VIV'), or '' if none.

    Examples
    --------
    >>> arm_from_sample_name("Mmus_C57-6J_TA_FLT_Rep1_M23")
    'FLT'
    >>> arm_from_sample_name("MHU-8_RTN_HGC_HGC01")
    'GC'
    """
    match = _ARM_TOKEN.search(name)
    token = match.group(1) if match else ""
    return "GC" if token.endswith("GC") else token


def check_arms(
    sample_ids, spaceflight, *, source: str, on_mismatch: Literal["raise", "warn"] = "raise"
) -> np.ndarray:
    """Compare the spaceflight factor with each sample name's arm token.

    Returns a boolean array: True where the name carries a token that agrees with the factor or
    carries no token. Disagreements raise :class:`LabelMismatchError` (or warn).
    """
    tokens = np.array([arm_from_sample_name(s) for s in sample_ids])
    expected = np.array([ARM_NAMES.get(t, "") for t in tokens])
    factor = np.asarray(spaceflight, dtype=str)
    agrees = (tokens == "") | (np.char.lower(expected) == np.char.lower(factor))
    if not agrees.all():
        bad = [
            f"{s} ({f!r})"
            for s, f in zip(np.asarray(sample_ids)[~agrees], factor[~agrees], strict=True)
        ]
        message = (
            f"{source}: Factor Value[Spaceflight] disagrees with the arm token in "
            f"{len(bad)} sample name(s): {bad[:5]}; check the study table and the counts "
            "table come from the same study, or pass on_label_mismatch='warn'"
        )
        if on_mismatch == "raise":
            raise LabelMismatchError(message)
        warnings.warn(message, UserWarning, stacklevel=3)
    return agrees
