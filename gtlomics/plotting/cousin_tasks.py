"""Map of the cousin-task clusters and a few task groups on a 2-D view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_cousin_tasks"]


def plot_cousin_tasks(
    source: Any,
    *,
    n_tasks: int = 3,
    view: Literal["pca", "umap"] = "pca",
    key: str = "scout",
    point_size: float = 6.0,
) -> Figure:
    """Plot the clusters and ``n_tasks`` cousin tasks of a scouting run.

    The left panel colours every sample by its cluster (ids at cluster centres); each further
    panel shows one task: its classes in colour, every other sample in grey.

    Parameters
    ----------
    source
        A fitted :class:`~gtlomics.scouts.ClusterScoutGenerator`, or an AnnData written by
        :func:`~gtlomics.scouts.add_cousin_tasks`.
    n_tasks
        How many tasks to show (the first ones).
    view
        ``"pca"``: a 2-D PCA of the embedding (faithful to its largest spread);
        ``"umap"``: its first two dimensions.
    key
        ``key_added`` used by ``add_cousin_tasks`` (AnnData only).
    point_size
        Marker size.

    Returns
    -------
    matplotlib.figure.Figure
        Built without pyplot (any backend); save it with ``fig.savefig(path)``.
    """
    from matplotlib.figure import Figure

    embedding, labels, tasks = _unpack(source, key)
    xy = _two_dims(embedding, view)
    shown = tasks[: max(int(n_tasks), 0)]
    fig = Figure(figsize=(4.0 * (1 + len(shown)), 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, 1 + len(shown), squeeze=False)[0])
    _draw_clusters(axes[0], xy, labels, point_size)
    for ax, (number, task) in zip(axes[1:], enumerate(shown), strict=True):
        _draw_task(ax, xy, task, number, point_size)
    for ax in axes:
        ax.set(xticks=[], yticks=[], xlabel=f"{view} 1", ylabel=f"{view} 2")
    return fig


def _unpack(source: Any, key: str):
    from gtlomics.scouts import ClusterScoutGenerator, tasks_from_uns

    if isinstance(source, ClusterScoutGenerator):
        if not hasattr(source, "tasks_"):
            raise ValueError("The ClusterScoutGenerator is not fitted; call .fit(X) first.")
        return source.embedding_, source.labels_, source.tasks_
    obsm_key, obs_key = f"X_{key}_umap", f"{key}_cluster"
    if not hasattr(source, "obsm") or obsm_key not in source.obsm or obs_key not in source.obs:
        raise KeyError(
            f"Need a fitted ClusterScoutGenerator or an AnnData with obsm[{obsm_key!r}] and "
            f"obs[{obs_key!r}]. Run `add_cousin_tasks(adata)` first."
        )
    labels = np.asarray(source.obs[obs_key].astype(int))
    return np.asarray(source.obsm[obsm_key]), labels, tasks_from_uns(source, key)


def _two_dims(embedding: np.ndarray, view: str) -> np.ndarray:
    if view not in ("pca", "umap"):
        raise ValueError(f"view must be 'pca' or 'umap', got {view!r}.")
    if embedding.shape[1] < 2:
        return np.column_stack([embedding[:, 0], np.zeros(embedding.shape[0])])
    if view == "umap":
        return embedding[:, :2]
    centred = embedding - embedding.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:2].T


def _draw_clusters(ax, xy: np.ndarray, labels: np.ndarray, size: float) -> None:
    ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab20", s=size, linewidths=0)
    for cluster in np.unique(labels):
        centre = xy[labels == cluster].mean(axis=0)
        ax.annotate(str(cluster), centre, ha="center", va="center", fontsize=7, weight="bold")
    ax.set_title(f"{np.unique(labels).size} clusters")


def _draw_task(ax, xy: np.ndarray, task, number: int, size: float) -> None:
    ax.scatter(xy[:, 0], xy[:, 1], c="0.85", s=size, linewidths=0)
    for label, cluster in enumerate(task.clusters):
        members = task.indices[task.labels == label]
        ax.scatter(xy[members, 0], xy[members, 1], s=size, linewidths=0, label=f"cluster {cluster}")
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_title(f"task {number}: {task.n_per_class} per class")
