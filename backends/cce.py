"""Apple's Cut Cross-Entropy (``pip install cut-cross-entropy``; Wijmans et al. 2024), lazily imported.

- ``cce``: ``impl="cce"``, its Triton kernels (CUDA only). CCE's default
  ``filter_eps="high"`` skips gradient entries below a threshold: an accuracy
  trade the suite's exact check measures rather than assumes.
- ``cce-compile``: ``impl="torch_compile"``, its torch.compile path, which
  also runs on a CPU.

Gradients come from the engine's autodiff route with the per-row upstream ``dloss``
(``reduction="none"``). Unavailable, with the reason, when the package is
not installed.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Callable, Optional

from softmax_bench import Backend


def _loss(impl: str) -> Callable[..., Any]:
    # No bias argument: cut-cross-entropy's linear_cross_entropy takes none, so the
    # backends leave linear_cross_entropy_bias unset and bias cases are recorded n/a.
    def loss(hidden, weight, target, ignore_index=-100):
        from cut_cross_entropy import linear_cross_entropy

        return linear_cross_entropy(hidden, weight, target, ignore_index=ignore_index, reduction="none", impl=impl)
    return loss


def _softmax(x, axis=-1):
    import torch

    return torch.softmax(x, dim=axis)


def _unavailable(triton_kernels: bool) -> Callable[[str], Optional[str]]:
    def why(device: str) -> Optional[str]:
        if importlib.util.find_spec("cut_cross_entropy") is None:
            return "cut-cross-entropy not installed (pip install cut-cross-entropy)"
        if triton_kernels and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
            return "TRITON_INTERPRET is set: kernels would run in the CPU interpreter"
        return None
    return why


backends = [
    Backend(name="cce", library="torch", devices=("cuda",), dtypes=("float32", "bfloat16", "float16"),
            softmax=_softmax, linear_cross_entropy=_loss("cce"),
            available=_unavailable(True), description="Cut Cross-Entropy, Triton kernels (impl='cce')"),
    Backend(name="cce-compile", library="torch", devices=("cpu", "cuda"), dtypes=("float32", "bfloat16"),
            softmax=_softmax, linear_cross_entropy=_loss("torch_compile"),
            available=_unavailable(False), description="Cut Cross-Entropy, torch.compile path (impl='torch_compile')"),
]
