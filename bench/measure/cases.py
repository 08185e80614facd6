"""The case catalog of the correctness suite: named, documented inputs.

Every case builds float64 logits for a given dtype (thresholds differ per
dtype); the suite rounds them to that dtype, and the rounded values are what
both the backend and the exact reference see. ``expected`` is the behaviour
class a correct implementation shows ("correct" for cases with one right
answer), or ``None`` where the field has no single convention and the case is
recorded, not judged. ``anchor`` is the number of the case in ANCHORS.md's
"cases that sloppy implementations fail".
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import numpy as np

from ..core import dtypes as dt
from ..backend import GRADIENT_OPS, IGNORE_INDEX, VALUE_OPS
from ..core.dtypes import FloatInfo
from ..loss_options import CrossEntropyOptions

SOFTMAX_OPS = ("softmax", "log_softmax")
CE_OPS = ("cross_entropy", "ce_grad")
FULL = VALUE_OPS + GRADIENT_OPS
VOCABS = (32000, 50257, 128256, 151936, 256000)


@dataclass(frozen=True)
class Case:
    """One named input with what a correct softmax must do with it."""

    name: str
    doc: str
    make: Callable[[FloatInfo, np.random.Generator], np.ndarray]
    ops: tuple[str, ...] = SOFTMAX_OPS
    axis: int = -1
    expected: Optional[str] = "correct"
    special: bool = False  # a column of the overflow-behaviour matrix
    dtypes: Optional[tuple[str, ...]] = None  # None: every dtype
    strided: bool = False
    scale: Optional[float] = None  # logit scale, for error-vs-scale plots
    anchor: Optional[int] = None
    # Cross-entropy targets from the logits of each row (reduced axis last), an
    # index or IGNORE_INDEX per row; None: the second largest logit.
    pick: Optional[Callable[[np.ndarray], np.ndarray]] = None
    # The loss options of the cross-entropy ops (None: the plain per-row loss); a case with
    # options is checked only on backends that declare them (see loss_options.unsupported).
    options: Optional[CrossEntropyOptions] = None

    @property
    def judged(self) -> bool:
        return self.expected is not None

    def applies_to(self, dtype: str) -> bool:
        return self.dtypes is None or dtype in self.dtypes

    def inputs(self, dtype: str) -> np.ndarray:
        """The logits for ``dtype``: float64 values exactly representable in it."""
        return _inputs(self, dtype)

    def cotangent(self, dtype: str) -> np.ndarray:
        """A seeded random dy of the input's shape, representable in ``dtype``."""
        return _cotangent(self, dtype)

    def target_index(self, dtype: str) -> np.ndarray:
        """The cross-entropy target of each row (reduced axis last, rows flattened): int64, IGNORE_INDEX = no loss."""
        return _target_index(self, dtype)

    def dloss(self, dtype: str) -> np.ndarray:
        """A seeded upstream gradient of each row's loss, in [0.5, 2), representable in ``dtype``.

        Under a reducing option (``mean``, ``sum``) the loss is one number and so is its
        upstream gradient: the first row's, as a 0-d array.
        """
        dloss = _dloss(self, dtype)
        return np.asarray(dloss[0]) if self.reduced else dloss

    @property
    def reduced(self) -> bool:
        """Whether the cross-entropy ops return one number (reduction mean or sum), not one per row."""
        return self.options is not None and self.options.reduction != "none"

    def targets(self, dtype: str) -> np.ndarray:
        """dy = -dloss * onehot(target) in the input's shape: the cross-entropy gradient's cotangent of log_softmax."""
        return _targets(self, dtype)


def _rng(name: str, salt: str = "") -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{name}/{salt}".encode()))


