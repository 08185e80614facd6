"""Compiled CPU softmax kernels (numba): one exponential, one row driver, five algorithms.

``backends/numba_kernels.py`` imports this module lazily, the first time a
kernel runs, so listing backends never pays for numba. Read it top to bottom:

1. **The exponential** ``_exp``: Cody-Waite range reduction, a polynomial, and
   a scale by 2^n built from bits (as XNNPACK does), so that LLVM vectorises
   it; ``math.exp`` would be a scalar libm call per element. The kernels'
   hot loops call ``_exp_shifted``, the same function for x <= 0 (every
   x - max is) with a cheaper 2^n: the exponential bounds these kernels,
   not memory.
2. **Lane reductions**: a row's max and sums are kept in ``LANES``
   independent accumulators on the stack and merged at the end. LLVM may
   only vectorise a floating-point reduction if it may reassociate it, and
   reassociation is not allowed here (it would also reorder the range
   reduction and the ``(x - max) - log(sum)`` of log_softmax); independent
   lanes give the same vector code with a fixed, documented summation order.
   As in max-shift (Blanchard, Higham & Higham 2021), the terms exactly 1
   (the max's own exp(0)) are counted apart from the rest of the sum, so a
   row dominated by its max keeps that rest to full precision.
3. **Per-row algorithms**: how each algorithm obtains the shift and the sum of
   a row (three-pass, three-pass reloading, two-pass online, two-pass
   reloading, naive), and the write passes.
4. **The row driver** ``_drive_threads``: the one ``prange`` over rows,
   dispatching on the operation and the algorithm once per row (and
   ``_drive_serial``, the same on one thread, for small inputs), entered
   through ``_drive_shipped``, which has the exponential's constants
   compiled in.

Everything takes C-contiguous (rows, n) arrays of float32 or float64 (the
caller makes them), so each entry point compiles twice at most; ``cache=True``
keeps those compilations on disk between processes, in the user's cache
directory (``CACHE_DIR``: ``$XDG_CACHE_HOME/softmax-bench/numba``, or
``$NUMBA_CACHE_DIR`` where the user set it), never inside the installed
package, whose directory an uninstall must be able to remove (issue #26).
Where no cache directory can be written, the kernels compile in memory, for
the process only, and a warning says so once.

The polynomial is an argument, not a constant: ``ExpParams`` carries it, and
a test builds the kernels with a polynomial one degree short to prove the
correctness suite notices (tests/test_numba_kernels.py).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
import warnings
import weakref
from functools import lru_cache
from typing import NamedTuple, Optional

import numpy as np
from llvmlite import ir
from numba import __version__ as numba_version
from numba import get_num_threads as numba_threads
from numba import njit, prange, types
from numba.core import caching, cgutils
from numba.core import config as numba_config
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array, populate_array


# --------------------------------------------------------------------------- the on-disk cache
#
# numba's default for cache=True is the source's own __pycache__ (its
# InTreeCacheLocator), here site-packages/softmax_bench/backends/__pycache__:
# pip's uninstall leaves those files, and with them a softmax_bench directory
# without __init__.py that shadows a later editable install (issue #26); a
# read-only site-packages holds no cache at all. So the functions of this
# package are cached under CACHE_DIR, through a locator of their own that
# numba asks first. Other code's numba functions are left as numba places them.


def _default_cache_root() -> str:
    """The per-user cache directory for this package's compiled kernels:
    $XDG_CACHE_HOME/softmax-bench/numba (~/.cache/softmax-bench/numba when
    XDG_CACHE_HOME is unset or not absolute, as the XDG spec says), the
    platform's own cache directory on Windows and macOS."""
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        base = os.environ["LOCALAPPDATA"]
    elif sys.platform == "darwin":
        base = os.path.join(os.path.expanduser("~"), "Library", "Caches")
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "softmax-bench", "numba")


def _cache_dir() -> Optional[str]:
    """CACHE_DIR: $NUMBA_CACHE_DIR where the user set it (numba's documented
    setting, laid out as numba lays it out), else _default_cache_root();
    None, after one warning, where that directory cannot be created or
    written (or this numba has no cache locators to extend): then the
    kernels compile in memory for this process."""
    root = os.path.abspath(numba_config.CACHE_DIR or _default_cache_root())
    impl = _cache_impl()
    if not (hasattr(caching, "_CacheLocator") and hasattr(caching, "_SourceFileBackedLocatorMixin")
            and isinstance(getattr(impl, "_locator_classes", None), list)):
        why = f"numba {numba_version} has no cache locators to extend"
    else:
        try:
            os.makedirs(root, exist_ok=True)
            tempfile.TemporaryFile(dir=root).close()  # as numba checks a cache directory
            return root
        except OSError as exc:
            why = f"{root} is not writable ({type(exc).__name__}: {exc})"
    warnings.warn(f"softmax-bench: no on-disk cache for the numba kernels: {why}; they compile in memory, "
                  "for this process only (set NUMBA_CACHE_DIR to a writable directory to keep them between runs)",
                  RuntimeWarning, stacklevel=2)
    return None


def _cache_impl():
    """numba's CacheImpl (_CacheImpl in older numba), whose
    _locator_classes numba tries in order for every cached function."""
    return getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)


CACHE_DIR = _cache_dir()
_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))

