"""Settings shared by every entry point of the expression layer: where the values are
(:class:`ReadSettings`) and how they are normalised (:class:`PreprocessingConfig`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

__all__ = ["LOG_SCALE_MAX", "InputScale", "PreprocessingConfig", "ReadSettings", "ValueEncoding"]

InputScale = Literal["counts", "log1p", "real", "auto"]
ValueEncoding = Literal["log", "rank"]

#: Largest value a log-scaled matrix is expected to reach. ``log1p`` of one billion reads is 20.7
#: and log2 of it 29.9, while bulk RNA-seq counts (or CPM) of real libraries exceed this easily.
LOG_SCALE_MAX = 30.0


#: Keys a saved PreprocessingConfig held before the reading settings moved to ReadSettings.
_READING_KEYS = ("layer", "gene_column")


@dataclass(frozen=True)
class ReadSettings:
    """Where an AnnData (in memory or an ``.h5ad`` file) keeps its values and gene ids.

    Reading settings belong to one input, not to a model: a foundation or fitted classifier
    keeps its :class:`PreprocessingConfig` and none of these.

    Parameters
    ----------
    layer
        AnnData layer holding the values; ``None`` reads ``.X``.
    gene_column
        Column of ``adata.var`` holding gene ids; ``None`` uses ``var_names``.

    Examples
    --------
    >>> ReadSettings(layer="counts").gene_column is None
    True
    """

    layer: str | None = None
    gene_column: str | None = None


@dataclass(frozen=True)
class PreprocessingConfig:
    """How raw input becomes the log1p-normalised matrix the encoder sees.

    Parameters
    ----------
    target_sum
        Library size every sample is scaled to before ``log1p``. The default ``1e6`` gives
        log1p-CPM, the scale on which logistic regression is the reference baseline for bulk
        RNA-seq (single-cell tools often use ``1e4``).
    input_scale
        ``"counts"``: raw (possibly non-integer, e.g. RSEM expected) counts, always normalised;
        log-looking input is refused. ``"log1p"``: already library-size normalised and log1p
        transformed (or any non-negative log scale: log2 CPM, DESeq2 log2 counts), used as given;
        count-looking input is refused. ``"auto"``: non-integer input whose maximum is at most
        :data:`LOG_SCALE_MAX` is treated as ``"log1p"``, anything else as ``"counts"``.
        ``"real"``: any real values, used as given; the only scale that accepts negative values
        (z-scores, VST or voom values, pathway scores).
    value_encoding
        ``"log"``: the values above. ``"rank"``: each sample's values replaced by the normal
        scores of their ranks among all the genes the sample measures (ties share their mean
        rank), computed before alignment to the vocabulary: invariant to library size and to
        any monotone normalisation.
    min_overlap
        Smallest fraction of the vocabulary that must be found in an input; less is an error.

    Examples
    --------
    >>> cfg = PreprocessingConfig(value_encoding="rank")
    >>> PreprocessingConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    target_sum: float = 1e6
    input_scale: InputScale = "auto"
    min_overlap: float = 0.5
    value_encoding: ValueEncoding = "log"

    def __post_init__(self) -> None:
        if self.input_scale not in ("counts", "log1p", "real", "auto"):
            raise ValueError(
                "input_scale must be 'counts', 'log1p', 'real' or 'auto', got "
                f"{self.input_scale!r}."
            )
        if self.value_encoding not in ("log", "rank"):
            raise ValueError(
                f"value_encoding must be 'log' or 'rank', got {self.value_encoding!r}."
            )
        if not self.target_sum > 0:
            raise ValueError(f"target_sum must be > 0, got {self.target_sum!r}.")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be a fraction in [0, 1], got {self.min_overlap!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of the settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessingConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error.

        ``layer`` and ``gene_column`` (written before they moved to :class:`ReadSettings`) are
        dropped: they said how one input was read, not how values are normalised.
        """
        data = {key: value for key, value in data.items() if key not in _READING_KEYS}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"Unknown PreprocessingConfig keys {unknown}; expected {sorted(known)}."
            )
        return cls(**data)
