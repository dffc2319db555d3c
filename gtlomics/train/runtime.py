"""Small shared pieces of the training loops: seeds, optimisers, precision, clipping."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

__all__ = [
    "autocast_for",
    "child_rng",
    "child_seed",
    "full_precision",
    "make_optimizer",
    "optimizer_step",
    "resolve_device",
    "to_tensor",
]

OPTIMIZERS = ("adam", "adamw", "sgd")


def child_rng(seed: int, *key: int) -> np.random.Generator:
    """A numpy generator for the stream ``key`` below ``seed`` (``SeedSequence`` spawn keys).

    Streams are a pure function of ``(seed, key)``, so a resumed run redraws exactly what an
    uninterrupted run drew without saving any generator state.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def child_seed(seed: int, *key: int) -> int:
    """A 63-bit integer seed for a local ``torch.Generator``, derived like :func:`child_rng`."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1] >> 1)


def make_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[torch.Tensor],
    name: str,
    *,
    lr: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    """Build ``"adam"``, ``"adamw"`` or ``"sgd"`` (plain, no momentum) over ``params``."""
    params = list(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    parameters: Iterable[torch.Tensor],
    grad_clip: float | None,
) -> None:
    """Back-propagate ``loss`` and step ``optimizer``, the gradient norm of ``parameters`` first
    clipped at ``grad_clip`` (None: not clipped)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()


def autocast_for(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``enabled``; a disabled context (fp32) everywhere else."""
    on_cuda = device.type == "cuda"
    return torch.autocast(
        device_type="cuda" if on_cuda else "cpu",
        dtype=torch.bfloat16,
        enabled=enabled and on_cuda,
    )


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as ``torch.device`` takes it.

    Raises
    ------
    ValueError
        A CUDA device is asked for and CUDA is not available.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use device='cpu'.")
    return resolved


def to_tensor(values: np.ndarray | torch.Tensor, *, name: str = "values") -> torch.Tensor:
    """2-D float tensor on the caller's device: float64 is kept, anything else becomes float32."""
    tensor = torch.as_tensor(values)
    if tensor.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_genes), got shape {tuple(tensor.shape)}."
        )
    return tensor if tensor.dtype == torch.float64 else tensor.to(torch.float32)


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """Upcast half-precision (autocast) outputs to float32 for the loss; keep float32/64."""
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor
