"""Deliberately broken Triton kernels: the negative controls of test_triton_kernels.py.

Each must fail a check that the real kernels in _triton_kernels pass.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def no_shift_fused(x_ptr, y_ptr, n, BLOCK: tl.constexpr, LOG: tl.constexpr):
    """Planted bug: exp(x) / sum(exp(x)), no max shift (overflows above 88.7)."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n
    x = tl.load(x_ptr + row * n + cols, mask=mask, other=float("-inf")).to(tl.float32)
    e = tl.exp(x)
    s = tl.sum(e, axis=0)
    if LOG:
        y = tl.log(e / s)
    else:
        y = e / s
    tl.store(y_ptr + row * n + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def no_guard_online(x_ptr, y_ptr, n, rows, CHUNK: tl.constexpr, LOG: tl.constexpr):
    """Planted bug: the online kernel shifting by the raw running max (-inf - (-inf) = NaN)."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, CHUNK)
    m = tl.full((), float("-inf"), tl.float32)
    s = tl.zeros((), tl.float32)
    for start in range(0, n, CHUNK):
        x = tl.load(x_ptr + row * n + start + cols, mask=start + cols < n, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    for start in range(0, n, CHUNK):
        mask = start + cols < n
        x = tl.load(x_ptr + row * n + start + cols, mask=mask, other=float("-inf")).to(tl.float32)
        if LOG:
            y = (x - m) - tl.log(s)
        else:
            y = tl.exp(x - m) / s
        tl.store(y_ptr + row * n + start + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def no_loop_online(x_ptr, y_ptr, n, rows, CHUNK: tl.constexpr, LOG: tl.constexpr):
    """Planted bug: the online kernel taking only its own row, as if there were a program per row:
    with fewer programs than rows, the other rows are never written."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, CHUNK)
    m = tl.full((), float("-inf"), tl.float32)
    s = tl.zeros((), tl.float32)
    for start in range(0, n, CHUNK):
        x = tl.load(x_ptr + row * n + start + cols, mask=start + cols < n, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - shift) + tl.sum(tl.exp(x - shift), axis=0)
        m = m_new
    shift = tl.where(m == float("-inf"), 0.0, m)
    for start in range(0, n, CHUNK):
        mask = start + cols < n
        x = tl.load(x_ptr + row * n + start + cols, mask=mask, other=float("-inf")).to(tl.float32)
        if LOG:
            y = (x - shift) - tl.log(s)
        else:
            y = tl.exp(x - shift) / s
        tl.store(y_ptr + row * n + start + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def runtime_arange_fused(x_ptr, y_ptr, n, BLOCK: tl.constexpr, LOG: tl.constexpr):
    """Planted bug: a block sized by a run-time value, which Triton cannot compile."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, n)
    x = tl.load(x_ptr + row * n + cols).to(tl.float32)
    e = tl.exp(x - tl.max(x, axis=0))
    tl.store(y_ptr + row * n + cols, (e / tl.sum(e, axis=0)).to(y_ptr.dtype.element_ty))
