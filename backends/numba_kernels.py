"""numba-3pass, numba-3pass-reload, numba-2pass, numba-2pass-reload, numba-naive: compiled CPU softmax kernels.

The same algorithms as the NumPy backends, compiled with numba so that what
is timed is the algorithm (its passes over memory, its exps), not NumPy's
temporaries. All five share one vectorised exponential and one row driver
(backends/_numba_common.py), so they differ only where the algorithms do:

- ``numba-3pass``: max; sum of exp(x - max); write exp(x - max) / sum,
  recomputing the exp (three reads, one write).
- ``numba-3pass-reload``: max; store exp(x - max) in the output while
  summing; scale the output by the sum (two reads of x, then a read and a
  write of the output).
- ``numba-2pass``: the online softmax (Milakov & Gimelshein 2018): running
  max and rescaled sum in one pass over memory, a block at a time, then the
  write pass recomputing the exp (two reads, one write).
- ``numba-2pass-reload``: the online pass also stores exp(x - block max) in
  the output; the second pass rescales each block by exp(block max - max) /
  sum (one read of x, the output written, read and written: one exp per
  element, where the others compute two).
- ``numba-naive``: exp(x) / sum(exp(x)) unshifted, the negative control: it
  must overflow where backends/naive.py does.

Each has softmax, log_softmax, the two VJPs and the cross-entropy pair.
Half-precision inputs are computed in float32 and rounded back (as torch
does); bfloat16 arrives as an ml_dtypes array, which numba cannot take, so it
is converted outside the kernel. Any axis, any layout: the reduced axis is
moved last and the rows made contiguous outside the kernel.

numba is imported on first use only: ``softmax-bench list`` stays cheap, and
without numba these backends are listed as unavailable with the reason.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Optional

import numpy as np

from softmax_bench import DTYPES, IGNORE_INDEX, Backend
from softmax_bench.loss_options import OPTION_NAMES, reduce, row_cotangents

# backend name suffix -> (algorithm, exponentials per element of a softmax forward, description).
# The count is the compute side of the roofline: 3pass recomputes the exp in its
# write pass (2); 3pass-reload stores it in the output, then rescales (1); 2pass's
# online pass computes one per element (plus a per-block rescale) and its write
# pass recomputes (2); 2pass-reload stores exp(x - block max) and rescales per
# block (1); naive computes exp(x) once (1).
ALGORITHMS = {
    "3pass": ("THREE_PASS", 2, "max; sum of exp(x - max); write exp(x - max) / sum recomputing exp (numba, vectorised exp)"),
    "3pass-reload": ("THREE_PASS_RELOAD", 1, "max; store exp(x - max) and sum; scale by 1 / sum (numba, vectorised exp)"),
    "2pass": ("TWO_PASS", 2, "online max and rescaled sum in one pass (Milakov-Gimelshein, a block at a time), then write exp / sum (numba)"),
    "2pass-reload": ("TWO_PASS_RELOAD", 1, "online pass storing exp(x - block max); then rescale each block by exp(block max - max) / sum (numba)"),
    "naive": ("NAIVE", 1, "exp(x) / sum(exp(x)) unshifted, compiled: the negative control (numba)"),
}


# The algorithms whose cross-entropy computes the loss options (in the passes they make; the
# reloading forms would store exps of z, the naive one is a negative control): see drive_options.
WITH_LOSS_OPTIONS = ("3pass", "2pass")


@functools.lru_cache(maxsize=None)
def _kernels():
    """The compiled kernels' module, imported (and numba with it) on first use."""
    from . import _numba_common

    return _numba_common


@functools.lru_cache(maxsize=None)
def available(device: str = "cpu") -> Optional[str]:
    """None when numba imports, else why these backends cannot run (one line).

    Importing is the only honest test (numba installed against another NumPy
    fails at import); it runs once per process.
    """
    try:
        import numba  # noqa: F401
    except ImportError:
        return "numba is not installed (pip install 'softmax-bench[numba]')"
    except Exception as exc:  # e.g. a numba built for another NumPy
        return f"numba does not import: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _working_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for half precision (computed in float32, as torch does), else the dtype itself."""
    return np.dtype(np.float32) if dtype.itemsize < 4 else dtype


def _naive_limits(dtype: np.dtype) -> Optional[tuple[float, float]]:
    """(overflow, underflow) of an exp computed in ``dtype``: from about max + half an ULP
    it rounds to inf, up to half the smallest subnormal to 0. For float32 and
    float64 the kernel's exp is already in the input's own precision."""
    if dtype.itemsize >= 4:
        return None  # drive's default: (inf, 0)
    import ml_dtypes

    info = ml_dtypes.finfo(dtype)
    top = float(info.max) * (1 + float(info.eps) / 4)
    return (top, float(info.smallest_subnormal) / 2)


