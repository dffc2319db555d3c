"""Configuration of the expression encoder (a frozen dataclass saved beside the weights)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["EncoderConfig"]

_POOLINGS = ("cls", "mean")


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of an :class:`~gtlomics.nn.ExpressionEncoder`.

    Parameters
    ----------
    n_genes : int
        Number of gene tokens (the size of the gene vocabulary).
    d_model : int
        Width of every token.
    n_layers : int
        Number of pre-norm transformer blocks.
    n_heads : int
        Attention heads; must divide ``d_model``.
    d_ff : int or None
        Hidden width of the feed-forward sub-layer; ``None`` means ``4 * d_model``.
    dropout : float
        Dropout on the residual branches (drawn from a local generator, see
        :func:`~gtlomics.nn.set_dropout_generator`).
    use_cls : bool
        Prepend a learned CLS token.
    pooling : {"cls", "mean"}
        How :meth:`~gtlomics.nn.ExpressionEncoder.pool` summarises the tokens; ``"cls"`` needs
        ``use_cls=True``.
    value_hidden : int or None
        Hidden width of the continuous value embedding MLP; ``None`` means ``d_model``.

    Examples
    --------
    >>> cfg = EncoderConfig(n_genes=64, d_model=32, n_layers=1)
    >>> EncoderConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    n_genes: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None
    dropout: float = 0.0
    use_cls: bool = True
    pooling: str = "cls"
    value_hidden: int | None = None

    def __post_init__(self) -> None:
        if self.n_genes < 1 or self.d_model < 1 or self.n_layers < 0 or self.n_heads < 1:
            raise ValueError(
                f"EncoderConfig needs n_genes, d_model, n_heads >= 1 and n_layers >= 0; got {self}."
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "choose n_heads that divides d_model."
            )
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}.")
        if self.pooling == "cls" and not self.use_cls:
            raise ValueError('pooling="cls" needs use_cls=True; use pooling="mean" instead.')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")

    @property
    def ff_dim(self) -> int:
        """Hidden width of the feed-forward sub-layer."""
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @property
    def value_dim(self) -> int:
        """Hidden width of the value-embedding MLP."""
        return self.value_hidden if self.value_hidden is not None else self.d_model

    @property
    def n_tokens(self) -> int:
        """Sequence length seen by the transformer (genes plus the optional CLS token)."""
        return self.n_genes + int(self.use_cls)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"Unknown EncoderConfig keys {sorted(unknown)}; was it saved by a newer gtlomics?"
            )
        return cls(**data)
