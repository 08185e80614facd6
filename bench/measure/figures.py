"""The figures of the correctness suite: exact reference per case, error magnitudes, tolerances, behaviour classes.

For every (backend, device, dtype, case, op) the backend's output is compared
with the exact reference (``reference.py``) and summarised as error
magnitudes: max ULP, max componentwise relative error, normwise error in
units of u, |sum - 1|, max absolute error. A case with one right answer is
judged against a tolerance that scales with the problem, after Blanchard,
Higham & Higham (2021): for a shifted softmax the componentwise error of y_i
is bounded by about (|x_i - max| + 2) u rounding the shift and the exp, plus
n u_acc for the sum, where u_acc is the unit roundoff of the accumulation
precision (float32 at least: half-precision inputs are expected to be summed
in float32, as torch does). Every bound carries a factor of 2 of slack.

Outputs below the smallest normal may be flushed to zero (FTZ is a hardware
mode, and JAX on CPU does it), but only while the flushed probability mass
stays within the tolerance of the row sum, so a row of zeros never passes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import numpy as np

from ..core import dtypes as dt
from ..backend import GRADIENT_OPS, IGNORE_INDEX
from .cases import Case
from ..core.formatting import format_figure

SLACK = 2.0


# --------------------------------------------------------------------------- inputs


def inputs_for(case: Case, dtype: str, op: str, path: str) -> dict[str, np.ndarray]:
    """The NumPy inputs of ``op``: x, or (y, dy) for an explicit VJP, or (x, dy); the
    cross-entropy ops add the targets and dloss (and the derived gradient its dy)."""
    x = case.inputs(dtype)
    if op in ("softmax", "log_softmax"):
        return {"x": x}
    if op in ("cross_entropy", "ce_grad"):
        given = {"x": x, "target": case.target_index(dtype), "dloss": case.dloss(dtype)}
        if op == "ce_grad" and path in ("derived", "autodiff") and case.options is None:
            given["dy"] = case.targets(dtype)
        return given
    dy = case.cotangent(dtype)
    if path == "explicit":
        forward = "softmax" if op == "softmax_vjp" else "log_softmax"
        hi, _ = exact(case, dtype, forward, "value")
        with np.errstate(over="ignore", invalid="ignore"):
            y = hi.astype(dt.np_dtype(dtype)).astype(np.float64)
        return {"y": _unrows(y, x.shape, case.axis), "dy": dy}
    return {"x": x, "dy": dy}


def _rows(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` as (rows, n) with the reduced axis last."""
    moved = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    if not moved.ndim:
        return moved.reshape(1, 1)
    return moved.reshape(int(np.prod(moved.shape[:-1])), moved.shape[-1])