def _to_rows(x: np.ndarray, axis: int):
    """x as a C-contiguous (rows, n) array of the working dtype, and how to put a result back."""
    if x.ndim == 2 and axis in (-1, 1) and x.dtype.itemsize >= 4 and x.flags.c_contiguous and x.flags.aligned:
        return x, lambda out: out  # the common case, as it comes: no moving, no copying
    moved = np.moveaxis(x, axis, -1)
    n = moved.shape[-1] if moved.ndim else 1
    rows = int(np.prod(moved.shape[:-1], dtype=np.int64))
    flat = np.ascontiguousarray(moved.reshape(rows, n).astype(_working_dtype(x.dtype), copy=False))

    def back(out: np.ndarray) -> np.ndarray:
        """A (rows, n) result in x's shape, axis and dtype."""
        return np.moveaxis(out.reshape(moved.shape), -1, axis).astype(x.dtype, copy=False)

    return flat, back


class _Ops:
    """The six operations of one algorithm. ``exp`` (dtype name -> ExpParams)
    chooses the exponential; None is the shipped one, compiled into the driver."""

    def __init__(self, algorithm: str, exp: Optional[Callable[[str], Any]] = None,
                 split: Optional[Callable[[], Any]] = None):
        """``algorithm`` names one of _numba_common's algorithm constants; ``split`` makes
        the compiled row splitter (None: the shipped one), asked once, on first use."""
        self.algorithm = algorithm
        self.exp = exp
        self.make_split = split
        self.split = None

    def _run(self, op: str, x: np.ndarray, **kw):
        """Run ``op`` (a _numba_common constant's name) on (rows, n) ``x`` through the row driver."""
        k = _kernels()
        # (dtype.name alone costs a microsecond: only asked for another exponential)
        params = None if self.exp is None else self.exp(x.dtype.name)
        if self.make_split is not None and self.split is None:
            self.split = self.make_split()
        return k.drive(getattr(k, op), getattr(k, self.algorithm), x, params=params, split=self.split, **kw)

    def softmax(self, x, axis=-1):
        """softmax along ``axis``."""
        rows, back = _to_rows(x, axis)
        return back(self._run("SOFTMAX", rows, limits=_naive_limits(x.dtype)))

    def log_softmax(self, x, axis=-1):
        """log_softmax along ``axis``: (x - max) - log(sum)."""
        rows, back = _to_rows(x, axis)
        return back(self._run("LOG_SOFTMAX", rows, limits=_naive_limits(x.dtype)))

    def softmax_vjp(self, y, dy, axis=-1):
        """dx = y * (dy - sum(dy * y)), y the softmax output."""
        rows, back = _to_rows(y, axis)
        d, _ = _to_rows(dy, axis)
        return back(self._run("SOFTMAX_VJP", rows, b=d))

    def log_softmax_vjp(self, y, dy, axis=-1):
        """dx = dy - exp(y) * sum(dy), y the log_softmax output."""
        rows, back = _to_rows(y, axis)
        d, _ = _to_rows(dy, axis)
        return back(self._run("LOG_SOFTMAX_VJP", rows, b=d))

    def _ce(self, logits, target, dloss, ignore_index, grad):
        """Shared body of the two cross-entropy entry points: classes on the last axis."""
        rows, back = _to_rows(logits, -1)
        t = np.ascontiguousarray(np.asarray(target).reshape(-1), dtype=np.int64)
        if t.shape[0] != rows.shape[0]:
            raise ValueError(f"target has {t.shape[0]} entries for {rows.shape[0]} rows of logits")
        bad = (t != ignore_index) & ((t < 0) | (t >= rows.shape[1]))
        if bad.any():
            raise ValueError(f"target {int(t[bad][0])} out of range [0, {rows.shape[1]}) (ignore_index={ignore_index})")
        w = np.ones(t.shape[0], rows.dtype) if dloss is None else np.ascontiguousarray(np.asarray(dloss).reshape(-1), dtype=rows.dtype)
        out = None if grad else np.empty((rows.shape[0], 0), rows.dtype)  # the forward writes no gradient
        loss, dlogits = self._run("CROSS_ENTROPY_GRAD" if grad else "CROSS_ENTROPY", rows, target=t, dloss=w,
                                  ignore_index=ignore_index, out=out, limits=_naive_limits(logits.dtype))
        loss = loss.reshape(logits.shape[:-1]).astype(logits.dtype, copy=False)
        return (loss, back(dlogits)) if grad else loss

    def _ce_options(self, logits, target, dloss, ignore_index, options, grad):
        """The cross-entropy under loss ``options`` (softmax_bench.loss_options), through drive_options."""
        k = _kernels()
        rows, back = _to_rows(logits, -1)
        n = rows.shape[1]
        t = np.ascontiguousarray(np.asarray(target).reshape(-1), dtype=np.int64)
        if options.class_weight is not None and len(options.class_weight) != n:
            raise ValueError(f"class_weight has {len(options.class_weight)} entries for {n} classes")
        w = np.zeros(0, rows.dtype) if options.class_weight is None else np.asarray(options.class_weight, rows.dtype)
        w_sum = n if options.class_weight is None else float(np.sum(w, dtype=np.float64))
        d = row_cotangents(t, options, dloss, ignore_index, rows.dtype)
        params = None if self.exp is None else self.exp(rows.dtype.name)
        loss, dlogits = k.drive_options(getattr(k, self.algorithm), grad, rows, t, d, ignore_index, w, w_sum,
                                        options.label_smoothing, options.z_loss, options.softcap or 0.0,
                                        options.temperature, params)
        loss = reduce(loss, t, options, ignore_index).astype(logits.dtype, copy=False)
        return (loss, back(dlogits)) if grad else loss

    def cross_entropy(self, logits, target, ignore_index=IGNORE_INDEX, options=None):
        """Per-row loss logsumexp(logits) - logits[target] (0 where target == ignore_index)."""
        if options is not None:
            return self._ce_options(logits, target, None, ignore_index, options, grad=False)
        return self._ce(logits, target, None, ignore_index, grad=False)

    def cross_entropy_fwd_bwd(self, logits, target, dloss, ignore_index=IGNORE_INDEX, options=None):
        """(loss, dlogits) with dlogits = dloss[:, None] * (softmax - onehot(target))."""
        if options is not None:
            return self._ce_options(logits, target, dloss, ignore_index, options, grad=True)
        return self._ce(logits, target, dloss, ignore_index, grad=True)


