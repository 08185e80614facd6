"""Triton softmax kernels, for the ``triton`` backend (CUDA) and the tests (interpreter).

This module imports triton at the top, so only code that is about to launch a
kernel imports it. Two kernels, both one program per row, both accumulating in
float32 whatever the storage type:

- ``fused_kernel``: the whole row in registers (``BLOCK = next_power_of_2(n)``
  lanes, masked lanes read as -inf), so x is read once and y written once.
- ``online_kernel``: for rows wider than ``FUSED_MAX``. Pass 1 walks the row
  in ``CHUNK``-wide tiles keeping a running max m and a sum s rescaled when m
  grows (Milakov & Gimelshein 2018); pass 2 reads the row again and writes
  exp(x - m) / s. Two reads instead of a three-pass safe softmax's three.
  On the H200 it ran at 0.62 of the copy at 4096 x 128256, about what two
  reads and a write allow (2/3): with one program per row, about a thousand
  rows (half a GB) are in flight, so pass 2 reads from memory again. The
  ``triton-l2`` backend runs it with few programs, each looping over rows,
  so that pass 2 should find its row in the 60 MB L2: not yet measured.

Edge cases: an all -inf row gives NaN (like torch); a -inf prefix, in any
number of whole tiles, is exact because a running max that is still -inf is
shifted by 0, never by itself (exp(-inf - (-inf)) would be NaN); +inf or NaN
make the row NaN, as in torch and the NumPy ``online`` backend.

Accuracy note: for float32, Triton lowers ``tl.exp`` to ``ex2.approx`` of
x * log2(e) (seen in the sm_90 PTX), as in the Triton tutorial and Liger;
faster than CUDA's expf and a few ulp less exact for large |x - max|. The
correctness suite on a GPU records what that costs.

With ``TRITON_INTERPRET=1`` set before triton is imported, the same kernels
run on CPU tensors through NumPy: the tests check them that way, in a
subprocess, and compile them for sm_90/sm_80 with Triton's own compiler
(no GPU needed). That proves the arithmetic, the masks, the tiling and that
they build; it says nothing about speed, nor about the GPU's exp.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

FUSED_MAX = 32768  # widest row kept whole in registers (32768 fp32 = 128 KiB per program)
CHUNK = 4096  # tile width of the online kernel's passes


@triton.jit
def fused_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr, LOG: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n
    x = tl.load(x_ptr + row * n + cols, mask=mask, other=float("-inf")).to(tl.float32)
    z = x - tl.max(x, axis=0)  # all -inf: -inf - (-inf) = NaN, a NaN row like torch
    e = tl.exp(z)
    s = tl.sum(e, axis=0)
    if LOG:
        y = z - tl.log(s)
    else:
        y = e / s
    tl.store(y_ptr + row * n + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def safe_shift(m):
    """The shift for a running max: 0 while it is still -inf (nothing finite seen yet)."""
    return tl.where(m == float("-inf"), 0.0, m)


@triton.jit
def online_kernel(x_ptr, y_ptr, n, rows, CHUNK: tl.constexpr, LOG: tl.constexpr):
    # Program p takes rows p, p + G, p + 2G, ... for a grid of G programs: one row
    # each when G = rows (the default); fewer programs hold fewer rows in flight
    # (see softmax_rows' ``programs``).
    for row in range(tl.program_id(0), rows, tl.num_programs(0)):
        x_row = x_ptr + tl.cast(row, tl.int64) * n  # int64: 8192 x 262144 passes 2^31
        y_row = y_ptr + tl.cast(row, tl.int64) * n
        cols = tl.arange(0, CHUNK)
        # Pass 1: running max m and s = sum of exp(x - shift(m)) over the tiles seen.
        m = tl.full((), float("-inf"), tl.float32)
        s = tl.zeros((), tl.float32)
        for start in range(0, n, CHUNK):
            x = tl.load(x_row + start + cols, mask=start + cols < n, other=float("-inf")).to(tl.float32)
            m_new = tl.maximum(m, tl.max(x, axis=0))
            shift = safe_shift(m_new)
            s = s * tl.exp(m - shift) + tl.sum(tl.exp(x - shift), axis=0)
            m = m_new
        # Pass 2: write. An all -inf row has shift 0 and s = 0: 0 / 0 = NaN, like torch.
        # log_softmax is (x - m) - log s: rounding m + log s first would cost |m| ulps.
        shift = safe_shift(m)
        log_s = tl.log(s)
        for start in range(0, n, CHUNK):
            mask = start + cols < n
            x = tl.load(x_row + start + cols, mask=mask, other=float("-inf")).to(tl.float32)
            if LOG:
                y = (x - shift) - log_s
            else:
                y = tl.exp(x - shift) / s
            tl.store(y_row + start + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def num_warps(width: int) -> int:
    """Warps per program: more for wider tiles, as in the Triton fused-softmax tutorial."""
    return 4 if width <= 1024 else 8 if width <= 4096 else 16


def softmax_rows(
    x: torch.Tensor,
    log: bool = False,
    fused_max: int = FUSED_MAX,
    chunk: int = CHUNK,
    fused=fused_kernel,
    online=online_kernel,
    programs: Optional[int] = None,
) -> torch.Tensor:
    """Softmax (or log_softmax) of each row of a contiguous 2-D tensor.

    Rows of at most ``fused_max`` elements take the fused kernel, wider ones
    the two-pass online kernel with ``chunk``-wide tiles (a power of two),
    one program per row, or ``programs`` programs each looping over rows
    (the ``triton-l2`` backend: few enough rows in flight that the second
    pass finds its row in L2).
    The tests lower ``fused_max`` and ``chunk`` to force the online path and
    many tiles on small rows, and pass deliberately broken kernels as
    ``fused``/``online`` to prove that their assertions can fail.
    """
    if x.ndim != 2 or not x.is_contiguous():
        raise ValueError("softmax_rows takes a contiguous 2-D tensor")
    rows, n = x.shape
    y = torch.empty_like(x)
    if y.numel() == 0:
        return y
    if n <= fused_max:
        block = triton.next_power_of_2(n)
        fused[(rows,)](x, y, n, BLOCK=block, LOG=log, num_warps=num_warps(block))
    else:
        grid = rows if programs is None else max(1, min(programs, rows))
        warps = num_warps(chunk) if programs is None else PERSISTENT_WARPS
        online[(grid,)](x, y, n, rows, CHUNK=chunk, LOG=log, num_warps=warps)
    return y


# Warps of a program that loops over rows: few programs, so each keeps more loads in flight.
PERSISTENT_WARPS = 16


def l2_programs(rows: int, n: int, itemsize: int, l2_bytes: int, sms: int) -> int:
    """Programs for the looping online kernel: as many rows in flight as fill half the L2
    (pass 2 then reads its row from L2, not memory), but at least one per two SMs."""
    return max(1, min(rows, max(sms // 2, l2_bytes // (2 * n * itemsize))))
