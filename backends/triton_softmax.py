"""triton and triton-l2: Triton kernels on CUDA, fused for rows that fit on chip, two-pass online beyond.

Rows of up to ``FUSED_MAX`` (32768) elements are read once and written once
by one program holding the whole row; wider rows take a two-pass online
kernel (running max and rescaled sum, then the write pass). Both accumulate
in float32. See ``_triton_kernels`` for the kernels and their -inf handling.

``triton-l2`` is the same kernels with wide rows taken by a few programs,
each looping over rows (``_triton_kernels.l2_programs``): an experiment for
the GPU run to measure against ``triton``.

Registered for CUDA only. The tests run the same kernels under
``TRITON_INTERPRET=1`` on CPU tensors, in a subprocess; an interpreted variant
is never registered as a benchmark, and this backend refuses to run when the
variable is set (it would time the interpreter). Inputs along another axis, or
strided, are made contiguous first; that copy is part of the call.
"""

from __future__ import annotations

import importlib.util
import math
import os
from functools import lru_cache
from typing import Optional

from softmax_bench import Backend


def _rows_apply(x, axis: int, log: bool, l2: bool = False):
    from . import _triton_kernels as kernels

    moved = x.movedim(axis, -1)
    rows = moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1]).contiguous()
    programs = None
    if l2 and rows.is_cuda:
        l2_bytes, sms = _device(rows.device.index or 0)
        programs = kernels.l2_programs(rows.shape[0], max(rows.shape[1], 1), rows.element_size(), l2_bytes, sms)
    return kernels.softmax_rows(rows, log=log, programs=programs).reshape(moved.shape).movedim(-1, axis)


@lru_cache(maxsize=None)
def _device(index: int) -> tuple[int, int]:
    """(L2 bytes, multiprocessors) of a CUDA device."""
    import torch

    props = torch.cuda.get_device_properties(index)
    return int(getattr(props, "L2_cache_size", 0) or 50 * 2**20), int(props.multi_processor_count)


def softmax(x, axis=-1):
    return _rows_apply(x, axis, log=False)


def log_softmax(x, axis=-1):
    return _rows_apply(x, axis, log=True)


def unavailable(device: str) -> Optional[str]:
    """Why the kernels cannot run here (torch and its CUDA device are checked by the adapter)."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton)"
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return "TRITON_INTERPRET is set: kernels would run in the CPU interpreter"
    return None


def _l2(op: str):
    return lambda x, axis=-1: _rows_apply(x, axis, log=op == "log_softmax", l2=True)


backends = [Backend(
    name="triton",
    library="torch",
    devices=("cuda",),
    dtypes=("float32", "float16", "bfloat16"),
    softmax=softmax,
    log_softmax=log_softmax,
    available=unavailable,
    description="Triton: fused one-program-per-row kernel to 32768, two-pass online kernel beyond",
), Backend(
    name="triton-l2",
    library="torch",
    devices=("cuda",),
    dtypes=("float32", "float16", "bfloat16"),
    softmax=_l2("softmax"),
    log_softmax=_l2("log_softmax"),
    available=unavailable,
    description="triton's kernels; wide rows by few programs looping over rows, so pass 2 reads from L2",
)]