def make_backends(prefix: str = "numba", exp: Optional[Callable[[str], Any]] = None,
                  split: Optional[Callable[[], Any]] = None) -> list[Backend]:
    """The five backends, named ``{prefix}-{algorithm}``, computing with the
    exponential ``exp(dtype name)`` gives (an ``_numba_common.ExpParams``;
    default: the shipped one). tests/plugins/numba_short_poly.py gives one a
    polynomial degree short, the planted bug the suite must catch. ``split``
    (called lazily, it compiles) gives the row splitter; tests/plugins/
    numba_split_merge.py plants a flawed segment merge through it.
    """
    made = []
    for suffix, (algorithm, exps, description) in ALGORITHMS.items():
        ops = _Ops(algorithm, exp, split)
        made.append(Backend(
            name=f"{prefix}-{suffix}", library="numpy", devices=("cpu",), dtypes=DTYPES,
            softmax=ops.softmax, log_softmax=ops.log_softmax,
            softmax_vjp=ops.softmax_vjp, log_softmax_vjp=ops.log_softmax_vjp,
            cross_entropy=ops.cross_entropy, cross_entropy_fwd_bwd=ops.cross_entropy_fwd_bwd,
            available=available, threads=_threads, release=_release, description=description,
            exps_per_element={("softmax", "fwd"): exps}, exp=functools.partial(_inlined_exp, exp),
            loss_options=OPTION_NAMES if suffix in WITH_LOSS_OPTIONS else (),
        ))
    return made


def _inlined_exp(exp: Optional[Callable[[str], Any]], x: np.ndarray, out: np.ndarray) -> None:
    """The vectorised exponential the kernels inline (``exp`` chooses it, as in make_backends), over x <= 0."""
    k = _kernels()
    params = k.exp_params(x.dtype.name) if exp is None else exp(x.dtype.name)
    k.exp_shifted_array(x, out, params.constants, params.poly)


def _release() -> None:
    """Drop the output buffers the kernels keep for reuse (``_numba_common.OUTPUTS``),
    if the kernels were ever loaded."""
    kernels = sys.modules.get(f"{__package__}._numba_common")
    if kernels is not None:
        kernels.OUTPUTS.release()


def _threads() -> int:
    """The threads numba's parallel rows run on (``--threads`` sets them)."""
    import numba

    return int(numba.get_num_threads())


backends = make_backends()
