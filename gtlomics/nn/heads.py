"""Heads on top of the encoder and the ``GTLModel`` wrapper that guides are keyed by."""

from __future__ import annotations

import math

import torch
from torch import nn

from gtlomics.nn.encoder import ExpressionEncoder
from gtlomics.nn.layers import init_parameters

__all__ = [
    "ClassificationHead",
    "GTLModel",
    "GeneReadoutHead",
    "MaskedExpressionHead",
    "RegressionHead",
    "SeedEnsemble",
]


ENSEMBLE_COMBINES: tuple[str, ...] = ("probabilities", "mean")


class _LinearHead(nn.Module):
    """A head of one linear layer ``(..., D)`` → ``(..., n_outputs)``, initialised from ``seed``."""

    def __init__(self, d_model: int, n_outputs: int, seed: int) -> None:
        super().__init__()
        with torch.device("meta"):
            linear = nn.Linear(d_model, n_outputs)
        self.linear = linear.to_empty(device="cpu")
        init_parameters(self.linear, torch.Generator().manual_seed(seed))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


class MaskedExpressionHead(_LinearHead):
    """Predict one value per gene token: ``(B, G, D)`` → ``(B, G)``.

    Examples
    --------
    >>> import torch
    >>> MaskedExpressionHead(8)(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 5])
    """

    def __init__(self, d_model: int, *, seed: int = 0) -> None:
        super().__init__(d_model, 1, seed)

    def forward(self, gene_features: torch.Tensor) -> torch.Tensor:
        return self.linear(gene_features).squeeze(-1)  # (B, G)


class ClassificationHead(_LinearHead):
    """Linear classifier on pooled features: ``(B, D)`` → logits ``(B, C)``.

    Examples
    --------
    >>> import torch
    >>> ClassificationHead(8, 3)(torch.zeros(2, 8)).shape
    torch.Size([2, 3])
    """

    def __init__(self, d_model: int, n_classes: int, *, seed: int = 0) -> None:
        if n_classes < 2:
            raise ValueError(f"A classification head needs n_classes >= 2, got {n_classes}.")
        super().__init__(d_model, n_classes, seed)
        self.n_classes = n_classes


class RegressionHead(_LinearHead):
    """Linear regression on pooled features: ``(B, D)`` → ``(B, n_outputs)``.

    Examples
    --------
    >>> import torch
    >>> RegressionHead(8)(torch.zeros(2, 8)).shape
    torch.Size([2, 1])
    """

    def __init__(self, d_model: int, n_outputs: int = 1, *, seed: int = 0) -> None:
        if n_outputs < 1:
            raise ValueError(f"A regression head needs n_outputs >= 1, got {n_outputs}.")
        super().__init__(d_model, n_outputs, seed)
        self.n_outputs = n_outputs


