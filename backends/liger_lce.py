"""Liger-Kernel's fused linear cross-entropy (``pip install liger-kernel``), CUDA only, lazily imported.

``LigerFusedLinearCrossEntropyLoss`` chunks over tokens and computes the
gradients inside its forward; its backward only scales them by the upstream
gradient, which must then be one number. So the forward uses
``reduction="none"``; the training step uses ``reduction="sum"`` with a
uniform ``dloss`` (a mean over rows is such a step). A per-row ``dloss``
that is not uniform raises: a recorded failure, which is what Liger offers.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Optional

from softmax_bench import Backend


def _module(reduction: str, ignore_index: int):
    from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

    return LigerFusedLinearCrossEntropyLoss(ignore_index=ignore_index, reduction=reduction)


def linear_cross_entropy(hidden, weight, target, ignore_index=-100, bias=None):
    """Per-row loss (reduction "none")."""
    return _module("none", ignore_index)(weight, hidden, target, bias)


def linear_cross_entropy_fwd_bwd(hidden, weight, target, dloss, ignore_index=-100, bias=None):
    """(loss, dhidden, dweight[, dbias]) for a uniform upstream gradient; the per-row loss from a separate forward."""
    import torch

    scale = dloss.reshape(-1)[:1]
    if dloss.numel() and not torch.equal(dloss, scale.expand_as(dloss)):
        raise NotImplementedError("Liger's fused backward takes one upstream gradient for all rows; dloss varies per row")
    with torch.enable_grad():
        h = hidden.detach().requires_grad_(True)
        w = weight.detach().requires_grad_(True)
        b = None if bias is None else bias.detach().requires_grad_(True)
        total = _module("sum", ignore_index)(w, h, target, b)
        total.backward(scale.reshape(()))
    # Liger's sum gives no per-row loss: one more forward (counted in the time) gives it.
    loss = linear_cross_entropy(hidden, weight, target, ignore_index, bias)
    return (loss, h.grad, w.grad) + (() if b is None else (b.grad,))


def _softmax(x, axis=-1):
    import torch

    return torch.softmax(x, dim=axis)


def unavailable(device: str) -> Optional[str]:
    if importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel not installed (pip install liger-kernel)"
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return "TRITON_INTERPRET is set: kernels would run in the CPU interpreter"
    return None


backend = Backend(name="liger-lce", library="torch", devices=("cuda",), dtypes=("float32", "bfloat16"),
                  softmax=_softmax, linear_cross_entropy=linear_cross_entropy,
                  linear_cross_entropy_fwd_bwd=linear_cross_entropy_fwd_bwd, linear_cross_entropy_bias=True,
                  available=unavailable,
                  description="Liger-Kernel LigerFusedLinearCrossEntropyLoss (Triton, chunks over tokens)")
