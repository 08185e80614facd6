"""The exact reference: 200-bit (60-digit) arithmetic, rounded once.

The arithmetic is MPFR through gmpy2 when it is installed (correctly rounded
exp and log, about ten times faster than mpmath's Python layer) and mpmath
otherwise; both run at 200 bits and agree far below float64's last bit
(tests/test_reference.py checks that).

Inputs are float64 values (the backend's input after rounding to its dtype),
so they convert exactly. Every result comes back as a double-double pair
``(hi, lo)``: ``hi`` is the exact value rounded once to float64 and ``lo``
the rounded remainder, so an error ``y - exact`` can be formed as
``(y - hi) - lo`` without losing the last bits of float64 backends. ``lo`` is
only computed when asked for (``with_lo``): for float32 and narrower outputs
``hi`` alone is exact to far below their last bit. Rows whose softmax is
undefined (a NaN, a +inf, all -inf) come back as NaN.

Everything works on 2-D ``(rows, n)`` arrays; callers move the reduced axis
last. Exponentials are computed once per distinct value of a row, which makes
half-precision rows (few distinct values) and uniform rows cheap.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Callable, Optional

import numpy as np

PRECISION_BITS = 200

Pair = tuple[np.ndarray, np.ndarray]


class _Locked:
    """A context manager held under a lock."""

    def __init__(self, lock, inner):
        self.lock, self.inner = lock, inner

    def __enter__(self):
        self.lock.acquire()
        return self.inner.__enter__()

    def __exit__(self, *exc):
        try:
            return self.inner.__exit__(*exc)
        finally:
            self.lock.release()


class _Mpmath:
    name = "mpmath"

    def __init__(self):
        import mpmath

        self.mpf, self.exp, self.log, self.fsum = mpmath.mpf, mpmath.exp, mpmath.log, mpmath.fsum
        self._mpmath = mpmath
        self._lock = threading.RLock()

    def precision(self):
        # mpmath's precision is one global setting: threads (check --jobs) take turns.
        return _Locked(self._lock, self._mpmath.workprec(PRECISION_BITS))


class _Gmpy2:
    name = "gmpy2"

    def __init__(self):
        import gmpy2

        self.mpf, self.exp, self.log, self.fsum = gmpy2.mpfr, gmpy2.exp, gmpy2.log, gmpy2.fsum
        self._gmpy2 = gmpy2

    def precision(self):
        # gmpy2 contexts are per thread, so concurrent checks need no lock.
        return self._gmpy2.context(self._gmpy2.get_context(), precision=PRECISION_BITS)


def _default():
    with contextlib.suppress(ImportError):
        return _Gmpy2()
    return _Mpmath()


HP = _default()


def use(name: str) -> None:
    """Switch the arithmetic to "gmpy2" or "mpmath" (tests compare the two)."""
    global HP
    HP = _Gmpy2() if name == "gmpy2" else _Mpmath()


def arithmetic() -> str:
    """Which arithmetic the reference uses now."""
    return HP.name


def _split(values: list, with_lo: bool) -> Pair:
    """High-precision values -> (hi, lo): hi correctly rounded, lo the rounded remainder."""
    hi_list = [float(v) for v in values]
    hi = np.array(hi_list, dtype=np.float64)
    if not with_lo:
        return hi, np.zeros_like(hi)
    lo = np.array([float(v - h) if math.isfinite(h) else 0.0 for v, h in zip(values, hi_list)], dtype=np.float64)
    return hi, lo


def _defined(row: np.ndarray) -> bool:
    """Softmax of the row has one right answer: no NaN, no +inf, something finite."""
    return not (np.isnan(row).any() or np.isposinf(row).any() or not np.isfinite(row).any())


def _per_row(x: np.ndarray, with_lo: bool, compute: Callable[[np.ndarray, int], Optional[list]]) -> Pair:
    """Apply ``compute(row, i)`` (a list of high-precision values, or None if undefined) to each row."""
    hi = np.full(x.shape, np.nan)
    lo = np.zeros(x.shape)
    with HP.precision():
        for i, row in enumerate(x):
            values = compute(row, i)
            if values is not None:
                hi[i], lo[i] = _split(values, with_lo)
    return hi, lo


def _stats(row: np.ndarray):
    """For a defined row: per distinct value its shifted exponent z and exp(z), the inverse map, and s.

    Masked (-inf) values get z = None and exp = 0.
    """
    values, inverse = np.unique(row, return_inverse=True)
    finite = np.isfinite(values)
    m = HP.mpf(float(values[finite].max()))
    z = [HP.mpf(v) - m if ok else None for v, ok in zip(values.tolist(), finite.tolist())]
    e = [HP.exp(zk) if zk is not None else HP.mpf(0) for zk in z]
    counts = np.bincount(inverse.ravel(), minlength=len(values))
    s = HP.fsum(e) if counts.max() == 1 else HP.fsum([ek * int(c) for ek, c in zip(e, counts.tolist())])
    return z, e, inverse.ravel(), s


def _expand(unique_values: list, inverse: np.ndarray) -> list:
    return [unique_values[k] for k in inverse.tolist()]


def _softmax_row(row: np.ndarray) -> Optional[list]:
    if not _defined(row):
        return None
    _, e, inverse, s = _stats(row)
    return _expand([ek / s for ek in e], inverse)


def softmax(x: np.ndarray, with_lo: bool = True) -> Pair:
    """Exact softmax of each row of a 2-D float64 array."""
    return _per_row(x, with_lo, lambda row, i: _softmax_row(row))


def log_softmax(x: np.ndarray, with_lo: bool = True) -> Pair:
    """Exact log_softmax of each row; masked (-inf) entries are exactly -inf."""

    def compute(row, i):
        if not _defined(row):
            return None
        z, _, inverse, s = _stats(row)
        log_s = HP.log(s)
        return _expand([HP.mpf("-inf") if zk is None else zk - log_s for zk in z], inverse)

    return _per_row(x, with_lo, compute)


def _mp(values: np.ndarray) -> list:
    return [HP.mpf(v) for v in values.tolist()]


def _softmax_vjp_row(y: list, dy: list) -> list:
    g = HP.fsum([a * b for a, b in zip(y, dy)])
    return [a * (b - g) for a, b in zip(y, dy)]


def _log_softmax_vjp_row(p: list, dy: list) -> list:
    total = HP.fsum(dy)
    return [d - a * total for a, d in zip(p, dy)]


def softmax_vjp(y: np.ndarray, dy: np.ndarray, with_lo: bool = True) -> Pair:
    """dx = y * (dy - sum(dy * y)) for the given (already rounded) softmax output y."""
    return _per_row(y, with_lo, lambda yr, i: _softmax_vjp_row(_mp(yr), _mp(dy[i])))


def log_softmax_vjp(z: np.ndarray, dy: np.ndarray, with_lo: bool = True) -> Pair:
    """dx = dy - exp(z) * sum(dy) for the given (already rounded) log_softmax output z."""
    return _per_row(z, with_lo, lambda zr, i: _log_softmax_vjp_row([HP.exp(v) for v in _mp(zr)], _mp(dy[i])))


def _at_x(x: np.ndarray, dy: np.ndarray, with_lo: bool, vjp_row) -> Pair:
    """A VJP at x, from the exact softmax of each row."""

    def compute(row, i):
        y = _softmax_row(row)
        return None if y is None else vjp_row(y, _mp(dy[i]))

    return _per_row(x, with_lo, compute)


def softmax_grad(x: np.ndarray, dy: np.ndarray, with_lo: bool = True) -> Pair:
    """The softmax VJP at x: y(x) * (dy - sum(dy * y(x))), y exact."""
    return _at_x(x, dy, with_lo, _softmax_vjp_row)


def log_softmax_grad(x: np.ndarray, dy: np.ndarray, with_lo: bool = True) -> Pair:
    """The log_softmax VJP at x: dy - y(x) * sum(dy); with dy = -onehot, the cross-entropy gradient."""
    return _at_x(x, dy, with_lo, _log_softmax_vjp_row)