def _round(x: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        return x.astype(dt.np_dtype(dtype)).astype(np.float64)


@lru_cache(maxsize=None)
def _inputs(case: Case, dtype: str) -> np.ndarray:
    x = _round(np.asarray(case.make(dt.info(dtype), _rng(case.name)), dtype=np.float64), dtype)
    x.setflags(write=False)
    return x


@lru_cache(maxsize=None)
def _cotangent(case: Case, dtype: str) -> np.ndarray:
    x = _inputs(case, dtype)
    dy = _round(_rng(case.name, "dy").standard_normal(x.shape), dtype)
    dy.setflags(write=False)
    return dy


def _second_largest(rows: np.ndarray) -> np.ndarray:
    order = np.argsort(np.where(np.isnan(rows), -np.inf, rows), axis=-1, kind="stable")
    return order[:, -min(2, rows.shape[-1])]


@lru_cache(maxsize=None)
def _target_index(case: Case, dtype: str) -> np.ndarray:
    x = np.moveaxis(_inputs(case, dtype), case.axis, -1)
    rows = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
    if rows.shape[-1] == 0:
        target = np.full(rows.shape[0], IGNORE_INDEX)
    else:
        target = (case.pick or _second_largest)(rows)
    target = np.asarray(target, dtype=np.int64)
    target.setflags(write=False)
    return target


@lru_cache(maxsize=None)
def _dloss(case: Case, dtype: str) -> np.ndarray:
    n_rows = len(_target_index(case, dtype))
    dloss = _round(_rng(case.name, "dloss").uniform(0.5, 2.0, n_rows), dtype)
    dloss.setflags(write=False)
    return dloss


@lru_cache(maxsize=None)
def _targets(case: Case, dtype: str) -> np.ndarray:
    x = np.moveaxis(_inputs(case, dtype), case.axis, -1)
    target, dloss = _target_index(case, dtype), _dloss(case, dtype)
    dy = np.zeros((len(target), x.shape[-1] if x.ndim else 1))
    kept = target != IGNORE_INDEX
    dy[np.flatnonzero(kept), target[kept]] = -dloss[kept]
    dy = np.moveaxis(dy.reshape(x.shape), -1, case.axis)
    dy.setflags(write=False)
    return dy


def _randn(shape, scale=1.0, offset=0.0):
    return lambda fi, rng: offset + scale * rng.standard_normal(shape)


def _row(*values):
    return lambda fi, rng: np.array([values], dtype=np.float64)


def _with(shape, index, value, scale=3.0):
    def make(fi, rng):
        x = scale * rng.standard_normal(shape)
        x[index] = value
        return x

    return make


def _masked_long(fi, rng):
    x = rng.standard_normal((2, 10000)) * 3
    x[:, :9000] = -np.inf  # longer than one online chunk (4096): the running max stays -inf for two chunks
    return x


# --------------------------------------------------------------------------- loss options (issue 22)
# Each option alone, a combination, and the hostile cases of each; small (8 x 256) because the
# exact reference of the options (loss_options.reference) is plain 200-bit mpmath.
OPT_SHAPE = (8, 256)


def _ignoring(*rows: int, pick: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> Callable[[np.ndarray], np.ndarray]:
    """Targets at each row's second largest logit (or ``pick``'s), IGNORE_INDEX on ``rows``."""
    def choose(x: np.ndarray) -> np.ndarray:
        target = np.array((pick or _second_largest)(x), dtype=np.int64)
        target[[r for r in rows if r < len(target)]] = IGNORE_INDEX
        return target

    return choose


def _class_weights(vocab: int) -> tuple[float, ...]:
    """Weights 0, 0.5, 1, 2 and 3 in turn: exact in every dtype, and zero for every fifth class."""
    return tuple(float(w) for w in np.resize([0.0, 0.5, 1.0, 2.0, 3.0], vocab))


def _zero_weight_targets(x: np.ndarray) -> np.ndarray:
    """Rows 0 and 3 target a class of weight 0 (class 5k); the others their second largest logit."""
    target = _second_largest(x)
    target[[0, 3]] = [5, 10]
    return target


def _masked_one(shape, scale=3.0):
    return _with(shape, (slice(None), 9), -np.inf, scale)


_W = _class_weights(OPT_SHAPE[1])
_EVERY_FOURTH = _ignoring(1, 5)


def _opt(name, doc, options, make=None, pick=None, ops=CE_OPS, **kw) -> Case:
    return Case(name, doc, make or _randn(OPT_SHAPE, 3.0), ops, pick=pick or _EVERY_FOURTH, options=options, **kw)


OPTION_CASES: tuple[Case, ...] = (
    _opt("opt_mean", "reduction=mean over rows 1 and 5 ignored: divide by the 6 rows kept, not by 8", CrossEntropyOptions(reduction="mean")),
    _opt("opt_sum", "reduction=sum, rows 1 and 5 ignored", CrossEntropyOptions(reduction="sum")),
    _opt("opt_smoothing", "label_smoothing=0.1", CrossEntropyOptions(label_smoothing=0.1)),
    _opt("opt_smoothing_0", "label_smoothing=0 with a masked (-inf) logit, reduction=sum: 0·inf must not make NaN",
         CrossEntropyOptions(reduction="sum", label_smoothing=0.0), make=_masked_one(OPT_SHAPE)),
    _opt("opt_smoothing_1", "label_smoothing=1: the target is uniform, the target logit carries no extra weight",
         CrossEntropyOptions(label_smoothing=1.0)),
    _opt("opt_z_loss", "z_loss=1e-4 on 30 + 3·randn: the term z·lse² (about 0.1) in the loss and 2z·lse·p in the gradient",
         CrossEntropyOptions(z_loss=1e-4), make=_randn(OPT_SHAPE, 3.0, 30.0)),
    _opt("opt_z_loss_lse_300", "z_loss=1e-4 on 300 + randn: lse² ≈ 9.3e4 overflows float16 (65504) unless squared in float32",
         CrossEntropyOptions(z_loss=1e-4), make=_randn(OPT_SHAPE, 1.0, 300.0)),
    _opt("opt_softcap", "softcap=30 on 10·randn (Gemma 2's cap·tanh(x/cap)), tanh' in the gradient",
         CrossEntropyOptions(softcap=30.0), make=_randn(OPT_SHAPE, 10.0)),
    _opt("opt_softcap_huge", "softcap=30 on logits up to ±6e4: capped before any shift, every z within ±30",
         CrossEntropyOptions(softcap=30.0), make=lambda fi, rng: rng.uniform(-6e4, 6e4, OPT_SHAPE)),
    _opt("opt_temperature_small", "temperature=1e-3: z = x/T up to ±1e4, the gradient carries 1/T = 1000",
         CrossEntropyOptions(temperature=1e-3)),
    _opt("opt_temperature_huge", "temperature=1e6: z = x/T ≈ 1e-6, a nearly uniform row", CrossEntropyOptions(temperature=1e6)),
    _opt("opt_class_weight", "class weights 0, 0.5, 1, 2, 3 in turn; rows 0 and 3 target a class of weight 0 (per-row loss)",
         CrossEntropyOptions(class_weight=_W), pick=_ignoring(1, 5, pick=_zero_weight_targets)),
    _opt("opt_class_weight_mean", "class weights with reduction=mean: the sum over Σ w_t of kept rows (torch's weighted mean)",
         CrossEntropyOptions(reduction="mean", class_weight=_W), pick=_ignoring(1, 5, pick=_zero_weight_targets)),
    _opt("opt_all_ignored_mean", "reduction=mean with every row ignored: 0/0, a NaN loss (torch's convention, judged)",
         CrossEntropyOptions(reduction="mean"), pick=lambda rows: np.full(len(rows), IGNORE_INDEX), ops=("cross_entropy",),
         expected="nan-row"),
    _opt("opt_all_ignored_mean_grad", "the gradient of that mean: torch gives 0 (no row contributes), 0/0 gives NaN; "
         "no single convention, recorded", CrossEntropyOptions(reduction="mean"), pick=lambda rows: np.full(len(rows), IGNORE_INDEX),
         ops=("ce_grad",), expected=None),
    _opt("opt_combined", "all six: mean, label_smoothing=0.1, z_loss=1e-4, softcap=30, temperature=0.7, class weights; rows 1 and 5 ignored",
         CrossEntropyOptions(reduction="mean", label_smoothing=0.1, z_loss=1e-4, softcap=30.0, temperature=0.7, class_weight=_W),
         make=_randn(OPT_SHAPE, 10.0), pick=_ignoring(1, 5, pick=_zero_weight_targets)),
)


CASES: tuple[Case, ...] = (
    # Random logits at growing scales: the error grows with max - x_i (BHH).
    *(
        Case(f"randn_scale_{s:g}", f"{s:g} * randn, 8 rows x 1000", _randn((8, 1000), s), FULL if s <= 10 else SOFTMAX_OPS, scale=s,
             anchor=5 if s == 4 else None)
        for s in (1, 3, 4, 10, 30, 100)
    ),
    Case("offset_1e4", "1e4 + randn, 4 x 1000: naive overflows; exp(x - lse) loses abs(lse) units of roundoff", _randn((4, 1000), 1.0, 1e4), anchor=1),
    *(Case(f"vocab_{n}", f"one row of 3 * randn over a {n}-token vocabulary", _randn((1, n), 3.0), SOFTMAX_OPS + CE_OPS) for n in VOCABS),
    Case("shape_1d", "a 1-D input of 1000", _randn((1000,), 3.0)),
    Case("shape_3d", "3-D input (2, 3, 500), softmax over the last axis", _randn((2, 3, 500), 3.0)),
    Case("shape_3d_axis1", "3-D input (2, 500, 3), softmax over axis 1", _randn((2, 500, 3), 3.0), FULL, axis=1),
    Case("non_contiguous", "8 x 1000 taken as every other element of a wider buffer", _randn((8, 1000), 3.0), FULL, strided=True),
    Case("empty_rows", "shape (2, 0): the output is an empty array of the same shape", lambda fi, rng: np.zeros((2, 0))),
    Case("temperature_1e-30", "randn / 1e-30: a one-hot row (float16 overflows to inf, so not for float16)",
         lambda fi, rng: rng.standard_normal((4, 100)) / 1e-30, dtypes=("float64", "float32", "bfloat16"), anchor=9),
    Case("temperature_1e30", "randn / 1e30: a uniform row", lambda fi, rng: rng.standard_normal((4, 100)) / 1e30, anchor=9),
    *(Case(f"uniform_{n}", f"a constant row of {n}: a float16 accumulator stalls at 2048, bfloat16 at 256, and overflows at 65504",
           lambda fi, rng, n=n: np.zeros((1, n)), anchor=4) for n in (512, 4096, 65536)),
    Case("log_softmax_tail", "log_softmax([0, -20]) = -2.06e-9 (float32); torch, jax and scipy return 0", _row(0.0, -20.0), anchor=6),
    Case("log_of_softmax", "[0, -100]: log(softmax(x)) gives -99.983, log_softmax -100", _row(0.0, -100.0), anchor=7),
    Case("ce_large_margin", "cross-entropy on [0, 200], target 0: the loss is exactly 200 and the gradient finite; "
         "via log(softmax) the loss is inf and the gradient NaN", _row(0.0, 200.0), ("log_softmax",) + CE_OPS, anchor=7),
    Case("ce_target_max", "cross-entropy with each row's target at its largest logit: the smallest losses",
         _randn((8, 1000), 3.0), CE_OPS, pick=lambda rows: np.argmax(rows, axis=-1)),
    Case("ce_target_tiny", "cross-entropy with each row's target at its smallest logit: p_target near 1e-8",
         _randn((8, 1000), 3.0), CE_OPS, pick=lambda rows: np.argmin(rows, axis=-1)),
    Case("ce_target_masked", "cross-entropy with the target at a masked (-inf) logit: loss +inf, gradient finite; recorded",
         _with((2, 64), (slice(None), 7), -np.inf), CE_OPS, expected=None, pick=lambda rows: np.full(len(rows), 7)),
    Case("ce_ignore_index", f"cross-entropy with every other row's target {IGNORE_INDEX} (ignore_index): loss 0 and gradient 0 there",
         _randn((8, 1000), 3.0), CE_OPS,
         pick=lambda rows: np.where(np.arange(len(rows)) % 2 == 1, IGNORE_INDEX, _second_largest(rows))),
    Case("log_softmax_equal_large", "log_softmax([1e8, 1e8]) = -0.693; x - (max + log s) gives 0 (not float16: 1e8 overflows)",
         _row(1e8, 1e8), dtypes=("float64", "float32", "bfloat16"), anchor=8),
    # Special values: the columns of the overflow-behaviour matrix.
    Case("overflow_threshold", "[L + 1, L, 0] with L = log(max finite) of the dtype: exp(x) overflows; the last output is subnormal",
         lambda fi, rng: np.array([[fi.log_max + 1, fi.log_max, 0.0]]), special=True, anchor=2),
    Case("underflow_threshold", "every logit 10 below log(smallest subnormal): every exp(x) is 0, the answer exactly 1/n",
         lambda fi, rng: np.full((2, 8), np.log(fi.denorm_min) - 10), special=True, anchor=2),
    Case("subnormal_output", "[0, log(tiny) - 3]: the second output is subnormal; kept or flushed is recorded",
         lambda fi, rng: np.array([[0.0, fi.log_tiny - 3]]), special=True),
    Case("masked_prefix", "[-inf, -inf, 0, 1]: an online softmax starting at m = -inf must not compute -inf - -inf",
         _row(-np.inf, -np.inf, 0.0, 1.0), FULL, special=True, anchor=3),
    Case("masked_long", "2 x 10000 with the first 9000 masked (-inf), across online chunks", _masked_long, FULL),
    Case("one_neg_inf", "one -inf among finite logits: that output is exactly 0", _with((2, 64), (0, 5), -np.inf), FULL),
    Case("all_neg_inf", "a fully masked row: NaN (torch, jax, scipy), zeros (torch._safe_softmax) or uniform; no single convention",
         lambda fi, rng: np.full((2, 8), -np.inf), expected=None, special=True, anchor=10),
    Case("pos_inf", "one +inf: the limit is one-hot, the libraries give NaN; no single convention",
         _with((2, 8), (slice(None), 3), np.inf), expected=None, special=True, anchor=9),
    Case("nan_entry", "one NaN: the whole row is NaN (NaN must not be hidden)", _with((2, 8), (slice(None), 2), np.nan),
         expected="nan-row", special=True),
    *OPTION_CASES,
)

_BY_NAME = {case.name: case for case in CASES}
# The columns of the overflow-behaviour matrix, in catalog order.
SPECIAL_CASES = tuple(case.name for case in CASES if case.special)


def names() -> list[str]:
    return list(_BY_NAME)


def get(name: str) -> Case:
    """The case called ``name``; ``KeyError`` naming the valid ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown case {name!r}; valid: {', '.join(_BY_NAME)}") from None


def find(name: str) -> Optional[Case]:
    """The catalog case called ``name``, or None."""
    return _BY_NAME.get(name)
