"""Distribution of guide values per layer of a foundation.

A layer is a parameter name cut after its first numeric component (``encoder.blocks.0``), or, when
there is none, with its last component removed (``encoder.gene_embedding``); a two-part name that
is a parameter of its own (``encoder.cls_token``) is its own layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = ["guide_values_by_layer", "layer_of", "plot_guide_distributions"]


def layer_of(parameter: str) -> str:
    """Layer name of a parameter name.

    Examples
    --------
    >>> layer_of("encoder.blocks.1.attn.qkv.weight")
    'encoder.blocks.1'
    >>> layer_of("head.linear.bias")
    'head.linear'
    >>> layer_of("encoder.cls_token")
    'encoder.cls_token'
    """
    parts = parameter.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    if len(parts) <= 2:
        return parameter
    return ".".join(parts[:-1])


def guide_values_by_layer(
    guides, *, mode: str = "global", max_per_layer: int = 20000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Flatten guide values into one array per layer (subsampled for large layers).

    Parameters
    ----------
    guides
        A ``GuideValues`` (its ``normalized(mode=mode)`` is used) or a mapping from parameter
        name to a tensor or array of guide values.
    mode
        Normalisation passed to ``GuideValues.normalized``.
    max_per_layer
        Keep at most this many values per layer (uniform subsample with ``seed``).
    seed
        Seed of the subsample.
    """
    if hasattr(guides, "normalized"):
        guides = guides.normalized(mode=mode)
    if not isinstance(guides, Mapping) or not guides:
        raise TypeError("guides must be a GuideValues or a non-empty mapping name → values.")
    layers: dict[str, list[np.ndarray]] = {}
    for name, values in guides.items():
        layers.setdefault(layer_of(name), []).append(_to_numpy(values).ravel())
    rng = np.random.default_rng(seed)
    out = {}
    for layer, chunks in layers.items():
        values = np.concatenate(chunks)
        if values.size > max_per_layer:
            values = rng.choice(values, size=max_per_layer, replace=False)
        out[layer] = values
    return out


def plot_guide_distributions(guides, *, mode: str = "global", title: str | None = None) -> Figure:
    """Box plot of guide values per layer (0 = frozen at the pre-trained value, 1 = free).

    Parameters
    ----------
    guides
        ``GuideValues`` or a mapping parameter name → values.
    mode
        Normalisation used when ``guides`` is a ``GuideValues``.
    title
        Figure title.
    """
    by_layer = guide_values_by_layer(guides, mode=mode)
    fig = Figure(figsize=(max(5.0, 0.45 * len(by_layer) + 2.0), 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.boxplot(list(by_layer.values()), showfliers=False)
    ax.set_xticks(range(1, len(by_layer) + 1), list(by_layer), rotation=45, ha="right")
    ax.set_ylabel("guide value")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title or f"Guide values per layer ({mode} normalisation)")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _to_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().to("cpu").float().numpy()
    return np.asarray(values, dtype=np.float64)
