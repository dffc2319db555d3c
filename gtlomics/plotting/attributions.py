"""Bar plot of the genes that drive a classifier's call (from ``GTLClassifier.explain``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_top_genes"]

_SUPPORTS, _OPPOSES = "#b2182b", "#2166ac"


def plot_top_genes(source: Any, *, n_genes: int = 20, title: str | None = None) -> Figure:
    """Plot the ``n_genes`` genes with the largest mean absolute attribution.

    Bars are the mean absolute attribution over samples, longest on top; a bar is red when the
    gene's signed mean attribution supports the explained class, blue when it opposes it.

    Parameters
    ----------
    source : GeneAttributions or DataFrame
        What :meth:`~gtlomics.classifier.GTLClassifier.explain` returned, or its ``ranking()``
        (columns ``mean_abs_attribution`` and ``mean_attribution``, indexed by gene id).
    n_genes : int, default=20
        How many genes to show.
    title : str or None, default=None
        Axes title; ``None`` writes a default one.

    Returns
    -------
    matplotlib.figure.Figure
        Built without pyplot (any backend); save it with ``fig.savefig(path)``.
    """
    from matplotlib.figure import Figure

    ranking = _ranking(source)
    top = ranking.sort_values("mean_abs_attribution", ascending=False, kind="stable")
    top = top.head(max(int(n_genes), 1)).iloc[::-1]  # largest at the top of a barh
    colors = np.where(top["mean_attribution"].to_numpy() >= 0, _SUPPORTS, _OPPOSES)
    fig = Figure(figsize=(5.0, 1.0 + 0.25 * len(top)), layout="constrained")
    ax = fig.subplots()
    ax.barh([str(gene) for gene in top.index], top["mean_abs_attribution"], color=colors)
    ax.set_xlabel("mean |attribution| (integrated gradients, log-probability)")
    ax.set_title(title or f"Top {len(top)} genes (red: supports the call, blue: opposes)")
    return fig


def _ranking(source: Any) -> pd.DataFrame:
    if hasattr(source, "ranking"):
        return source.ranking()
    needed = {"mean_abs_attribution", "mean_attribution"}
    if not isinstance(source, pd.DataFrame) or not needed <= set(source.columns):
        raise TypeError(
            "plot_top_genes needs the result of GTLClassifier.explain(...) or its .ranking() "
            f"DataFrame (columns {sorted(needed)})."
        )
    return source
