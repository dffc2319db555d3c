"""Gene attributions of a classifier's call by integrated gradients.

**Method.** Integrated gradients (Sundararajan, Taly & Yan, 2017) attributes a model output
``F(x)`` to each input ``x_g`` as ``(x_g − x0_g) · mean_k ∂F/∂x_g (x0 + α_k (x − x0))``, the
gradient averaged along the straight path from a baseline ``x0`` to the sample (midpoint rule,
adaptive: see below). It is chosen because it is the standard method whose attributions
*add up*: for every sample, the attributions over genes sum to ``F(x) − F(x0)`` up to the
quadrature error reported as :attr:`GeneAttributions.convergence_delta` (completeness), a gene
the model ignores gets exactly zero (dummy), and it needs only gradients, so every arm
(from scratch, pre-trained, GTL) is explained the same way on CPU or GPU. Plain gradients or
gradient × input lack completeness and saturate; occlusion needs one forward pass per gene.

**Explained output.** ``F`` is the log-probability of the target class (by default the predicted
one). The logits of a softmax classifier are defined only up to a shift shared by all classes, so a
single logit's attributions can carry a component common to every class; the log-probability
does not, and it is what :meth:`~gtlomics.classifier.GTLClassifier.predict_proba` reports.

**Baseline.** ``x0`` is the mean profile of the samples the model's input standardisation was
fitted on: the training samples (``GTLClassifier(standardize="study")``, the default; the
read-out head's ``readout_center``, which covers every input gene) or, with
``standardize="foundation"`` and a pooled head, the pre-training corpus (the encoder's
``gene_center``). The model standardises every input as ``(value − center) / scale``, so the
baseline is the *standardised zero*. An attribution therefore answers "how much does this gene's
deviation from the average profile move the call". An all-zero input would instead be a sample in
which no gene is expressed, far outside any data the model saw.

**Absent genes** (``present`` False: vocabulary genes the input lacks) are replaced by the mask
embedding inside the model, carry no gradient and get attribution exactly zero.

**Quadrature.** The path is cut into ``n_steps`` equal intervals and each is integrated by the
midpoint rule. An interval whose estimate disagrees with the change of ``F`` across it (known
exactly from two forward passes) is halved, up to ``max_depth`` times. Uniform steps are not
enough for these models: a classifier fitted to a few samples often flips its call within a
thin slice of the path (its final LayerNorm turns a small pooled vector into a unit one), and a
fixed grid then either misses the flip (attributions near 0) or lands on it (attributions many
times too large). Adaptive halving places the points where the call changes.

**Independence from the batch.** Each sample is explained on its own (its ``n_steps`` path
points form the forward batches), so its attributions never depend on the other samples passed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = ["GeneAttributions", "integrated_gradients", "rank_genes", "write_attributions"]


@dataclass(frozen=True)
class GeneAttributions:
    """Per-sample, per-gene integrated-gradient attributions of a classifier's call.

    Attributes
    ----------
    values : ndarray of shape (n_samples, n_genes)
        Attribution of every gene to the explained log-probability; positive values push the
        call towards the target class. Absent genes are 0.
    gene_ids : tuple of str
        Gene ids of the columns (the model's vocabulary).
    sample_ids : tuple of str
        Sample names of the rows (AnnData ``obs_names``, DataFrame index, or ``"0", "1", ...``).
    target : ndarray of shape (n_samples,)
        Class label explained for every sample.
    convergence_delta : ndarray of shape (n_samples,)
        ``sum(values[i]) − (F(x_i) − F(x0))``: the quadrature error; raise ``n_steps`` when it
        is large compared with the attributions.
    n_steps : int
        Path points of the integral.
    method : str
        ``"integrated_gradients"``.
    baseline : str
        What the baseline input was (``"mean_profile"``: the standardised zero).
    """

    values: np.ndarray
    gene_ids: tuple[str, ...]
    sample_ids: tuple[str, ...]
    target: np.ndarray
    convergence_delta: np.ndarray
    n_steps: int
    method: str = "integrated_gradients"
    baseline: str = "mean_profile"

    def to_frame(self) -> pd.DataFrame:
        """Attributions as a DataFrame: samples × genes."""
        return pd.DataFrame(self.values, index=list(self.sample_ids), columns=list(self.gene_ids))

    def ranking(self) -> pd.DataFrame:
        """Per-gene summary, most important gene first; see :func:`rank_genes`."""
        return rank_genes(self.values, self.gene_ids)


def rank_genes(values: np.ndarray, gene_ids: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Rank genes by their mean absolute attribution over samples.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_genes)
        Attributions.
    gene_ids : sequence of str
        Gene ids of the columns.

    Returns
    -------
    DataFrame
        Indexed by gene id, sorted by ``mean_abs_attribution`` (descending, ties by gene id),
        with columns ``rank`` (1 = most important), ``mean_abs_attribution``,
        ``mean_attribution`` (signed: positive when the gene's deviation from the baseline
        supports the explained class on average) and ``fraction_positive``.

    Examples
    --------
    >>> rank_genes(np.array([[0.1, -2.0], [0.3, -1.0]]), ["a", "b"]).index.tolist()
    ['b', 'a']
    """
    values = np.asarray(values, dtype=np.float64)
    frame = pd.DataFrame(
        {
            "mean_abs_attribution": np.abs(values).mean(axis=0),
            "mean_attribution": values.mean(axis=0),
            "fraction_positive": (values > 0).mean(axis=0),
        },
        index=pd.Index(list(gene_ids), name="gene_id"),
    )
    frame = frame.sort_values(["mean_abs_attribution"], ascending=False, kind="stable")
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame


def integrated_gradients(
    model: nn.Module,
    values: torch.Tensor,
    present: torch.Tensor,
    baseline: torch.Tensor,
    target: torch.Tensor,
    *,
    n_steps: int = 32,
    max_depth: int = 10,
    rtol: float = 0.01,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrated gradients of ``log_softmax(model(values, present))[target]`` per sample.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(values (B, G), present)`` to logits ``(B, C)``; run in eval mode here (its
        training flag is restored afterwards) and its parameters' ``.grad`` are left untouched.
    values : Tensor of shape (n_samples, n_genes)
        Inputs exactly as ``model`` consumes them.
    present : Tensor of shape (n_genes,) or (n_samples, n_genes)
        False for genes absent from the input; their attribution is 0.
    baseline : Tensor of shape (n_genes,)
        The path's starting point, in the same space as ``values``.
    target : Tensor of shape (n_samples,)
        Class index explained for every sample.
    n_steps : int, default=32
        Equal intervals the path starts with (midpoint rule on each).
    max_depth : int, default=10
        How many times an interval may be halved (adaptive quadrature, see the module notes).
    rtol : float, default=0.01
        Completeness target: the attributions of a sample should sum to ``F(x) − F(x0)`` within
        ``rtol · |F(x) − F(x0)|`` (plus 1e-4); intervals are halved until each meets its share.
    batch_size : int, default=32
        Path points per forward pass: bounds memory; changes the result only by float rounding.

    Returns
    -------
    attributions : ndarray of shape (n_samples, n_genes)
    convergence_delta : ndarray of shape (n_samples,)
        ``attributions.sum(1) − (F(x) − F(baseline))``.
    """
    if n_steps < 1 or batch_size < 1 or max_depth < 0:
        raise ValueError(
            f"n_steps and batch_size must be >= 1 and max_depth >= 0; got {n_steps}, "
            f"{batch_size} and {max_depth}."
        )
    present = present.to(dtype=torch.bool).expand_as(values)
    paths = [
        _Path(model, baseline.to(row), row, mask, int(label), batch_size)
        for row, mask, label in zip(values, present, target, strict=True)
    ]
    was_training = model.training
    model.eval()
    try:
        rows = [_explain_one(path, n_steps, max_depth, rtol) for path in paths]
    finally:
        model.train(was_training)
    attributions = np.stack([row[0] for row in rows]) if rows else np.zeros(values.shape)
    return attributions, np.array([row[1] for row in rows], dtype=np.float64)


def _explain_one(
    path: _Path, n_steps: int, max_depth: int, rtol: float
) -> tuple[np.ndarray, float]:
    """Attributions ``(G,)`` and convergence delta of one sample, by adaptive quadrature."""
    lo = torch.arange(n_steps, dtype=torch.float64) / n_steps
    hi = lo + 1.0 / n_steps
    f_lo, f_hi = path.log_proba(lo), path.log_proba(hi)
    budget = rtol * abs(float(f_hi[-1] - f_lo[0])) + _ATOL  # allowed |gap| over [0, 1]
    total = torch.zeros(path.diff.shape, dtype=torch.float64)
    for depth in range(max_depth + 1):
        mid = (lo + hi) / 2
        parts = path.attributions(mid) * (hi - lo)[:, None]  # (K, G)
        gap = (parts.sum(dim=1) - (f_hi - f_lo)).abs()
        done = (gap <= budget * (hi - lo)) | (depth == max_depth)
        total += parts[done].sum(dim=0)
        lo, hi, f_lo, f_hi, mid = lo[~done], hi[~done], f_lo[~done], f_hi[~done], mid[~done]
        if len(lo) == 0:
            break
        f_mid = path.log_proba(mid)
        lo, hi = torch.cat([lo, mid]), torch.cat([mid, hi])
        f_lo, f_hi = torch.cat([f_lo, f_mid]), torch.cat([f_mid, f_hi])
    ends = path.log_proba(torch.tensor([0.0, 1.0], dtype=torch.float64))
    delta = float(total.sum() - (ends[1] - ends[0]))
    return total.numpy(), delta


_ATOL = 1e-4  # absolute part of the per-sample completeness budget (log-probability units)


class _Path:
    """The straight path from the baseline to one sample, and the model along it."""

    def __init__(self, model, baseline, sample, present, target, batch_size) -> None:
        self.model, self.baseline, self.present = model, baseline, present
        self.diff = torch.where(present, sample - baseline, torch.zeros_like(sample))  # (G,)
        self.target, self.batch_size = target, batch_size

    def _points(self, alphas: torch.Tensor) -> torch.Tensor:
        alphas = alphas.to(device=self.diff.device, dtype=self.diff.dtype)
        return self.baseline + alphas[:, None] * self.diff  # (K, G)

    def log_proba(self, alphas: torch.Tensor) -> torch.Tensor:
        """Target log-probability ``(K,)`` (float64, CPU) at the path points ``alphas``."""
        with torch.no_grad():
            chunks = [
                self._log_proba(self._points(alphas[i : i + self.batch_size]))
                for i in range(0, len(alphas), self.batch_size)
            ]
        return torch.cat(chunks).double().cpu()

    def attributions(self, alphas: torch.Tensor) -> torch.Tensor:
        """``diff ⊙ ∇F`` ``(K, G)`` (float64, CPU) at the path points ``alphas``."""
        chunks = []
        for i in range(0, len(alphas), self.batch_size):
            points = self._points(alphas[i : i + self.batch_size]).requires_grad_(True)
            with torch.enable_grad():
                (gradient,) = torch.autograd.grad(self._log_proba(points).sum(), points)
            chunks.append((gradient * self.diff).double().cpu())
        return torch.cat(chunks)

    def _log_proba(self, points: torch.Tensor) -> torch.Tensor:
        logits = self.model(points, self.present)  # (K, C)
        return torch.log_softmax(logits.float(), dim=1)[:, self.target]


def write_attributions(adata, result: GeneAttributions, key_added: str) -> None:
    """Store attributions in an AnnData, scanpy style.

    Writes ``adata.obsm[key_added]`` (a samples × vocabulary-genes DataFrame of attributions),
    ``adata.uns[key_added]`` (``params``: method, baseline, n_steps; ``ranking``: the per-gene
    summary of :func:`rank_genes` as a DataFrame) and ``adata.obs[f"{key_added}_target"]`` (the
    class explained for each sample).

    Parameters
    ----------
    adata : AnnData
        The samples that were explained, in the same order.
    result : GeneAttributions
        What :meth:`~gtlomics.classifier.GTLClassifier.explain` returned for ``adata``.
    key_added : str
        Key under which the results are stored.
    """
    if adata.n_obs != len(result.sample_ids):
        raise ValueError(
            f"adata has {adata.n_obs} samples but the attributions {len(result.sample_ids)}; "
            "pass the AnnData that was explained."
        )
    frame = result.to_frame()
    frame.index = adata.obs_names
    adata.obsm[key_added] = frame
    adata.obs[f"{key_added}_target"] = pd.Categorical(result.target.astype(str))
    adata.uns[key_added] = {
        "params": {"method": result.method, "baseline": result.baseline, "n_steps": result.n_steps},
        "ranking": result.ranking(),
    }
