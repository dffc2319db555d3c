"""Plots (matplotlib, imported lazily inside each function; Agg-safe, no pyplot state)."""

from gtlomics.plotting.attributions import plot_top_genes
from gtlomics.plotting.cousin_tasks import plot_cousin_tasks

__all__ = ["plot_cousin_tasks", "plot_top_genes"]