def _unrows(rows: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    """Undo ``_rows``: back to ``shape`` with the reduced axis where it was."""
    moved = list(shape)
    moved.append(moved.pop(axis % len(shape)))
    return np.moveaxis(rows.reshape(moved), -1, axis)


Key = tuple[Case, str, str, str]
_EXACT: dict[Key, tuple[np.ndarray, np.ndarray]] = {}
# Fewer missing references than this are computed where they are needed: a
# pool of processes costs about a second to start.
PRIME_MIN = 16


def _key(case: Case, dtype: str, op: str, path: str) -> Key:
    # Only the VJPs' references depend on the path (an explicit VJP is exact
    # for the rounded forward output it was given); the rest are shared.
    return (case, dtype, op, path if op in ("softmax_vjp", "log_softmax_vjp") else "value")


def exact(case: Case, dtype: str, op: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    """The exact (hi, lo) reference of ``op`` on ``case`` in 2-D row form, cached.

    ``lo`` is only needed to measure float64 outputs below their last bit.
    """
    key = _key(case, dtype, op, path)
    found = _EXACT.get(key)
    if found is None:
        found = _EXACT[key] = _exact(*key)
    return found


def _exact_of_catalog_case(name: str, dtype: str, op: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    from . import cases

    return exact(cases.get(name), dtype, op, path)


def prime(needed: Iterable[tuple[Case, str, str, str]], workers: Optional[int] = None) -> int:
    """Compute the references of ``needed`` (case, dtype, op, path) in ``workers``
    processes (default: every core) before a check asks for them one at a time.

    The 200-bit arithmetic is pure Python under the lock of one interpreter;
    on a many-core host (the GPU machine's 16) this turns minutes into
    seconds. Only catalog cases are sent (a worker finds them by name); the
    rest, and small batches, are left to ``exact``. Returns how many it computed.
    """
    from . import cases as catalog

    workers = workers or os.cpu_count() or 1
    todo = []
    for case, dtype, op, path in needed:
        key = _key(case, dtype, op, path)
        if key not in _EXACT and key not in todo and catalog.find(case.name) is case:
            todo.append(key)
    if workers < 2 or len(todo) < PRIME_MIN:
        return 0
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    names = [(case.name, dtype, op, path) for case, dtype, op, path in todo]
    # spawn: the parent may hold threads (the check's drivers), which fork does not copy safely.
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
        for key, pair in zip(todo, pool.map(_exact_of_catalog_case, *zip(*names))):
            _EXACT[key] = pair
    return len(todo)


def _exact(case: Case, dtype: str, op: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    # Imported here: the timing engine uses this module's tolerances, never the
    # 200-bit arithmetic, and asv environments need not have it.
    from . import reference

    with_lo = dtype == "float64"
    if case.options is not None and op in ("cross_entropy", "ce_grad"):
        loss, grad = _options_exact(case, dtype)
        hi = loss.reshape(-1, 1) if op == "cross_entropy" else grad
        return hi, np.zeros_like(hi)  # rounded once to float64: no lo (loss_options.reference)
    if op in ("softmax", "log_softmax"):
        fn = reference.softmax if op == "softmax" else reference.log_softmax
        return fn(_rows(case.inputs(dtype), case.axis), with_lo)
    if op == "cross_entropy":
        # loss = lse(x) - x_target = -log_softmax(x)_target exactly; 0 on ignored rows.
        hi, lo = exact(case, dtype, "log_softmax", "value")
        return _at_targets(-hi, case.target_index(dtype)), _at_targets(-lo, case.target_index(dtype))
    if op == "ce_grad":
        return reference.log_softmax_grad(_rows(case.inputs(dtype), case.axis), _rows(case.targets(dtype), case.axis), with_lo)
    given = inputs_for(case, dtype, op, path)
    dy = _rows(given["dy"], case.axis)
    if path == "explicit" and op == "softmax_vjp":
        return reference.softmax_vjp(_rows(given["y"], case.axis), dy, with_lo)
    if path == "explicit" and op == "log_softmax_vjp":
        return reference.log_softmax_vjp(_rows(given["y"], case.axis), dy, with_lo)
    x = _rows(given["x"], case.axis)
    if op == "softmax_vjp":
        return reference.softmax_grad(x, dy, with_lo)
    return reference.log_softmax_grad(x, dy, with_lo)


_OPTIONS_EXACT: dict[tuple[Case, str], tuple[np.ndarray, np.ndarray]] = {}


def _options_exact(case: Case, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The exact (loss, dlogits) of a case with loss options, one 200-bit pass for both ops, cached."""
    found = _OPTIONS_EXACT.get((case, dtype))
    if found is None:
        from ..loss_options import reference as options_reference

        x = _rows(case.inputs(dtype), case.axis)
        found = _OPTIONS_EXACT[(case, dtype)] = options_reference(
            x, case.target_index(dtype), case.options, IGNORE_INDEX, case.dloss(dtype))
    return found


def _at_targets(rows: np.ndarray, target: np.ndarray) -> np.ndarray:
    """One value per row, at its target column, as a (rows, 1) column; 0 where the row is ignored."""
    ignored = target == IGNORE_INDEX
    picked = np.take_along_axis(rows, np.where(ignored, 0, target)[:, None], axis=1) if rows.shape[1] else np.zeros((len(rows), 1))
    return np.where(ignored[:, None], 0.0, picked)


# --------------------------------------------------------------------------- figures


def spacing(values: np.ndarray, dtype: str) -> np.ndarray:
    """The ULP of each value in ``dtype``, floored at the smallest normal.

    The floor keeps the figure meaningful below the normal range: flushing a
    subnormal output to zero (FTZ) costs less than one "ULP" instead of a
    million subnormal spacings; whether subnormals were kept is recorded
    separately.
    """
    fi = dt.info(dtype)
    digits = -round(math.log2(fi.eps))  # bits after the binary point
    magnitude = np.where(np.isfinite(values), np.abs(values), 0.0)
    _, exponent = np.frexp(magnitude)
    ulp = np.where(magnitude > 0, np.ldexp(1.0, exponent - 1 - digits), 0.0)
    return np.maximum(ulp, fi.tiny)


def _row_shift_terms(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|x_i - max| per element (0 where masked) and log s per row, from the inputs."""
    finite = np.isfinite(x)
    m = np.max(np.where(finite, x, -np.inf), axis=1, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.where(finite, np.abs(x - m), 0.0)
        log_s = np.log(np.sum(np.where(finite, np.exp(-d), 0.0), axis=1, keepdims=True))
    return d, np.abs(np.where(np.isfinite(log_s), log_s, 0.0))


def tolerance(op: str, path: str, dtype: str, x: np.ndarray, hi: np.ndarray, given: dict[str, np.ndarray],
              y_exact: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-element absolute tolerance of ``op`` (2-D row form), after BHH with slack.

    ``hi`` is the exact result, ``given`` the op's inputs in row form and
    ``y_exact`` the exact softmax of x (for gradients taken at x).
    """
    fi, acc = dt.info(dtype), dt.accumulation_info(dtype)
    n = max(x.shape[1], 1)
    d, log_s = _row_shift_terms(x)
    u, sum_u = fi.u, n * acc.u
    ftz = fi.tiny  # an output (or gradient entry) below the smallest normal may be flushed
    if op == "softmax":
        rel = SLACK * ((2 + d) * u + sum_u)
        # A value that could correctly come out subnormal may be flushed to zero
        # (FTZ); one subnormal spacing is the rounding there.
        return rel * np.abs(hi) + np.where(np.abs(hi) * (1 - rel) < fi.tiny, np.abs(hi), 0.0) + fi.denorm_min
    if op in ("log_softmax", "cross_entropy"):
        # The loss is -log_softmax at the target: the same bound, at that element.
        bound = SLACK * ((2 + d + log_s) * u + sum_u)
        return _at_targets(bound, given["target"]) if op == "cross_entropy" else bound
    dy = given["dy"]
    if op == "softmax_vjp":
        y = given["y"] if path == "explicit" else y_exact
        rel = (3 * u + sum_u) if path == "explicit" else ((2 + d) * u + sum_u)
        weight = np.sum(np.abs(dy) * y * rel, axis=1, keepdims=True)
        g = np.abs(np.sum(dy * y, axis=1, keepdims=True))
        return SLACK * (rel * y * (np.abs(dy) + g) + y * weight + u * np.abs(hi)) + ftz * (1 + np.abs(dy))
    # log_softmax_vjp, and its forms at x (autodiff) and ce_grad: dx = dy - p * sum(dy)
    if path == "explicit" and op == "log_softmax_vjp":
        with np.errstate(over="ignore"):
            p, rel = np.exp(given["y"]), 3 * u + sum_u
    else:
        p, rel = y_exact, (2 + d + log_s) * u + sum_u
    total = np.sum(np.abs(dy), axis=1, keepdims=True)
    return SLACK * (rel * p * total + u * (np.abs(dy) + np.abs(hi))) + ftz * (1 + np.abs(dy))



def softmax_tolerance_ulp(case: Case, dtype: str) -> float:
    """The softmax check's tolerance on ``case`` in ULP (``spacing``'s, as ``max_ulp`` is counted) at the
    largest entry of each row, the smallest over the rows: the entries that carry the probability mass.
    Entries further below their row's maximum are allowed more. For plots; the softmax is taken in float64."""
    x = _rows(case.inputs(dtype), case.axis)
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    hi = e / np.sum(e, axis=1, keepdims=True)
    ratio = tolerance("softmax", "value", dtype, x, hi, {}) / spacing(hi, dtype)
    return float(np.min(np.take_along_axis(ratio, np.argmax(hi, axis=1)[:, None], axis=1)))


def options_tolerance(op: str, dtype: str, x: np.ndarray, target: np.ndarray, options: Any, dloss: np.ndarray,
                      hi: np.ndarray) -> np.ndarray:
    """Absolute tolerance of the loss (op "cross_entropy") or its gradient ("ce_grad") under loss ``options``.

    The same first-order analysis as ``tolerance`` with slack, carried through
    each option (``loss_options``' definition): the transformed logits
    ``z = cap·tanh(x/cap)/T`` are off by a few u of |z| (plus tanh's argument
    error, damped by tanh'); the log-sum-exp by the largest such error plus
    its own rounding ((2 + |lse| + log s) u) and n u_acc for the sum; each
    term of the loss (nll, smoothing, z-loss) by its weight times those,
    the smoothing sum by n u_acc of its size, the z-loss by 2|lse| times the
    lse error plus 3u of z·lse²; a reduction adds rows u_acc of the sum of
    |losses| (and the mean the rounding of its divisor). The gradient entry
    ``scale·G_j·dz_j`` is off by the relative error of p_j (from its shift,
    its z and the lse) in each term, the rounding of dz_j (tanh' loses 2u
    absolute), and u of each factor. Inputs ``x`` in row form; never NaN
    (an undefined bound is 0: any error at such a place fails).
    """
    fi, acc = dt.info(dtype), dt.accumulation_info(dtype)
    u, ua = fi.u, acc.u
    o = options
    rows, n = x.shape
    finite = np.isfinite(x)
    keep = target != IGNORE_INDEX
    t = np.where(keep, target, 0)
    w = np.ones(n) if o.class_weight is None else np.asarray(o.class_weight, dtype=np.float64)
    eps, zl, temp = o.label_smoothing, o.z_loss, o.temperature
    with np.errstate(all="ignore"):
        xf = np.where(finite, x, 0.0)
        if o.softcap is None:
            z = xf / temp
            ez = 2 * u * np.abs(z) if temp != 1 else np.zeros_like(z)
            dz = np.full_like(z, 1 / temp)
            edz = np.full_like(z, u / temp if temp != 1 else 0.0)
        else:
            th = np.tanh(xf / o.softcap)
            z = o.softcap * th / temp
            damp = 1 - th * th
            ez = u * (np.abs(xf) / temp * damp + 6 * np.abs(z))  # tanh to a few u (a vectorised one: ~3 u)
            dz = damp / temp
            edz = u * (4 + 2 * np.abs(xf / o.softcap) * damp) / temp
        zm = np.where(finite, z, -np.inf)
        m = np.max(zm, axis=1, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.where(finite, np.exp(zm - m), 0.0)
        s = np.sum(e, axis=1, keepdims=True)
        p = e / s
        log_s = np.log(s)
        lse = m + log_s
        d = np.where(finite, m - z, 0.0)
        ez = np.where(finite, ez, 0.0)
        e_lse = np.max(ez, axis=1, keepdims=True, initial=0.0) + u * (2 + np.abs(lse) + np.abs(log_s)) + n * ua
        wt = np.where(keep, w[t], 0.0)[:, None]
        zt = np.take_along_axis(z, t[:, None], axis=1)
        ezt = np.take_along_axis(ez, t[:, None], axis=1)
        nll = wt * (lse - zt)
        smo = np.sum(np.where(finite, w * (lse - z), np.inf if eps else 0.0), axis=1, keepdims=True) / n
        loss = (1 - eps) * nll + (eps * smo if eps else 0.0) + zl * lse * lse
        e_nll = wt * (e_lse + ezt + 2 * u * (np.abs(lse) + np.abs(zt)))
        e_smo = (np.sum(np.where(finite, w * (e_lse + ez + 2 * u * (np.abs(lse) + np.abs(z))), 0.0), axis=1, keepdims=True) / n
                 + n * ua * np.abs(smo)) if eps else 0.0
        e_z = zl * (2 * np.abs(lse) * e_lse + 3 * u * lse * lse)
        row = np.where(keep[:, None], (1 - eps) * e_nll + eps * e_smo + e_z, 0.0)
        loss = np.where(keep[:, None], loss, 0.0)
        weight_sum = float(np.sum(wt))
        if op == "cross_entropy":
            if o.reduction == "none":
                tol = SLACK * (row + u * np.abs(hi))
            else:
                total = float(np.sum(row) + rows * ua * np.sum(np.abs(loss)))
                if o.reduction == "mean":
                    total = total / weight_sum + (rows * ua + 2 * u) * float(np.abs(hi).max(initial=0.0))
                tol = np.full_like(hi, SLACK * (total + u * float(np.abs(hi).max(initial=0.0))))
            return np.nan_to_num(tol + fi.denorm_min, nan=0.0)
        # ce_grad: g_j = scale_i · G_j · dz_j
        if o.reduction == "none":
            scale = np.abs(np.asarray(dloss, dtype=np.float64)).reshape(-1, 1)
        elif o.reduction == "sum":
            scale = np.full((rows, 1), abs(float(dloss)))
        else:
            scale = np.full((rows, 1), abs(float(dloss)) / weight_sum if weight_sum else 0.0)
        onehot = np.zeros_like(p)
        onehot[np.flatnonzero(keep), t[keep]] = 1.0
        big_g = (1 - eps) * wt * (p - onehot) + eps * (np.sum(w) * p - w) / n + 2 * zl * lse * p
        rel_p = (2 + d + np.abs(log_s)) * u + n * ua + ez + e_lse
        e_g = ((1 - eps) * wt + eps * np.sum(w) / n + 2 * zl * np.abs(lse)) * p * rel_p \
            + 2 * u * ((1 - eps) * wt * np.abs(p - onehot) + eps * (np.sum(w) * p + w) / n + 2 * zl * np.abs(lse) * p) \
            + 2 * zl * p * e_lse
        err = scale * (e_g * np.abs(dz) + np.abs(big_g) * edz) + (3 * u + (rows * ua if o.reduction == "mean" else 0.0)) * np.abs(hi)
        tol = np.where(keep[:, None], SLACK * err, 0.0) + fi.tiny * (1 + scale)
        return np.nan_to_num(tol, nan=0.0)


@dataclass
class Verdict:
    """The figures of one output against the reference, and what they mean."""

    figures: dict[str, Any]
    passed: Optional[bool]
    behaviour: str
    reason: Optional[str]


def classify(out: np.ndarray, op: str, correct: bool) -> str:
    """The behaviour class of an output (2-D row form)."""
    if out.size == 0:
        return "correct" if correct else "wrong"
    nan = np.isnan(out)
    if nan.all():
        return "nan-row"
    if nan.any():
        return "some-nan"
    if op != "softmax":
        if correct:
            return "correct"
        return "inf" if np.isposinf(out).any() else "wrong"
    if np.isinf(out).any():
        return "inf"
    if correct:
        return "correct"
    if (out == 0).all():
        return "zeros"
    n = out.shape[1]
    if np.allclose(out, 1.0 / n, rtol=1e-2, atol=0):
        return "uniform"
    if ((out == 0) | (out == 1)).all() and (out.sum(axis=1) == 1).all():
        return "one-hot"
    return "wrong"


def evaluate(case: Case, dtype: str, op: str, path: str, out: np.ndarray, given: dict[str, np.ndarray]) -> Verdict:
    """Error figures of ``out`` (the backend's output, NumPy) and the verdict for the case."""
    hi, lo = exact(case, dtype, op, path)
    x = _rows(case.inputs(dtype), case.axis)
    y = out.reshape(-1, 1) if op == "cross_entropy" else _rows(out, case.axis)
    fi = dt.info(dtype)
    defined = ~np.isnan(hi).all(axis=1) if hi.size else np.ones(len(hi), bool)
    with np.errstate(invalid="ignore", over="ignore"):
        same_inf = np.isinf(hi) & (y == hi)
        err = np.where(same_inf, 0.0, np.abs((y - hi) - lo))
        err = np.where(np.isnan(err) & ~np.isnan(hi), np.inf, err)
        judged_err = err[defined]
        ulp = (err / spacing(hi, dtype))[defined]
        # Relative error where it means something: below the smallest normal the
        # dtype itself has no relative precision left (see spacing()).
        normal = np.isfinite(hi) & (np.abs(hi) >= fi.tiny) & defined[:, None]
        rel = err[normal] / np.abs(hi[normal])
    figures: dict[str, Any] = {
        "max_ulp": float(ulp.max()) if ulp.size else 0.0,
        "max_rel": float(np.max(rel, initial=0.0)),
        "max_abs": float(judged_err.max()) if judged_err.size else 0.0,
    }
    finite_ref = np.isfinite(hi[defined])
    if finite_ref.any():
        denom = np.sum(np.abs(hi[defined][finite_ref]))
        figures["norm_err_u"] = float(np.sum(judged_err[finite_ref]) / denom / fi.u) if denom else 0.0
    if op == "softmax" and y.size:
        sums = [abs(math.fsum(row) - 1.0) if np.isfinite(row).all() else math.inf for row in y[defined]]
        figures["sum_err"] = max(sums, default=0.0)
    tiny_ref = (np.abs(hi) > 0) & (np.abs(hi) < fi.tiny) & defined[:, None]
    if op == "softmax" and tiny_ref.any():
        flushed = (y[tiny_ref] == 0)
        figures["subnormal"] = "flushed" if flushed.all() else "kept" if not flushed.any() else "partly flushed"

    correct, reason = _within_tolerance(case, dtype, op, path, x, hi, y, err, defined, given, figures)
    behaviour = classify(y, op, correct)
    if case.expected is None:
        passed, reason = None, None
    elif case.expected == "correct":
        passed = correct
        if not passed and behaviour not in ("correct", "wrong"):
            reason = f"{behaviour} (expected correct): {reason}"
    else:
        passed = behaviour == case.expected
        reason = None if passed else f"{behaviour} (expected {case.expected})"
    return Verdict(figures, passed, behaviour, reason)


def _judge(err, tol, y, hi, figures) -> tuple[bool, Optional[str]]:
    """Every element's error within its tolerance; else the worst one, named (its ratio is recorded)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(err == 0, 0.0, err / tol)
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    figures["error_ratio"] = float(ratio[worst])
    if ratio[worst] > 1:
        where = f"row {worst[0]}, element {worst[1]}" if ratio.shape[0] > 1 else f"element {worst[1]}"
        return False, (f"error {format_figure(err[worst])} is {format_figure(ratio[worst])}x its tolerance at {where}: "
                       f"got {format_figure(y[worst])}, exact {format_figure(hi[worst])}")
    return True, None


def _within_tolerance(case, dtype, op, path, x, hi, y, err, defined, given, figures) -> tuple[bool, Optional[str]]:
    if not defined.all() or y.size == 0:
        return bool(defined.all()), None if defined.all() else "the exact answer is undefined"
    if np.isnan(y).any():
        return False, "NaN where the exact answer is finite"
    if case.options is not None and op in ("cross_entropy", "ce_grad"):
        tol = options_tolerance(op, dtype, x, case.target_index(dtype), case.options, case.dloss(dtype), hi)
        return _judge(err, tol, y, hi, figures)
    rows_given = {k: _rows(v, case.axis) for k, v in given.items() if k in ("x", "y", "dy")}
    if op in ("cross_entropy", "ce_grad"):
        rows_given.update(target=case.target_index(dtype), dy=_rows(case.targets(dtype), case.axis))
    y_exact = exact(case, dtype, "softmax", "value")[0] if op in GRADIENT_OPS else None
    tol = tolerance(op, path, dtype, x, hi, rows_given, y_exact)
    correct, reason = _judge(err, tol, y, hi, figures)
    if not correct:
        return correct, reason
    if op == "softmax":
        # The row mass: catches a row flushed to zeros, which elementwise FTZ allowance would let through.
        fi = dt.info(dtype)
        d, _ = _row_shift_terms(x)
        rel = SLACK * ((2 + d) * fi.u + x.shape[1] * dt.accumulation_info(dtype).u)
        row_tol = np.sum(rel * np.abs(hi), axis=1) + x.shape[1] * fi.denorm_min + fi.u
        sums = np.array([abs(math.fsum(row) - 1.0) for row in y])
        bad = int(np.argmax(sums / row_tol))
        if sums[bad] > row_tol[bad]:
            return False, f"row {bad} sums to 1 {'+' if math.fsum(y[bad]) > 1 else '-'} {format_figure(sums[bad])}, tolerance {format_figure(row_tol[bad])}"
    return True, None
