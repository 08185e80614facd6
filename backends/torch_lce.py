"""torch linear cross-entropy backends (issue 21): eager linear + cross_entropy, and torch's fused op.

- ``torch-lce-eager``: ``F.linear`` then ``F.cross_entropy`` (the unfused
  baseline: holds the N x V logits and their gradient);
- ``torch-lce``: ``F.linear_cross_entropy`` with ``options=None`` (torch's
  reference path);
- ``torch-lce-chunked``: ``F.linear_cross_entropy`` with
  ``LinearCrossEntropyOptions()`` (the chunked path that never holds the logits).

Gradients come from the engine's autodiff route (autograd with the upstream ``dloss``), as a training step
gets them. torch is imported on first call, not at registration.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from softmax_bench import Backend


def _torch():
    import torch

    return torch


def _loss_fn(kind: str) -> Callable[..., Any]:
    def loss(hidden, weight, target, ignore_index=-100, bias=None):
        torch = _torch()
        F = torch.nn.functional
        if kind == "eager":
            return F.cross_entropy(F.linear(hidden, weight, bias), target, reduction="none", ignore_index=ignore_index)
        options = torch.nn.LinearCrossEntropyOptions() if kind == "chunked" else None
        return F.linear_cross_entropy(hidden, weight, target, linear_bias=bias, reduction="none",
                                      ignore_index=ignore_index, options=options)
    return loss


def _softmax(x, axis=-1):
    return _torch().softmax(x, dim=axis)


def _available(device: str) -> Optional[str]:
    try:
        torch = _torch()
    except ImportError as exc:
        return f"torch not installed ({exc})"
    if not hasattr(torch.nn.functional, "linear_cross_entropy"):
        return f"torch {torch.__version__} has no F.linear_cross_entropy (added in 2.13)"
    return None


def _make(name: str, kind: str, about: str) -> Backend:
    return Backend(name=name, library="torch", devices=("cpu", "cuda"),
                   dtypes=("float32", "float64", "bfloat16", "float16"),
                   softmax=_softmax, linear_cross_entropy=_loss_fn(kind), linear_cross_entropy_bias=True,
                   available=None if kind == "eager" else _available, description=about)


backends = [
    _make("torch-lce-eager", "eager", "F.linear then F.cross_entropy, autograd: the unfused baseline"),
    _make("torch-lce", "fused", "torch F.linear_cross_entropy, options=None (reference path)"),
    _make("torch-lce-chunked", "chunked", "torch F.linear_cross_entropy with LinearCrossEntropyOptions() (chunked)"),
]
