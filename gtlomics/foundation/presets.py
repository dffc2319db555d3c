"""Named size presets for :func:`~gtlomics.foundation.build.build_foundation`.

``"tiny"`` is for tests (seconds on a laptop CPU), ``"small"`` for demos and for the foundation
``GTLClassifier(foundation="auto")`` builds from the samples given to ``fit``, ``"default"`` for a
real corpus (thousands of samples, a GPU helps).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gtlomics.train import PretrainConfig, ScoutConfig

__all__ = ["PRESETS", "CousinTaskSettings", "FoundationPreset", "get_preset"]


@dataclass(frozen=True)
class CousinTaskSettings:
    """Settings of the :class:`~gtlomics.scouts.ClusterScoutGenerator` behind the scouts.

    The generator caps PCA, UMAP and KMeans sizes to small corpora itself; :meth:`for_samples`
    also lowers ``min_cluster_size`` so that a corpus of a dozen samples still gives tasks.
    """

    n_pca: int = 50
    n_components: int = 30
    n_clusters: int = 30
    n_neighbors: int = 15
    umap_epochs: int | None = None
    min_cluster_size: int = 5

    def for_samples(self, n_samples: int) -> CousinTaskSettings:
        """Scale to ``n_samples``: at most ``n // 4`` per cluster, about that many per cluster."""
        min_cluster_size = max(1, min(self.min_cluster_size, n_samples // 4))
        n_clusters = max(2, min(self.n_clusters, n_samples // min_cluster_size))
        return replace(self, n_clusters=n_clusters, min_cluster_size=min_cluster_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)


@dataclass(frozen=True)
class FoundationPreset:
    """Sizes of every stage of a foundation build.

    Examples
    --------
    >>> get_preset("tiny").d_model
    16
    """

    n_genes: int = 2048
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_scouts: int = 32
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    scouts: ScoutConfig = field(default_factory=ScoutConfig)
    cousin_tasks: CousinTaskSettings = field(default_factory=CousinTaskSettings)

    def task_generator(self, n_rows: int, seed: int):
        """The cousin-task generator for ``n_rows`` samples: ``cousin_tasks`` scaled to them."""
        from gtlomics.scouts import ClusterScoutGenerator

        settings = self.cousin_tasks.for_samples(n_rows).to_dict()
        settings["n_epochs"] = settings.pop("umap_epochs")  # the generator's name for it
        return ClusterScoutGenerator(**settings, n_tasks=self.n_scouts, random_state=seed)


PRESETS: dict[str, FoundationPreset] = {
    "tiny": FoundationPreset(
        n_genes=64,
        d_model=16,
        n_layers=1,
        n_heads=2,
        n_scouts=4,
        pretrain=PretrainConfig(epochs=3, batch_size=32),
        scouts=ScoutConfig(steps=8, batch_size=16),
        cousin_tasks=CousinTaskSettings(n_pca=10, n_components=5, n_clusters=6, umap_epochs=50),
    ),
    "small": FoundationPreset(
        n_genes=512,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_scouts=16,
        pretrain=PretrainConfig(epochs=10, batch_size=32),
        scouts=ScoutConfig(steps=30, batch_size=16),
        cousin_tasks=CousinTaskSettings(n_components=10, n_clusters=12, umap_epochs=200),
    ),
    "default": FoundationPreset(),
}


def get_preset(name: str) -> FoundationPreset:
    """The preset called ``name`` (``"tiny"``, ``"small"`` or ``"default"``)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown foundation preset {name!r}; choose from {sorted(PRESETS)}.")
    return PRESETS[name]
