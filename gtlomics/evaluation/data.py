"""Shaping AnnData for an evaluation: labelled samples of chosen classes, datasets side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["concat_datasets", "labelled_samples"]


def labelled_samples(adata, label_key: str, *, classes: Sequence | None = None):
    """Samples of ``adata`` that carry a label (optionally only the given classes).

    Parameters
    ----------
    adata
        AnnData with ``obs[label_key]``.
    label_key
        The label column.
    classes
        Keep only samples whose label is one of these (compared as strings); None keeps all
        labelled samples.

    Returns
    -------
    (AnnData, numpy.ndarray)
        The subset (a copy) and its labels as strings.
    """
    if label_key not in adata.obs:
        raise KeyError(
            f"adata.obs has no column {label_key!r}; columns are {list(adata.obs.columns)}."
        )
    labels = adata.obs[label_key]
    keep = labels.notna().to_numpy()
    text = labels.astype(str).to_numpy()
    if classes is not None:
        wanted = [str(c) for c in classes]
        absent = sorted(set(wanted) - set(text[keep]))
        if absent:
            raise ValueError(f"Classes {absent} not found in obs[{label_key!r}]: {set(text)}.")
        keep &= np.isin(text, wanted)
    subset = adata[keep].copy()
    return subset, text[keep].astype(object)


def concat_datasets(datasets: Mapping[str, object], *, group_key: str = "dataset"):
    """Stack datasets on their shared genes, recording where each sample came from.

    Parameters
    ----------
    datasets
        Name → AnnData (same kind of gene ids in ``var_names``).
    group_key
        ``obs`` column that receives the dataset name (the groups of a cross-dataset protocol).

    Returns
    -------
    AnnData
        Samples of all datasets × genes present in every one (inner join); sample names are made
        unique by appending ``/<dataset name>``.
    """
    import anndata as ad

    if len(datasets) < 2:
        raise ValueError("concat_datasets needs at least two datasets.")
    combined = ad.concat(dict(datasets), join="inner", label=group_key, index_unique="/")
    if combined.n_vars == 0:
        raise ValueError(
            "The datasets share no gene ids; map them to one id type first "
            "(gtlomics.datasets.gene_ids)."
        )
    combined.obs[group_key] = pd.Categorical(combined.obs[group_key].astype(str))
    return combined