if CACHE_DIR is not None:

    class _UserCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
        """numba's cache locator for the functions of this package's own files:
        CACHE_DIR/<directory name>_<hash of its path>, as numba's
        UserProvidedCacheLocator lays out NUMBA_CACHE_DIR, so two installs
        (or a checkout and an install) never share entries. The source stamp
        (numba's own, from the file) still voids an entry when the file changes."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(CACHE_DIR, self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            """A locator for functions defined in this package's directory, else None (numba's own choice)."""
            if os.path.dirname(os.path.realpath(py_file)) != _PACKAGE_DIR:
                return None
            return super().from_function(py_func, py_file)

    # First, so numba's in-tree locator never sees our functions (as long as
    # CACHE_DIR, checked above, stays writable: where it stops being, numba
    # falls back to its own choice); a copy left by an earlier import of this
    # module (a reload) is replaced. numba's NUMBA_CACHE_LOCATOR_CLASSES
    # (newer versions), where a user sets it, replaces the whole list.
    _locators = _cache_impl()._locator_classes
    _locators[:] = [c for c in _locators if c.__qualname__ != _UserCacheLocator.__qualname__
                    or c.__module__ != _UserCacheLocator.__module__]
    _locators.insert(0, _UserCacheLocator)


# Only "contract" (fuse a*b + c into one FMA, which rounds once instead of
# twice). Not "reassoc": it would let LLVM rewrite (x - n*hi) - n*lo, the
# two-constant range reduction, and (x - max) - log(sum). Not "nnan"/"ninf":
# the suite feeds -inf, +inf and NaN and the kernels rely on IEEE semantics
# for them. Not "arcp": where a reciprocal is wanted it is written out.
FASTMATH = {"contract"}


def _jit(**options):
    """numba.njit with this module's floating-point model.

    ``error_model="numpy"``: x / 0 is inf or NaN as IEEE says, not Python's
    ZeroDivisionError (a fully masked row divides 0 by 0 and must give NaN),
    and no zero test is compiled into every division.

    ``cache=True`` caches under CACHE_DIR; without one (not writable), it is
    dropped: the function compiles in memory.
    """
    if CACHE_DIR is None:
        options.pop("cache", None)
    return njit(fastmath=FASTMATH, error_model="numpy", **options)

def _jit_named(qualname: str, **options):
    """_jit for a function a factory makes, under ``qualname``, which must be unique in this module.

    numba names a compiled function ``qualname$counter``, the counter being the compiling process's;
    the functions one factory makes share one qualname, so two entry points cached to disk by
    different processes (or one cached and one compiled here, as SPLIT_SOFTMAX is) can hold
    different helpers under one symbol, and the JIT links whichever loaded first (seen once: a 1.3%
    wrong loss). A qualname of its own per made function removes the clash.
    """

    def decorate(func):
        func.__qualname__ = qualname
        return _jit(**options)(func)

    return decorate


# Independent accumulators per row, on the stack. 64 is four AVX-512 vectors
# of float32: enough that LLVM keeps the lane loop a loop and vectorises it
# (numba runs LLVM without the SLP vectoriser, so 16 lanes unrolled in full
# would stay 16 scalar registers), few enough to merge cheaply.
LANES = 64
# Elements per block of the one-pass (online) reductions: a block of the row
# and of the output (4 KiB each in float32) stays in L1 between the block's
# max loop and its exp loop, so memory sees one read of the row. The running
# sum is rescaled once per block (one scalar exp per BLOCK elements). A
# trade, measured on the AMD EPYC VM: longer blocks pay the per-block work
# (lane set-up and merges, the rescale) less often, shorter ones read memory
# in smaller bursts between exp loops. Against 1024, 2048 was 10-15% faster
# with the rows in cache (1 x 32000, 4 x 256000 repeated) but 3-8% slower at
# 8 x 128256 cold; 4096 was 10-17% slower out of cache; 512 was slower.
BLOCK = 1024
# Elements per chunk of a lane sum: each chunk is summed in its own lanes and
# then added to the running totals (a two-level sum; see _lane_sum_of).
CHUNK = 4096

# Operations and algorithms the driver dispatches on (compile-time constants).
SOFTMAX, LOG_SOFTMAX, SOFTMAX_VJP, LOG_SOFTMAX_VJP, CROSS_ENTROPY, CROSS_ENTROPY_GRAD = range(6)
THREE_PASS, THREE_PASS_RELOAD, TWO_PASS, NAIVE, TWO_PASS_RELOAD = range(5)

# How far _exp_shifted's 2^n is built above its true exponent (then scaled back
# by 2^-SHIFTED_BIAS): enough that 2^(n + SHIFTED_BIAS) is a normal number
# down to the clamp, so the exponent field takes n with one shift.
SHIFTED_BIAS = {"float32": 64, "float64": 200}

# Polynomial degrees of the shipped exponential: the smallest giving about one
# ULP over the whole range (tests/test_numba_kernels.py measures it).
DEGREE = {"float32": 6, "float64": 11}


# --------------------------------------------------------------------------- the exponential


class ExpConstants(NamedTuple):
    """Constants of the exponential in one working dtype (a homogeneous tuple,
    which numba's parallel regions accept as scalars)."""

    log2e: float  # 1 / ln 2
    ln2_hi: float  # ln 2 split in two (Cody-Waite): ln2_hi has trailing zero bits,
    ln2_lo: float  # so n * ln2_hi is exact for every n the clamps allow
    magic: float  # 1.5 * 2^mantissa_bits: adding it rounds to an integer held in the low bits
    half: float
    lo: float  # below lo, exp(x) rounds to 0: clamp there (also catches -inf)
    hi: float  # above hi, exp(x) overflows to inf: clamp there (also catches +inf)
    zero: float
    one: float
    inf: float
    magic_shifted: float  # magic + bias + SHIFTED_BIAS: t's low bits then hold n's biased exponent (see _exp_shifted)


def fit_polynomial(degree: int) -> tuple[float, ...]:
    """Coefficients c_0..c_degree of p(r) ~ e^r on |r| <= ln(2)/2, as float64.

    c_0 = c_1 = 1 exactly, so exp(0) is exactly 1 and p is exact to first
    order. The higher coefficients are Taylor's 1/k! plus a correction fitted
    to the Taylor tail by Lawson's iteration (weighted least squares converging
    to the minimax fit of the relative error). Fitting only the tail, a number
    far below 1, keeps float64 arithmetic accurate enough for float64
    coefficients.
    """
    a = math.log(2) / 2 * 1.01  # r may round slightly past ln(2)/2
    r = a * np.cos(np.linspace(0.0, np.pi, 2001))
    tail = sum(r**k / math.factorial(k) for k in range(degree + 1, degree + 30))
    e = np.exp(r)
    basis = np.stack([(r / a) ** k for k in range(2, degree + 1)], axis=1) / e[:, None]
    target = tail / e  # relative error of the Taylor polynomial
    weights = np.ones_like(r)
    for _ in range(40):
        w = np.sqrt(weights)
        delta, *_ = np.linalg.lstsq(basis * w[:, None], target * w, rcond=None)
        weights *= np.abs(basis @ delta - target)
        weights /= weights.sum()
    return (1.0, 1.0) + tuple(1 / math.factorial(k) + delta[k - 2] / a**k for k in range(2, degree + 1))


class ExpParams(NamedTuple):
    """The exponential of one working dtype: its constants and its polynomial,
    as the pair (coefficients, coefficients * 2^-SHIFTED_BIAS): _exp takes the
    first, _exp_shifted the second (see there)."""

    constants: ExpConstants
    poly: tuple


@lru_cache(maxsize=None)
def exp_params(dtype: str, degree: int | None = None) -> ExpParams:
    """Typed constants and polynomial for ``dtype`` ("float32" or "float64")."""
    t = np.dtype(dtype).type
    if dtype == "float32":
        ln2_hi, ln2_lo, bits, lo, hi = 0.693145751953125, 1.428606765330187e-06, 23, -110.0, 100.0
    else:  # fdlibm's split of ln 2
        ln2_hi, ln2_lo, bits, lo, hi = 6.93147180369123816490e-01, 1.90821492927058770002e-10, 52, -800.0, 800.0
    poly = fit_polynomial(degree or DEGREE[dtype])
    bias = {"float32": 127, "float64": 1023}[dtype] + SHIFTED_BIAS[dtype]
    constants = ExpConstants(*(t(v) for v in (1 / math.log(2), ln2_hi, ln2_lo, 1.5 * 2.0**bits, 0.5, lo, hi, 0.0, 1.0, np.inf,
                                              1.5 * 2.0**bits + bias)))
    down = 2.0 ** -SHIFTED_BIAS[dtype]  # exact: a power of two, far above the subnormals
    return ExpParams(constants, (tuple(t(c) for c in poly), tuple(t(c * down) for c in poly)))


@intrinsic
def _scale(typingctx, p, t):
    """p * 2^n for t = n + magic (the integer n sits in t's low mantissa bits).

    2^n is applied as two factors 2^n1 * 2^n2 with n1 = floor(n / 2): each is
    a normal number even where 2^n is subnormal or beyond the largest finite,
    so p * 2^n1 is exact and the second product rounds once, to the correct
    subnormal, 0 or inf. The factors are built with integer operations (n
    into the exponent field: add the bias, shift left), which LLVM
    vectorises and which leave the floating-point units to the polynomial.
    """
    if p not in (types.float32, types.float64) or t != p:
        return None
    width, mantissa, bias = (32, 23, 127) if p == types.float32 else (64, 52, 1023)
    magic = ((bias + mantissa) << mantissa) | (1 << (mantissa - 1))  # the bits of 1.5 * 2^mantissa

    def codegen(context, builder, signature, args):
        """The LLVM IR: integer arithmetic on the bits, two multiplies."""
        itype = ir.IntType(width)
        n = builder.sub(builder.bitcast(args[1], itype), ir.Constant(itype, magic))
        n1 = builder.ashr(n, ir.Constant(itype, 1))
        n2 = builder.sub(n, n1)

        def pow2(k):
            """2^k as a float: k + bias in the exponent field, zero mantissa."""
            field = builder.shl(builder.add(k, ir.Constant(itype, bias)), ir.Constant(itype, mantissa))
            return builder.bitcast(field, args[0].type)

        return builder.fmul(builder.fmul(args[0], pow2(n1)), pow2(n2))

    return p(p, t), codegen


@intrinsic
def _pow2_shifted(typingctx, t):
    """2^(n + SHIFTED_BIAS) for t = n + magic_shifted: t's bits shifted left
    by the mantissa's width, which leaves its low bits (n plus the biases) in
    the exponent field. One integer shift: the cheap half of _exp_shifted."""
    if t not in (types.float32, types.float64):
        return None
    width, mantissa = (32, 23) if t == types.float32 else (64, 52)

    def codegen(context, builder, signature, args):
        """The LLVM IR: bitcast, shift left, bitcast back."""
        itype = ir.IntType(width)
        return builder.bitcast(builder.shl(builder.bitcast(args[0], itype), ir.Constant(itype, mantissa)), args[0].type)

    return t(t), codegen


@intrinsic
def _lanes(typingctx, like, value):
    """LANES accumulators of ``like``'s dtype, each set to ``value``, on the stack.

    A heap array (np.empty) may alias the row as far as LLVM knows, so every
    lane update would go through memory; a stack array cannot, so the lane
    loop vectorises with the accumulators in registers. An intrinsic is
    inlined where it is called: the array lives in the caller's frame, for
    as long as the caller runs.
    """
    if not isinstance(like, types.Array) or value != like.dtype:
        return None
    array_type = types.Array(like.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        """The LLVM IR: an alloca in the entry block, filled, wrapped as an array."""
        element = context.get_data_type(like.dtype)
        data = cgutils.alloca_once(builder, element, size=LANES)
        with cgutils.for_range(builder, context.get_constant(types.intp, LANES)) as loop:
            builder.store(args[1], builder.gep(data, [loop.index]))
        array = make_array(array_type)(context, builder)
        intp = context.get_value_type(types.intp)
        size = context.get_abi_sizeof(element)
        populate_array(array, data=data, shape=[intp(LANES)], strides=[intp(size)], itemsize=intp(size), meminfo=None)
        return array._getvalue()

    return array_type(like, value), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma): with c = -(a * b) rounded, the exact
    rounding error of a product (TwoProduct)."""
    if a not in (types.float32, types.float64) or b != a or c != a:
        return None

    def codegen(context, builder, signature, args):
        """The LLVM IR: one call to llvm.fma."""
        return builder.fma(*args)

    return a(a, b, c), codegen


@_jit()
def _horner(c, r):
    """The polynomial with coefficients ``c`` (lowest first) at r, highest coefficient first."""
    p = c[-1]
    for i in range(len(c) - 2, -1, -1):
        p = p * r + c[i]
    return p


@_jit()
def _exp(x, K, poly):
    """e^x in x's dtype, about 1 ULP; exact 0 below the subnormals, inf above the
    overflow threshold, 0 at -inf, inf at +inf, NaN at NaN.

    x = n ln2 + r with |r| <= ln(2)/2 and e^x = p(r) 2^n, p a polynomial
    (``poly[0]``, its coefficients).
    """
    xc = K.lo if x < K.lo else x  # written so that NaN passes through (x < lo is false)
    xc = K.hi if xc > K.hi else xc
    t = xc * K.log2e + K.magic  # n = round(x / ln 2), kept in t's low bits
    n = t - K.magic
    r = xc - n * K.ln2_hi  # exact: n ln2_hi has spare low bits
    r = r - n * K.ln2_lo
    return _scale(_horner(poly[0], r), t)


@_jit()
def _exp_shifted(x, K, poly):
    """e^x for the arguments of a shifted softmax, x <= 0 (or NaN): the same
    polynomial and the same result as _exp, about half its instructions.

    The difference is 2^n: n + bias + SHIFTED_BIAS sits in t's low bits
    (magic_shifted), one shift puts it in the exponent field as
    2^(n + SHIFTED_BIAS), and the polynomial's coefficients come scaled by
    2^-SHIFTED_BIAS (``poly[1]``: every Horner step is the unscaled one times
    a power of two, so the same roundings). The one product p 2^(n +
    SHIFTED_BIAS) rounds once, to the correct subnormal or 0, as _exp's two
    factors do. Valid for x up to about SHIFTED_BIAS ln 2 (the exponent field
    must not overflow); every caller passes x - max or a difference of
    maxima, which are <= 0.
    """
    xc = K.lo if x < K.lo else x  # NaN passes; -inf and far below clamp to an exact 0
    t = xc * K.log2e + K.magic_shifted
    n = t - K.magic_shifted
    r = xc - n * K.ln2_hi
    r = r - n * K.ln2_lo
    return _horner(poly[1], r) * _pow2_shifted(t)


@_jit()
def _divide(e, d, inv):
    """e / d from inv = 1 / d: the product e * inv, then one FMA correction
    (Markstein), so the quotient is about as accurate as a division (a plain
    e * inv can be 1 ULP off) at two FMAs instead of a divide, whose
    throughput is a fraction of the multiplier's."""
    q = e * inv
    return _fma(_fma(-q, d, e), inv, q)


@_jit(cache=True)
def exp_array(x, out, K, poly):
    """out[i] = _exp(x[i]) over 1-D arrays: the exponential alone, for its unit tests."""
    for i in range(x.size):
        out[i] = _exp(x[i], K, poly)


@_jit(cache=True)
def exp_shifted_array(x, out, K, poly):
    """out[i] = _exp_shifted(x[i]) over 1-D arrays of x <= 0, for its unit tests."""
    for i in range(x.size):
        out[i] = _exp_shifted(x[i], K, poly)


@_jit()
def _shift_of(m, K):
    """The masked-row guard: a max still -inf shifts by 0, so exp(-inf - shift)
    is 0 and never exp(-inf - -inf) = NaN."""
    return m if m > -K.inf else K.zero


@_jit()
def _naive_exp(v, limits, K, poly):
    """e^v as if computed in the input's own dtype: limits = (overflow, underflow)
    of that dtype (inf and 0 for float32 and float64, whose exp is already
    their own). The negative control overflows where its input dtype does."""
    e = _exp(v, K, poly)
    e = K.inf if e >= limits[0] else e
    return K.zero if e <= limits[1] else e


# --------------------------------------------------------------------------- lane reductions


@_jit()
def _max_of(a, b):
    """max(a, b) that keeps a when b is NaN: NaN inputs surface later, in the sum."""
    return b if b > a else a


@_jit()
def _pairwise_sum(lanes):
    """The sum of the lanes, added pairwise (a tree of depth log2(LANES)): a
    running sum over the lanes would add LANES roundings at the scale of the
    total. Overwrites the lanes."""
    width = LANES // 2
    while width > 0:
        for k in range(width):
            lanes[k] += lanes[k + width]
        width //= 2
    return lanes[0]


@_jit()
def _row_max(x, K):
    """max(x), ignoring NaN; -inf for an empty or fully masked row."""
    lanes = _lanes(x, -K.inf)
    full = x.size - x.size % LANES
    for j in range(0, full, LANES):
        for k in range(LANES):  # the loop LLVM vectorises
            lanes[k] = _max_of(lanes[k], x[j + k])
    for j in range(full, x.size):
        lanes[j - full] = _max_of(lanes[j - full], x[j])
    width = LANES // 2  # merged pairwise, as _pairwise_sum: a few vector maxima, not LANES - 1 dependent ones
    while width > 0:
        for k in range(width):
            lanes[k] = _max_of(lanes[k], lanes[k + width])
        width //= 2
    return lanes[0]


# The terms of the sums: (value, whether it is exactly exp(0) at the max, the
# value's own rounding error where a compensated sum can use it).


@_jit()
def _exp_term(a, b, j, shift, out, limits, K, poly):
    """exp(x_j - shift), counted apart when it is exp(0)."""
    return _exp_shifted(a[j] - shift, K, poly), a[j] == shift, K.zero


@_jit()
def _exp_plain_term(a, b, j, shift, out, limits, K, poly):
    """exp(x_j - shift), no count: softmax divides by the sum, and 1 + rest
    rounded once costs it nothing (only a logarithm of the sum needs the rest
    kept apart)."""
    return _exp_shifted(a[j] - shift, K, poly), False, K.zero


@_jit()
def _value_term(a, b, j, shift, out, limits, K, poly):
    """a_j, exactly 1 when it is exp(0) (the stored exps of the reloading pass)."""
    return a[j], a[j] == K.one, K.zero


@_jit()
def _value_plain_term(a, b, j, shift, out, limits, K, poly):
    """a_j, no count (see _exp_plain_term)."""
    return a[j], False, K.zero


@_jit()
def _naive_exp_term(a, b, j, shift, out, limits, K, poly):
    """exp(x_j), unshifted, in the input dtype's range."""
    return _naive_exp(a[j], limits, K, poly), False, K.zero


@_jit()
def _product_term(a, b, j, shift, out, limits, K, poly):
    """a_j * b_j (dy * y), and the product's exact rounding error."""
    p = a[j] * b[j]
    return p, False, _fma(a[j], b[j], -p)


@_jit()
def _plain_term(a, b, j, shift, out, limits, K, poly):
    """b_j (dy)."""
    return b[j], False, K.zero


@_jit()
def _add_compensated(s, lost, v):
    """Neumaier's s + v: returns the rounded sum and ``lost`` plus its rounding error."""
    t = s + v
    lost += ((s - t) + v) if abs(s) >= abs(v) else ((v - t) + s)
    return t, lost


def _lane_sum_of(term, compensated=False):
    """A compiled ``lane_sum(a, b, shift, out, limits, K, poly) -> (count, rest)``:
    the sum over a row of ``term(a, b, j, ...) = (value, top, residual)``.

    ``top`` marks a term that is exactly 1, exp(0) at the row's max: those are
    counted in ``count`` and left out of ``rest``, so that a row dominated by
    its max keeps the small rest to full precision (Blanchard, Higham &
    Higham's 1 + s; log_softmax takes log1p of it). Terms go round LANES
    lanes; each CHUNK of the row is summed in its own lanes, then added to
    running lane totals, and the lanes are merged pairwise: the rounding
    error grows like (CHUNK / LANES + n / CHUNK + log2 LANES) u, not n u,
    about as NumPy's pairwise sum does. ``compensated`` (for the VJPs' sums,
    whose terms cancel) also carries each rounding error along (Neumaier),
    with the terms' own ``residual`` (a product's, from an FMA), so the sum
    comes out correctly rounded but for a few u of its terms' magnitude.

    One function per term, made here, rather than one taking the term as an
    argument: numba compiles a function passed as a value to a process-local
    address, which would keep the kernels out of the on-disk cache.
    """

    kind = f"{term.__name__}{'_compensated' if compensated else ''}"

    @_jit_named(f"_lane_sum_of.add.{kind}")
    def add(part, lost, count, k, v, top, residual, K):
        """Add one term to lane k."""
        v = K.zero if top else v
        if compensated:
            part[k], lost[k] = _add_compensated(part[k], lost[k], v)
            lost[k] += residual
        else:
            part[k] += v
        count[k] += K.one if top else K.zero

    @_jit_named(f"_lane_sum_of.lane_sum.{kind}")
    def lane_sum(a, b, shift, out, limits, K, poly):
        """(count, rest) of the row's sum of ``term`` (see _lane_sum_of)."""
        count = _lanes(a, K.zero)
        part = _lanes(a, K.zero)
        total = _lanes(a, K.zero)
        lost = _lanes(a, K.zero)  # compensated only: the rounding errors so far
        for start in range(0, a.size, CHUNK):
            # A view per chunk, indexed from 0: indices LLVM can prove
            # non-negative, so numba's wraparound of negative indices folds
            # away (with j from a runtime start, it would stop vectorisation).
            ca, cb, co = a[start:start + CHUNK], b[start:start + CHUNK], out[start:start + CHUNK]
            full = ca.size - ca.size % LANES
            for j in range(0, full, LANES):
                for k in range(LANES):  # the loop LLVM vectorises (a fixed trip count)
                    v, top, residual = term(ca, cb, j + k, shift, co, limits, K, poly)
                    add(part, lost, count, k, v, top, residual, K)
            for j in range(full, ca.size):
                v, top, residual = term(ca, cb, j, shift, co, limits, K, poly)
                add(part, lost, count, j - full, v, top, residual, K)
            for k in range(LANES):
                if compensated:
                    total[k], lost[k] = _add_compensated(total[k], lost[k], part[k])
                else:
                    total[k] += part[k]
                part[k] = K.zero
        if compensated:
            s, e = K.zero, K.zero
            for k in range(LANES):
                s, e = _add_compensated(s, e, total[k])
                e += lost[k]
            return _pairwise_sum(count), (s + e if abs(e) < K.inf else s)
        return _pairwise_sum(count), _pairwise_sum(total)

    return lane_sum


_sum_exp = _lane_sum_of(_exp_term)
_sum_exp_plain = _lane_sum_of(_exp_plain_term)
_sum_values = _lane_sum_of(_value_term)
_sum_values_plain = _lane_sum_of(_value_plain_term)
_sum_naive_exp = _lane_sum_of(_naive_exp_term)
_sum_products = _lane_sum_of(_product_term, compensated=True)
_sum_plain = _lane_sum_of(_plain_term, compensated=True)


@_jit()
def _store_exps(xb, ob, shift, counted, K, poly):
    """ob = exp(xb - shift), returning (count, rest) of its sum, summed back
    while ``ob`` is in L1. A plain loop writes, a lane sum reads back: storing
    from inside the lane loop costs about 40% more (LLVM cannot rule out ob
    aliasing xb there)."""
    for j in range(xb.size):
        ob[j] = _exp_shifted(xb[j] - shift, K, poly)
    no_limits = (K.inf, K.zero)
    if counted:
        return _sum_values(ob, ob, K.zero, ob, no_limits, K, poly)
    return _sum_values_plain(ob, ob, K.zero, ob, no_limits, K, poly)


@_jit()
def _block_count(n):
    """The blocks of BLOCK elements (the last one short) a row of n spans."""
    return (n + BLOCK - 1) // BLOCK


def _online_of(store, counted):
    """A compiled ``online(x, out, shifts, K, poly) -> (shift, count, rest)``:
    a row's shift and sum in one pass over memory, the online softmax.

    Milakov & Gimelshein's running max and rescaled sum, taken a BLOCK at a
    time (as FlashAttention does): the block's max, then the block's sum of
    exp(x - block max), both while the block is in L1, then one scalar exp
    rescales whichever of the running sum and the block's sum is relative
    to the smaller max. Terms exactly 1 (at the row's max) stay counted
    apart where ``counted``, as in _lane_sum_of. The masked-prefix guard:
    until a block has a finite max there is nothing to rescale (and a shift
    of -inf is taken as 0), so exp(-inf - -inf) = NaN never happens.

    With ``store`` the block's exps are also written to ``out`` and its
    shift to ``shifts[block]``, for a second pass that only rescales them
    (the two-pass reloading softmax: one exp per element). ``store`` and
    ``counted`` are constants of each compiled function; the branches on
    them fold away.
    """

    @_jit_named(f"_online_of.online.store_{store}.counted_{counted}")
    def online(x, out, shifts, K, poly):
        """(shift, count, rest) of the row (see _online_of)."""
        top, c, rest = -K.inf, K.zero, K.zero
        no_limits = (K.inf, K.zero)
        for b in range(_block_count(x.size)):
            xb = x[b * BLOCK:(b + 1) * BLOCK]
            m = _row_max(xb, K)
            shift = _shift_of(m, K)
            if store:
                cb, rb = _store_exps(xb, out[b * BLOCK:(b + 1) * BLOCK], shift, counted, K, poly)
                shifts[b] = shift
            elif counted:
                cb, rb = _sum_exp(xb, xb, shift, xb, no_limits, K, poly)
            else:
                cb, rb = _sum_exp_plain(xb, xb, shift, xb, no_limits, K, poly)
            if top == -K.inf or m == top:  # nothing finite so far (its sum is 0 or NaN), or the same shift
                top = m if m > top else top
                c, rest = c + cb, rest + rb
            elif m > top:  # a new max: the running sum moves to this block's shift
                rest = (c + rest) * _exp_shifted(_shift_of(top, K) - shift, K, poly) + rb
                top, c = m, cb
            else:
                rest += (cb + rb) * _exp_shifted(shift - _shift_of(top, K), K, poly)
        return _shift_of(top, K), c, rest

    return online


_online = _online_of(store=False, counted=True)
_online_plain = _online_of(store=False, counted=False)
_online_store = _online_of(store=True, counted=True)
_online_store_plain = _online_of(store=True, counted=False)


@_jit()
def _rescale_blocks(out, shifts, shift, d, dloss, K, poly):
    """out *= dloss * exp(shifts[b] - shift) / d, block by block: the second
    pass of the two-pass reloading softmax (the factor rounds once, from a
    division; each element then takes one product). Last block first: the
    blocks the first pass wrote last are the ones still in L2."""
    for b in range(shifts.size - 1, -1, -1):
        ob = out[b * BLOCK:(b + 1) * BLOCK]
        f = dloss * (_exp_shifted(shifts[b] - shift, K, poly) / d)
        for j in range(ob.size):
            ob[j] *= f


@_jit()
def _store_exp_and_sum(x, shift, out, counted, K, poly):
    """out = exp(x - shift), returning (count, rest) of its sum: the reloading
    pass (``counted``: the terms exactly 1 counted apart, see _lane_sum_of).

    Chunk by chunk (_store_exps), so each chunk is summed back while in L1.
    """
    c, rest = K.zero, K.zero
    for start in range(0, x.size, CHUNK):
        cc, rr = _store_exps(x[start:start + CHUNK], out[start:start + CHUNK], shift, counted, K, poly)
        c += cc
        rest += rr
    return c, rest


# --------------------------------------------------------------------------- per-row algorithms


@_jit()
def _shift_and_sum(algo, x, counted, limits, K, poly):
    """(shift, count, rest) of a row as ``algo`` computes them: the sum of
    exp(x - shift) is count + rest, count the terms that are exactly 1
    (``counted``; else count is 0 and rest the whole sum).

    Three-pass: a max pass, then a sum pass. Online (either two-pass form):
    one pass. Naive: no shift, and its exps overflow.
    """
    if algo == TWO_PASS or algo == TWO_PASS_RELOAD:  # nothing stored: x stands in for out and shifts
        return _online(x, x, x, K, poly) if counted else _online_plain(x, x, x, K, poly)
    if algo == NAIVE:
        c, rest = _sum_naive_exp(x, x, K.zero, x, limits, K, poly)
        return K.zero, c, rest
    m = _row_max(x, K)
    if counted:
        c, rest = _sum_exp(x, x, m, x, limits, K, poly)
    else:
        c, rest = _sum_exp_plain(x, x, m, x, limits, K, poly)
    return m, c, rest


@_jit()
def _log_sum(c, rest, K):
    """log(c + rest) as log1p((c - 1) + rest): exact to the last bit of a small
    rest when one term dominates (c = 1), where log(1 + rest) would round to 0."""
    return math.log1p((c - K.one) + rest)


@_jit()
def _softmax_row(algo, x, out, limits, K, poly):
    """out = softmax(x): the shift and sum, then one write pass (or, reloading,
    a rescale of the exps that the sum pass stored)."""
    if algo == TWO_PASS_RELOAD:
        shifts = np.empty(_block_count(x.size), x.dtype)
        shift, c, rest = _online_store_plain(x, out, shifts, K, poly)
        _rescale_blocks(out, shifts, shift, c + rest, K.one, K, poly)
        return
    if algo == THREE_PASS_RELOAD:
        c, rest = _store_exp_and_sum(x, _row_max(x, K), out, False, K, poly)
        d = c + rest
        inv = K.one / d
        for j in range(x.size):
            out[j] = _divide(out[j], d, inv)
        return
    shift, c, rest = _shift_and_sum(algo, x, False, limits, K, poly)
    d = c + rest
    inv = K.one / d
    if algo == NAIVE:
        for j in range(x.size):
            out[j] = _naive_exp(x[j], limits, K, poly) / d
    else:
        for j in range(x.size):
            out[j] = _divide(_exp_shifted(x[j] - shift, K, poly), d, inv)


@_jit()
def _log_softmax_row(algo, x, out, limits, K, poly):
    """out = (x - shift) - log(sum), never x - (shift + log(sum)), which rounds
    the sum of two large numbers and is not shift-invariant. Naive takes the
    log of its softmax, as backends/naive.py does."""
    shift, c, rest = _shift_and_sum(algo, x, True, limits, K, poly)
    if algo == NAIVE:
        for j in range(x.size):
            out[j] = math.log(_naive_exp(x[j], limits, K, poly) / (c + rest))
    else:
        log_s = _log_sum(c, rest, K)
        for j in range(x.size):
            out[j] = (x[j] - shift) - log_s


@_jit()
def _softmax_vjp_row(y, dy, out, K, poly):
    """out = y * (dy - sum(dy * y))."""
    _, g = _sum_products(y, dy, K.zero, out, (K.zero, K.zero), K, poly)
    for j in range(y.size):
        out[j] = y[j] * (dy[j] - g)


@_jit()
def _log_softmax_vjp_row(y, dy, out, K, poly):
    """out = dy - exp(y) * sum(dy), y the log_softmax output."""
    _, g = _sum_plain(y, dy, K.zero, out, (K.zero, K.zero), K, poly)
    for j in range(y.size):
        out[j] = dy[j] - _exp(y[j], K, poly) * g


@_jit()
def _cross_entropy_row(algo, grad, x, target, dloss, ignore_index, out, limits, K, poly):
    """The loss log(sum) - (x[target] - shift) of one row; with ``grad`` also
    out = dloss * (softmax(x) - onehot(target)).

    The loss needs the shift, the sum and the target logit (one load): the
    online form gets them in one pass, then (with ``grad``) one pass writes
    the gradient. Reloading stores the exps in the gradient's buffer and
    rescales them. A row whose target is ``ignore_index`` has loss 0 and
    gradient 0; a target at a -inf logit has loss +inf.
    """
    if target == ignore_index:
        if grad:
            out[:] = K.zero
        return K.zero
    shifts = np.empty(_block_count(x.size) if grad and algo == TWO_PASS_RELOAD else 0, x.dtype)
    if grad and algo == TWO_PASS_RELOAD:
        shift, c, rest = _online_store(x, out, shifts, K, poly)
    elif grad and algo == THREE_PASS_RELOAD:
        shift = _row_max(x, K)
        c, rest = _store_exp_and_sum(x, shift, out, True, K, poly)
    else:
        shift, c, rest = _shift_and_sum(algo, x, True, limits, K, poly)
    d = c + rest
    inv = K.one / d
    loss = (math.log(d) if algo == NAIVE else _log_sum(c, rest, K)) - (x[target] - shift)
    if grad:
        if algo == TWO_PASS_RELOAD:
            _rescale_blocks(out, shifts, shift, d, dloss, K, poly)
        elif algo == THREE_PASS_RELOAD:
            for j in range(x.size):
                out[j] = dloss * _divide(out[j], d, inv)
        elif algo == NAIVE:
            for j in range(x.size):
                out[j] = dloss * (_naive_exp(x[j], limits, K, poly) / d)
        else:
            for j in range(x.size):
                out[j] = dloss * _divide(_exp_shifted(x[j] - shift, K, poly), d, inv)
        if algo == NAIVE:
            p = _naive_exp(x[target], limits, K, poly) / d
        else:
            p = _exp_shifted(x[target] - shift, K, poly) / d
        out[target] = dloss * (p - K.one)  # p - 1 is exact for p >= 1/2 (Sterbenz)
    return loss


# --------------------------------------------------------------------------- the row driver


@_jit()
def _drive_row(i, op, algo, a, b, target, dloss, ignore_index, out, loss, limits, K, poly):
    """Row ``i`` of every kernel: ``op`` with ``algo`` (see _drive_threads)."""
    if op == SOFTMAX:
        _softmax_row(algo, a[i], out[i], limits, K, poly)
    elif op == LOG_SOFTMAX:
        _log_softmax_row(algo, a[i], out[i], limits, K, poly)
    elif op == SOFTMAX_VJP:
        _softmax_vjp_row(a[i], b[i], out[i], K, poly)
    elif op == LOG_SOFTMAX_VJP:
        _log_softmax_vjp_row(a[i], b[i], out[i], K, poly)
    else:
        loss[i] = _cross_entropy_row(algo, op == CROSS_ENTROPY_GRAD, a[i], target[i], dloss[i], ignore_index,
                                     out[i], limits, K, poly)


@_jit(parallel=True, cache=True)
def _drive_threads(op, algo, a, b, target, dloss, ignore_index, out, loss, limits, K, poly_unshifted, poly_shifted):
    """Every kernel: one prange over the rows of a (rows, n) array, one op each.

    ``a`` is x (or y for the VJPs), ``b`` dy, ``target``/``dloss``/``loss``
    the cross-entropy's per-row arrays; operations that do not use one get a
    placeholder of the same type, so each dtype compiles this function once.
    ``limits`` (an array: the naive exp's overflow and underflow) becomes a
    tuple here, once, so that no hot loop reloads it from memory. numba
    gives each thread a contiguous range of rows. The two polynomials arrive
    apart (a parallel region takes flat tuples only) and are paired per row
    (ExpParams.poly).
    """
    for i in prange(a.shape[0]):
        _drive_row(i, op, algo, a, b, target, dloss, ignore_index, out, loss, (limits[0], limits[1]), K,
                   (poly_unshifted, poly_shifted))


@_jit(cache=True)
def _drive_serial(op, algo, a, b, target, dloss, ignore_index, out, loss, limits, K, poly_unshifted, poly_shifted):
    """_drive_threads on the calling thread alone: for one row, or too little
    work to pay for starting the threads (see PARALLEL_MIN_ELEMENTS).

    A function of its own rather than _drive_threads compiled a second time
    without ``parallel``: numba's on-disk cache keys a function's machine
    code by its bytecode and signature, not by its options, so the two
    compilations would overwrite each other there."""
    for i in range(a.shape[0]):
        _drive_row(i, op, algo, a, b, target, dloss, ignore_index, out, loss, (limits[0], limits[1]), K,
                   (poly_unshifted, poly_shifted))


def _shipped_exp(a):
    """(constants, polynomial, shifted polynomial) of the shipped exponential in
    a's dtype, as compile-time constants (see _drive_shipped)."""
    raise NotImplementedError("only callable from compiled code")


@overload(_shipped_exp, jit_options={"cache": CACHE_DIR is not None})
def _shipped_exp_typed(a):
    """_shipped_exp for a's array type: exp_params is read here, once, when
    numba compiles the caller; its values end up in the machine code (and
    with it in numba's on-disk cache (CACHE_DIR), which a change to this file voids)."""
    params = exp_params(str(a.dtype))
    constants, poly_unshifted, poly_shifted = params.constants, *params.poly
    return lambda a: (constants, poly_unshifted, poly_shifted)


@_jit(cache=True)
def _drive_shipped(threads, op, algo, a, b, target, dloss, ignore_index, out, loss, limits):
    """The row driver with the shipped exponential built in (``threads``: on
    all threads or on the caller's).

    What every backend call goes through. Its arguments are arrays and
    integers only: numba's dispatcher types a tuple argument in Python, about
    a microsecond each, and the exponential's constants are three of them.
    """
    K, poly_unshifted, poly_shifted = _shipped_exp(a)
    if threads:
        _drive_threads(op, algo, a, b, target, dloss, ignore_index, out, loss, limits, K, poly_unshifted, poly_shifted)
    else:
        _drive_serial(op, algo, a, b, target, dloss, ignore_index, out, loss, limits, K, poly_unshifted, poly_shifted)



# --------------------------------------------------------------------------- the loss options (issue 22)
#
# The cross-entropy of z = cap·tanh(x/cap)/T (softmax_bench.loss_options defines it): z is written
# once into the gradient's own row (or a scratch row for the loss alone), then the algorithm's own
# shift-and-sum runs over z as it does over x; Σ w·z (label smoothing) is one more lane sum, and the
# gradient pass reads z back and overwrites it in place. ``cap`` 0 means no soft-cap; ``w`` empty no
# class weights (``w_sum`` is then n). Reductions happen outside (per-row ``dloss`` carries them).


# tanh's odd Taylor coefficients through y^15: on |y| < TANH_SMALL the series is exact to 3e-13
# relative (float32 needs 6e-8); above it (1 - e^-2|y|) / (1 + e^-2|y|) loses at most
# e^-0.5 / (1 - e^-0.5) = 1.6 u to cancellation. float64 rows take math.tanh (libm, scalar).
TANH_TAYLOR = (1.0, -1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075, -929569 / 638512875)
TANH_SMALL = 0.25


@_jit()
def _options_transform(x, z, cap, temp, K, poly):
    """z = cap·tanh(x/cap)/T, or x/T without a cap (cap 0).

    float32 rows: a tanh LLVM vectorises (the kernel's own exp, a Taylor
    series near 0), in float32; float64 rows: math.tanh in float64.
    """
    typed = np.empty(2 + len(TANH_TAYLOR), z.dtype)  # the constants in z's dtype, so the loops stay in it
    typed[0], typed[1] = cap if cap > 0.0 else 1.0, temp
    for k in range(len(TANH_TAYLOR)):
        typed[2 + k] = TANH_TAYLOR[k]
    c, t = typed[0], typed[1]
    if cap <= 0.0:
        for j in range(x.size):
            z[j] = x[j] / t
        return
    if K.lo < -200.0:  # float64 (its exp's underflow limit is -800; float32's -110)
        for j in range(x.size):
            z[j] = c * math.tanh(x[j] / c) / t
        return
    q = typed[2:]
    for j in range(x.size):
        z[j] = x[j] / c
    for j in range(x.size):
        y = z[j]
        a = abs(y)
        y2 = y * y
        series = y * (q[0] + y2 * (q[1] + y2 * (q[2] + y2 * (q[3] + y2 * (q[4] + y2 * (q[5] + y2 * (q[6] + y2 * q[7])))))))
        e = _exp_shifted(-(a + a), K, poly)
        large = (K.one - e) / (K.one + e)
        large = large if y >= K.zero else -large
        z[j] = (series if a < TANH_SMALL else large) * c / t


# The options path was written with module-level helpers when the functions _lane_sum_of and
# _online_of make still shared one qualname (see _jit_named: with _drive_shipped loaded first,
# _drive_options' Σz once summed exps instead); they are kept as they are, measured and checked.


@_jit()
def _options_exp_sum(zb, shift, K, poly):
    """(count, rest) of Σ exp(zb - shift) over one block, the terms exactly 1 counted apart, in LANES lanes."""
    count = _lanes(zb, K.zero)
    part = _lanes(zb, K.zero)
    full = zb.size - zb.size % LANES
    for j in range(0, full, LANES):
        for k in range(LANES):
            v = zb[j + k]
            top = v == shift
            e = _exp_shifted(v - shift, K, poly)
            part[k] += K.zero if top else e
            count[k] += K.one if top else K.zero
    for j in range(full, zb.size):
        v = zb[j]
        top = v == shift
        e = _exp_shifted(v - shift, K, poly)
        part[j - full] += K.zero if top else e
        count[j - full] += K.one if top else K.zero
    return _pairwise_sum(count), _pairwise_sum(part)


@_jit()
def _options_shift_and_sum(algo, z, K, poly):
    """(shift, count, rest) of the row z: online a BLOCK at a time for the two-pass algorithms (the
    running max and rescaled sum of _online_of, with its masked-prefix guard), else its max and then
    the sum a CHUNK at a time."""
    if algo == TWO_PASS or algo == TWO_PASS_RELOAD:
        top, c, rest = -K.inf, K.zero, K.zero
        for b in range(_block_count(z.size)):
            zb = z[b * BLOCK:(b + 1) * BLOCK]
            m = _row_max(zb, K)
            shift = _shift_of(m, K)
            cb, rb = _options_exp_sum(zb, shift, K, poly)
            if top == -K.inf or m == top:
                top = m if m > top else top
                c, rest = c + cb, rest + rb
            elif m > top:
                rest = (c + rest) * _exp_shifted(_shift_of(top, K) - shift, K, poly) + rb
                top, c = m, cb
            else:
                rest += (cb + rb) * _exp_shifted(shift - _shift_of(top, K), K, poly)
        return _shift_of(top, K), c, rest
    shift = _shift_of(_row_max(z, K), K)
    c, rest = K.zero, K.zero
    for start in range(0, z.size, CHUNK):
        cc, rr = _options_exp_sum(z[start:start + CHUNK], shift, K, poly)
        c += cc
        rest += rr
    return shift, c, rest


@_jit()
def _options_weighted_sum(z, w, K):
    """Σ w_j z_j (w empty: Σ z_j), in LANES lanes, a CHUNK at a time."""
    has_w = w.size > 0
    total = _lanes(z, K.zero)
    part = _lanes(z, K.zero)
    for start in range(0, z.size, CHUNK):
        cz = z[start:start + CHUNK]
        cw = w[start:start + CHUNK] if has_w else w
        full = cz.size - cz.size % LANES
        for j in range(0, full, LANES):
            for k in range(LANES):
                part[k] += cz[j + k] * (cw[j + k] if has_w else K.one)
        for j in range(full, cz.size):
            part[j - full] += cz[j] * (cw[j] if has_w else K.one)
        for k in range(LANES):
            total[k] += part[k]
            part[k] = K.zero
    return _pairwise_sum(total)


@_jit()
def _options_gradient_entry(zj, wj, shift, d, inv, fa, fb, ct, inv_t, capped, K, poly):
    """One entry dloss·(a·p - b·w)·dz/dx of the gradient, p = exp(z_j - shift)/d (see _options_gradient)."""
    p = _divide(_exp_shifted(zj - shift, K, poly), d, inv)
    th = zj * ct
    return (fa * p - fb * wj) * (((K.one - th * th) if capped else K.one) * inv_t)


@_jit()
def _options_gradient_scalars(z, dloss, a, b, cap, temp):
    """(fa, fb, 1/T, T/cap) in z's dtype, so that float32 loops stay float32 (and vectorise)."""
    typed = np.empty(4, z.dtype)
    typed[0], typed[1], typed[2] = dloss * a, dloss * b, 1.0 / temp
    typed[3] = temp / cap if cap > 0.0 else 0.0
    return typed[0], typed[1], typed[2], typed[3]


@_jit()
def _options_gradient(z, out, shift, d, dloss, a, b, w, cap, temp, K, poly):
    """out = dloss·(a·p - b·w)·dz/dx, p = exp(z - shift)/d, reading z (another array than out:
    see _options_gradient_in_place)."""
    fa, fb, inv_t, ct = _options_gradient_scalars(z, dloss, a, b, cap, temp)
    inv = K.one / d
    has_w = w.size > 0
    for j in range(z.size):
        out[j] = _options_gradient_entry(z[j], w[j] if has_w else K.one, shift, d, inv, fa, fb, ct, inv_t,
                                         cap > 0.0, K, poly)


@_jit()
def _options_gradient_in_place(z, shift, d, dloss, a, b, w, cap, temp, K, poly):
    """_options_gradient with out = z, overwriting z. A function of its own, with one array: given z
    twice, LLVM's run-time overlap check finds the two arrays overlapping and runs the scalar
    copy of the loop (measured: the options that transform the logits then cost 3-5x the plain loss)."""
    fa, fb, inv_t, ct = _options_gradient_scalars(z, dloss, a, b, cap, temp)
    inv = K.one / d
    has_w = w.size > 0
    for j in range(z.size):
        z[j] = _options_gradient_entry(z[j], w[j] if has_w else K.one, shift, d, inv, fa, fb, ct, inv_t,
                                       cap > 0.0, K, poly)


@_jit()
def _cross_entropy_options_row(algo, grad, x, target, dloss, ignore_index, out, w, w_sum, eps, zl, cap, temp, K, poly):
    """The loss of one row under the options; with ``grad`` also its gradient in ``out``."""
    if target == ignore_index:
        if grad:
            out[:] = K.zero
        return K.zero
    n = x.size
    if cap > 0.0 or temp != 1.0:
        z = out if grad else np.empty(n, x.dtype)
        _options_transform(x, z, cap, temp, K, poly)
    else:
        z = x
    shift, c, rest = _options_shift_and_sum(algo, z, K, poly)
    log_s = _log_sum(c, rest, K)
    lse = shift + log_s
    w_t = w[target] if w.size > 0 else K.one
    z_t = z[target]
    loss = zl * lse * lse
    if eps != 1.0:
        loss += (1.0 - eps) * w_t * (log_s - (z_t - shift))
    if eps != 0.0:
        # Σ_c w_c (lse - z_c) = W·lse - Σ_c w_c z_c
        loss += eps * (w_sum * lse - _options_weighted_sum(z, w, K)) / n
    if grad:
        d = c + rest
        a = (1.0 - eps) * w_t + eps * w_sum / n + 2.0 * zl * lse
        b = eps / n
        if cap > 0.0 or temp != 1.0:  # z is out: see _options_gradient_in_place
            _options_gradient_in_place(out, shift, d, dloss, a, b, w, cap, temp, K, poly)
        else:
            _options_gradient(z, out, shift, d, dloss, a, b, w, cap, temp, K, poly)
        # The target's entry: (1-ε)·w_t·(p - 1), with p - 1 exact for p >= 1/2 (Sterbenz), as the plain kernel.
        p = _exp_shifted(z_t - shift, K, poly) / d
        g = (1.0 - eps) * w_t * (p - K.one) + p * (eps * w_sum / n + 2.0 * zl * lse) - b * (w_t if w.size > 0 else K.one)
        if cap > 0.0:
            th = z_t * (temp / cap)
            out[target] = dloss * g * ((1.0 - th * th) / temp)
        else:
            out[target] = dloss * g / temp
    return loss


@_jit(parallel=True, cache=True)
def _drive_options(algo, grad, a, target, dloss, ignore_index, out, loss, w, w_sum, eps, zl, cap, temp, K,
                   poly_unshifted, poly_shifted):
    """The cross-entropy under loss options over every row, one prange (see _drive_threads)."""
    for i in prange(a.shape[0]):
        loss[i] = _cross_entropy_options_row(algo, grad, a[i], target[i], dloss[i], ignore_index, out[i], w, w_sum,
                                             eps, zl, cap, temp, K, (poly_unshifted, poly_shifted))


def drive_options(algo, grad, a, target, dloss, ignore_index, w, w_sum, eps, zl, cap, temp, params=None):
    """The per-row loss (and with ``grad`` the gradient) of C-contiguous ``a`` under the loss options:
    returns ``(loss, out)``; ``dloss`` per row (a reduction's share already in it), ``w`` the class
    weights in a's dtype (empty: none) and ``w_sum`` their sum, ``cap`` 0 for no soft-cap."""
    p = exp_params(a.dtype.name) if params is None else params
    out = OUTPUTS.empty_like(a) if grad else np.empty((a.shape[0], 0), a.dtype)
    loss = np.empty(a.shape[0], a.dtype)
    _drive_options(algo, grad, a, target, dloss, ignore_index, out, loss, w, float(w_sum), float(eps), float(zl),
                   float(cap), float(temp), p.constants, *p.poly)
    return loss, out


# --------------------------------------------------------------------------- one row on every thread


@_jit()
def _merge_segments(tops, counts, rests, K, poly):
    """(shift, sum) of a row from its segments' (shift, count, rest): the
    largest shift of a segment with a nonzero sum, and every segment's sum
    rescaled to it. A fully masked segment (sum 0, its shift taken as 0 by
    _shift_of) takes no part in the max: it would otherwise drown rows whose
    max is below 0. No such segment: shift -inf (the caller redoes the row
    serially, so the edge cases behave as the unsplit kernel)."""
    top = -K.inf
    for s in range(tops.size):
        if counts[s] + rests[s] != K.zero:
            top = _max_of(top, tops[s])
    d = K.zero
    if top == -K.inf:
        return top, d
    for s in range(tops.size):
        v = counts[s] + rests[s]
        if v != K.zero:
            d += v if tops[s] == top else v * _exp_shifted(tops[s] - top, K, poly)
    return top, d


def make_split_softmax(merge):
    """A compiled ``split(algo, x, out, limits, K, poly_unshifted, poly_shifted, seg)``:
    softmax of each row of ``x`` with the row cut into segments of ``seg``
    elements, each pass one ``prange`` over the segments, for fewer rows than
    threads (a batch-1 LM head would otherwise leave all but one core idle).

    Three-pass: segment maxima, segment sums of exp(x - max), the write: three
    parallel regions (three synchronisations). Two-pass: each segment's online
    (shift, sum), merged by ``merge``, then the write: two. ``merge`` is an
    argument so that a test plugin can plant a flawed one
    (tests/plugins/numba_split_merge.py); the shipped one is _merge_segments.
    Rows whose merged shift is not finite (masked, +inf) are redone by the
    unsplit row kernel: same edge-case behaviour, at a cost only they pay.
    """

    @_jit_named(f"make_split_softmax.split.{merge.__module__}.{merge.__qualname__}", parallel=True)
    def split(algo, x, out, limits, K, poly_unshifted, poly_shifted, seg):
        poly = (poly_unshifted, poly_shifted)
        lims = (limits[0], limits[1])
        n = x.shape[1]
        count = (n + seg - 1) // seg
        tops = np.empty(count, x.dtype)
        counts = np.empty(count, x.dtype)
        rests = np.empty(count, x.dtype)
        for i in range(x.shape[0]):
            xi = x[i]
            oi = out[i]
            if algo == TWO_PASS:
                for s in prange(count):
                    xs = xi[s * seg:min(n, (s + 1) * seg)]
                    tops[s], counts[s], rests[s] = _online_plain(xs, xs, xs, K, (poly_unshifted, poly_shifted))
            else:
                for s in prange(count):
                    tops[s] = _row_max(xi[s * seg:min(n, (s + 1) * seg)], K)
                m = -K.inf
                for s in range(count):
                    m = _max_of(m, tops[s])
                for s in prange(count):
                    xs = xi[s * seg:min(n, (s + 1) * seg)]
                    counts[s], rests[s] = _sum_exp_plain(xs, xs, m, xs, (limits[0], limits[1]), K,
                                                         (poly_unshifted, poly_shifted))
                    tops[s] = m
            shift, d = merge(tops, counts, rests, K, poly)
            if not (-K.inf < shift < K.inf):
                _softmax_row(algo, xi, oi, lims, K, poly)
                continue
            inv = K.one / d
            for s in prange(count):
                for j in range(s * seg, min(n, (s + 1) * seg)):
                    # (a parallel region takes flat tuples only: the pair is built per use)
                    oi[j] = _divide(_exp_shifted(xi[j] - shift, K, (poly_unshifted, poly_shifted)), d, inv)

    return split


SPLIT_SOFTMAX = make_split_softmax(_merge_segments)
# Algorithms whose softmax a split row runs (the reloading and naive ones stay on one thread).
SPLIT_ALGORITHMS = (THREE_PASS, TWO_PASS)


def split_segment(n: int, threads: int) -> int:
    """Elements per segment: n over the threads, rounded up to whole online blocks."""
    per = -(-n // max(1, threads))
    return -(-per // BLOCK) * BLOCK


ALIGN_MIN_BYTES = 64 * 1024


def output_like(a: np.ndarray, raw: np.ndarray | None = None) -> np.ndarray:
    """An uninitialised C-contiguous array like ``a`` whose data starts half a
    page from ``a``'s (modulo 4096 bytes), in ``raw`` (bytes, a page longer
    than ``a``) or in a new buffer.

    A store to out[j] and a later load of a[j + k] whose addresses agree in
    their low 12 bits look alike to the CPU's memory disambiguation (4K
    aliasing), and the load waits: with the output a few cache lines ahead
    of the input modulo 4096, every kernel here ran 15-18% slower, and where
    NumPy's allocator puts a fresh array varies from process to process.
    Half a page apart is as far from that as two streams can be. Costs one
    page of padding and under a microsecond (the addresses are read in
    compiled code: from Python, ``ndarray.ctypes.data`` alone takes one);
    below ALIGN_MIN_BYTES, a plain np.empty_like.
    """
    if raw is None and a.nbytes < ALIGN_MIN_BYTES:
        return np.empty_like(a)
    return _half_page_apart(a, np.empty(a.nbytes + 4096, np.uint8) if raw is None else raw)


@_jit(cache=True)
def _half_page_apart(a, raw):
    """The view of ``raw`` that output_like returns."""
    start = (a.ctypes.data + 2048 - raw.ctypes.data) % 4096
    return raw[start:start + a.size * a.itemsize].view(a.dtype).reshape(a.shape)


# Outputs at least this large come from OUTPUTS, the pool: below it glibc's
# malloc keeps freed blocks and hands them out again (its mmap threshold
# grows to 32 MiB on 64-bit Linux), above it every array is fresh pages from
# the kernel, zeroed and faulted in by the kernel's first write: measured at
# 64 x 256000 float32, 3 to 4 ms a call, about the time of a whole copy of
# the same bytes (which writes into one preallocated buffer).
POOL_MIN_BYTES = 32 * 2**20


class _Owner:
    """What every array handed out by the pool views its buffer through (numpy
    keeps a non-array base as the base of all further views), so this object
    lives exactly as long as the last of them, and its end returns the
    buffer to the pool."""

    def __init__(self, view: np.ndarray, raw: np.ndarray):
        self.__array_interface__ = view.__array_interface__
        self.raw = raw


class OutputPool:
    """Output buffers reused once nothing refers to the arrays made from them.

    A caching allocator, as PyTorch's and CuPy's are on GPUs: an array the
    caller still holds (or any view of it) is never handed out again; when
    the last reference goes, its buffer is kept (``keep`` of them and
    ``max_bytes`` at most: the memory an idle process holds for nothing)
    for the next output of the same size. ``release()`` drops what is kept
    (the engine calls it through ``Backend.release`` before it measures
    peak memory, so the figure counts the output's memory).
    """

    def __init__(self, keep: int = 2, max_bytes: int = 2**30):
        self.keep = keep
        self.max_bytes = max_bytes
        self._free: list[np.ndarray] = []
        self._lock = threading.RLock()

    def empty_like(self, a: np.ndarray) -> np.ndarray:
        """An uninitialised array like ``a`` (as output_like), from the pool when one fits."""
        if a.nbytes < POOL_MIN_BYTES:
            return output_like(a)
        with self._lock:
            raw = next((r for r in self._free if r.nbytes == a.nbytes + 4096), None)
            if raw is not None:
                self._free.remove(raw)
        if raw is None:
            raw = np.empty(a.nbytes + 4096, np.uint8)
        owner = _Owner(output_like(a, raw), raw)
        weakref.finalize(owner, self._give_back, raw).atexit = False  # nothing to give back at exit
        return np.asarray(owner)

    def _give_back(self, raw: np.ndarray) -> None:
        with self._lock:
            if len(self._free) < self.keep and sum(r.nbytes for r in self._free) + raw.nbytes <= self.max_bytes:
                self._free.append(raw)

    def release(self) -> None:
        """Forget the kept buffers (their memory returns to the system)."""
        with self._lock:
            self._free.clear()


OUTPUTS = OutputPool()


# Below this many elements, or for a single row, the kernels run on the
# calling thread: starting numba's threads costs about 2 µs, which the second
# thread earns back only on a few thousand elements of its own.
PARALLEL_MIN_ELEMENTS = 16384


def drive(op, algo, a, b=None, target=None, dloss=None, ignore_index=-100, out=None, limits=None, params=None,
          split=None):
    """Run ``op`` with ``algo`` over the rows of ``a`` (C-contiguous, float32 or float64).

    Returns ``out`` (allocated when not given) and, for the cross-entropy
    ops, ``(loss, out)``. ``target`` (int64) and ``dloss`` are per row;
    ``limits`` are the naive exp's (overflow, underflow) thresholds of the
    input dtype; ``params`` an ``ExpParams``, for another exponential than
    the shipped one (the shipped one is compiled in; see _drive_shipped).
    A softmax with fewer rows than threads splits each row across them
    (``split``: the compiled splitter, default SPLIT_SOFTMAX).
    """
    no_target, no_values, no_limits = _placeholders(a.dtype)
    out = OUTPUTS.empty_like(a) if out is None else out
    ce = op == CROSS_ENTROPY or op == CROSS_ENTROPY_GRAD
    loss = np.empty(a.shape[0], a.dtype) if ce else no_values
    threads = a.shape[0] > 1 and a.size >= PARALLEL_MIN_ELEMENTS
    if op == SOFTMAX and algo in SPLIT_ALGORITHMS and a.size >= PARALLEL_MIN_ELEMENTS:
        workers = numba_threads()
        if 1 < workers and a.shape[0] < workers:
            p = exp_params(a.dtype.name) if params is None else params
            (SPLIT_SOFTMAX if split is None else split)(
                algo, a, out, no_limits if limits is None else np.array(limits, a.dtype),
                p.constants, *p.poly, split_segment(a.shape[1], workers))
            return out
    args = (op, algo, a, a if b is None else b, no_target if target is None else target,
            no_values if dloss is None else dloss, ignore_index, out, loss,
            no_limits if limits is None else np.array(limits, a.dtype))
    if params is None:
        _drive_shipped(threads, *args)
    else:
        (_drive_threads if threads else _drive_serial)(*args, params.constants, *params.poly)
    return (loss, out) if ce else out


@lru_cache(maxsize=None)
def _placeholders(dtype: np.dtype):
    """What drive passes for arguments an operation does not use (never written):
    an empty target array, an empty value array, and the limits [inf, 0]."""
    return np.zeros(0, np.int64), np.zeros(0, dtype), np.array([np.inf, 0.0], dtype)
