"""liger: Liger-Kernel's Triton softmax and cross-entropy, a peer beside ours.

Liger-Kernel (``pip install liger-kernel``, pure Python over Triton) is what
many fine-tuning stacks patch into Hugging Face models. Two of its ops fit
this suite:

- softmax: ``LigerSoftmaxFunction`` (one block per row up to 65536 columns,
  a multi-block loop beyond), differentiated by its own backward.
- the loss: ``LigerCrossEntropyFunction`` with ``reduction="none"``. When
  the logits require grad, its forward kernel also computes the gradient and
  writes it over the logits (Liger's memory trick); backward only scales it
  by the upstream gradient. So its forward in a training step is a forward
  and a backward at once (QuACK's issue 9 compares it that way), and the
  backend declares ``overwrites_input`` for it: the timer refills the logits
  before every call and those records say ``in_place``. Its forward also reads the
  number of kept rows back to the host (``.item()``), a synchronisation that
  is part of its cost.

Liger's kernels are Triton, registered for CUDA only; the tests run them
under ``TRITON_INTERPRET=1`` on CPU tensors, as they do ours.
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import Optional

from softmax_bench import Backend

# LigerCrossEntropyFunction.apply's positional arguments after (logits, target, weight, ignore_index).
_CE_DEFAULTS = dict(lse_square_scale=0.0, label_smoothing=0.0, reduction="none", softcap=None,
                    return_z_loss=False, return_token_accuracy=False, return_predicted_tokens=False)


def _rows(x, axis):
    moved = x.movedim(axis, -1)
    return moved, moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])  # -1 is ambiguous with no elements


def softmax(x, axis=-1):
    from liger_kernel.ops.softmax import LigerSoftmaxFunction

    moved, rows = _rows(x, axis)
    return LigerSoftmaxFunction.apply(rows).reshape(moved.shape).movedim(-1, axis)


def cross_entropy(logits, target, ignore_index=-100):
    from liger_kernel.ops.cross_entropy import LigerCrossEntropyFunction

    return LigerCrossEntropyFunction.apply(logits, target, None, ignore_index, *_CE_DEFAULTS.values())[0]


def unavailable(device: str) -> Optional[str]:
    """Why Liger's kernels cannot run here (torch and its CUDA device are checked by the adapter)."""
    if importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel is not installed (pip install liger-kernel)"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton)"
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return "TRITON_INTERPRET is set: kernels would run in the CPU interpreter"
    return None


backend = Backend(
    name="liger",
    library="torch",
    devices=("cuda",),
    dtypes=("float32", "float16", "bfloat16"),
    softmax=softmax,
    cross_entropy=cross_entropy,
    overwrites_input=("cross_entropy",),
    available=unavailable,
    description="Liger-Kernel (Triton): LigerSoftmaxFunction; LigerCrossEntropyFunction, reduction='none', "
                "its forward writes the gradient over the logits",
)