class GeneReadoutHead(_LinearHead):
    """Pooled features plus a linear read-out of every input gene: outputs ``(B, C)``.

    ``logits = linear(pooled) + z @ gene_weight.T`` where ``z`` is each input gene standardised
    with this head's own per-gene ``readout_center`` / ``readout_scale`` (absent genes count 0).
    With ``gene_weight`` and ``linear`` set from a logistic regression on ``[pooled, z]`` (see
    :func:`gtlomics.classifier.linear_probe.fit_linear_probe`) the model starts as that linear
    model; fine-tuning then lets the encoder add to it. The read-out may cover more genes than
    the encoder's tokens (the study's own most variable genes): they are the last columns.
    ``n_outputs`` is the number of classes (logits) of a classifier, 1 for a regressor.

    Examples
    --------
    >>> import torch
    >>> head = GeneReadoutHead(8, 2, n_readout=5)
    >>> head(torch.zeros(3, 8), torch.ones(3, 5)).shape
    torch.Size([3, 2])
    """

    def __init__(self, d_model: int, n_outputs: int, n_readout: int, *, seed: int = 0) -> None:
        if n_outputs < 1:
            raise ValueError(f"A read-out head needs n_outputs >= 1, got {n_outputs}.")
        super().__init__(d_model, n_outputs, seed)
        self.n_outputs = n_outputs
        self.gene_weight = nn.Parameter(torch.zeros(n_outputs, n_readout))
        self.register_buffer("readout_center", torch.zeros(n_readout))
        self.register_buffer("readout_scale", torch.ones(n_readout))

    @torch.no_grad()
    def set_readout_standardization(self, center: torch.Tensor, scale: torch.Tensor) -> None:
        """Standardise read-out genes as ``(value − center) / scale``; ``scale`` must be > 0."""
        if torch.any(scale <= 0):
            raise ValueError("read-out scale must be positive; floor near-constant genes first.")
        self.readout_center.copy_(center)
        self.readout_scale.copy_(scale)

    def standardized(
        self, values: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, R)`` standardised read-out inputs, 0 where a gene is absent."""
        z = (values - self.readout_center) / self.readout_scale
        if present is None:
            return z
        return z.masked_fill(~present.to(device=z.device, dtype=torch.bool), 0.0)

    def forward(
        self, pooled: torch.Tensor, values: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        z = self.standardized(values, present)  # (B, R)
        return self.linear(pooled) + z @ self.gene_weight.T.to(z.dtype)  # (B, C)


class GTLModel(nn.Module):
    """Encoder plus classification head; parameter names start with ``encoder.`` / ``head.``.

    Examples
    --------
    >>> import torch
    >>> from gtlomics.nn import EncoderConfig, ExpressionEncoder
    >>> enc = ExpressionEncoder(EncoderConfig(n_genes=16, d_model=8, n_heads=2, n_layers=1))
    >>> model = GTLModel(enc, ClassificationHead(8, 2))
    >>> model(torch.zeros(3, 16)).shape
    torch.Size([3, 2])
    """

    def __init__(self, encoder: ExpressionEncoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def embedding(self, values: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled sample embeddings ``(B, D)`` of the encoder's token columns of ``values``.

        The read-out may see more genes than the encoder has tokens: they are the last columns.
        """
        n_tokens = self.encoder.config.n_genes
        token_present = None if present is None else present[..., :n_tokens]
        return self.encoder(values[:, :n_tokens], token_present)  # (B, D)

    def forward(self, values: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        pooled = self.embedding(values, present)  # (B, D)
        if isinstance(self.head, GeneReadoutHead):
            return self.head(pooled, values, present)  # (B, C)
        return self.head(pooled)  # (B, C)


class SeedEnsemble(nn.Module):
    """Models fine-tuned from different seeds, combined into one drop-in model.

    ``combine="probabilities"`` (classifiers): the output is the log of the members' mean
    probability; ``softmax(log(mean_k softmax(logits_k)))`` is that mean, so anything that turns
    logits into probabilities gets the averaged ones. ``combine="mean"`` (regressors): the output
    is the members' mean output.
    :attr:`encoder` is the first member's (for embeddings and input standardisation, which every
    member fitted on the same training samples).

    Examples
    --------
    >>> import torch
    >>> from gtlomics.nn import EncoderConfig, ExpressionEncoder
    >>> cfg = EncoderConfig(n_genes=4, d_model=8, n_heads=2, n_layers=1)
    >>> members = [
    ...     GTLModel(ExpressionEncoder(cfg, seed=s), ClassificationHead(8, 2, seed=s))
    ...     for s in (0, 1)
    ... ]
    >>> SeedEnsemble(members)(torch.zeros(3, 4)).exp().sum(dim=1).round(decimals=5).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, members: list[GTLModel], *, combine: str = "probabilities") -> None:
        super().__init__()
        if not members:
            raise ValueError("A SeedEnsemble needs at least one member.")
        if combine not in ENSEMBLE_COMBINES:
            raise ValueError(f"combine must be one of {ENSEMBLE_COMBINES}, got {combine!r}.")
        self.members = nn.ModuleList(members)
        self.combine = combine

    @property
    def encoder(self) -> ExpressionEncoder:
        """The first member's encoder."""
        return self.members[0].encoder

    def forward(self, values: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        if self.combine == "mean":
            return torch.stack([m(values, present).float() for m in self.members]).mean(0)
        log_probs = torch.stack([m(values, present).float().log_softmax(-1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))  # (B, C)
