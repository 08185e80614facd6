"""The shared correctness suite: error figures, tolerances, behaviour classes.

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

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional, Sequence

import numpy as np

from . import cases as case_catalog
from . import dtypes as dt
from . import execute, reference
from .cases import Case
from .isolation import BackendFailure
from .suite import Target, Unit

SLACK = 2.0
REFERENCE_LIBRARIES = ("torch", "jax", "scipy")


# --------------------------------------------------------------------------- inputs


def inputs_for(case: Case, dtype: str, op: str, path: str) -> dict[str, np.ndarray]:
    """The NumPy inputs of ``op``: x, or (y, dy) for an explicit VJP, or (x, dy)."""
    x = case.inputs(dtype)
    if op in execute.VALUE_OPS:
        return {"x": x}
    dy = case.targets(dtype) if op == "ce_grad" else case.cotangent(dtype)
    if path == "explicit" and op != "ce_grad":
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


@lru_cache(maxsize=None)
def exact(case: Case, dtype: str, op: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    """The exact (hi, lo) reference of ``op`` on ``case`` in 2-D row form, cached.

    ``lo`` is only needed to measure float64 outputs below their last bit.
    """
    with_lo = dtype == "float64"
    if op in execute.VALUE_OPS:
        fn = reference.softmax if op == "softmax" else reference.log_softmax
        return fn(_rows(case.inputs(dtype), case.axis), with_lo)
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
    if op == "log_softmax":
        return SLACK * ((2 + d + log_s) * u + sum_u)
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


@dataclass
class Verdict:
    """The figures of one output against the reference, and what they mean."""

    figures: dict[str, Any]
    passed: Optional[bool]
    behaviour: str
    reason: Optional[str]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


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
        if np.isposinf(out).any():
            return "inf"
        return "correct" if correct else "wrong"
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
    y = _rows(out, case.axis)
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


def _within_tolerance(case, dtype, op, path, x, hi, y, err, defined, given, figures) -> tuple[bool, Optional[str]]:
    if not defined.all() or y.size == 0:
        return bool(defined.all()), None if defined.all() else "the exact answer is undefined"
    if np.isnan(y).any():
        return False, "NaN where the exact answer is finite"
    rows_given = {k: _rows(v, case.axis) for k, v in given.items()}
    y_exact = exact(case, dtype, "softmax", "value")[0] if op in execute.GRADIENT_OPS else None
    tol = tolerance(op, path, dtype, x, hi, rows_given, y_exact)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(err == 0, 0.0, err / tol)
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    figures["error_ratio"] = float(ratio[worst])
    if ratio[worst] > 1:
        where = f"row {worst[0]}, element {worst[1]}" if ratio.shape[0] > 1 else f"element {worst[1]}"
        return False, (f"error {_fmt(err[worst])} is {_fmt(ratio[worst])}x its tolerance at {where}: "
                       f"got {_fmt(y[worst])}, exact {_fmt(hi[worst])}")
    if op == "softmax":
        # The row mass: catches a row flushed to zeros, which elementwise FTZ allowance would let through.
        fi = dt.info(dtype)
        d, _ = _row_shift_terms(x)
        rel = SLACK * ((2 + d) * fi.u + x.shape[1] * dt.accumulation_info(dtype).u)
        row_tol = np.sum(rel * np.abs(hi), axis=1) + x.shape[1] * fi.denorm_min + fi.u
        sums = np.array([abs(math.fsum(row) - 1.0) for row in y])
        bad = int(np.argmax(sums / row_tol))
        if sums[bad] > row_tol[bad]:
            return False, f"row {bad} sums to 1 {'+' if math.fsum(y[bad]) > 1 else '-'} {_fmt(sums[bad])}, tolerance {_fmt(row_tol[bad])}"
    return True, None


# --------------------------------------------------------------------------- records


def _shape_fields(case: Case, dtype: str) -> dict[str, Any]:
    """rows and vocab as the schema counts them: the reduced axis is the vocabulary."""
    shape = case.inputs(dtype).shape
    others = [n for i, n in enumerate(shape) if i != case.axis % len(shape)]
    return {"rows": int(np.prod(others)), "vocab": int(shape[case.axis]), "shape": list(shape), "axis": case.axis}


def base_record(target: Target, case: Case, op: str) -> dict[str, Any]:
    """The identity fields of a check record."""
    return {
        "kind": "check", "backend": target.backend, "device": target.device, "dtype": target.dtype,
        **_shape_fields(case, target.dtype), "case": case.name, "op": op,
        "special": case.special, "expected": case.expected, "judged": case.judged,
        **({"scale": case.scale} if case.scale is not None else {}),
        **({"anchor": case.anchor} if case.anchor is not None else {}),
    }


def failure_record(target: Target, case: Case, op: str, failure: BackendFailure) -> dict[str, Any]:
    """A backend that raised, crashed, hung or returned the wrong thing on this case."""
    # On a case with no single convention, an exception is a recorded behaviour;
    # a crash, hang or malformed output never is.
    recorded = case.expected is None and failure.kind == "raised"
    return {
        **base_record(target, case, op), "passed": None if recorded else False,
        "behaviour": failure.kind, "failure": failure.kind, "reason": failure.reason,
    }


def run_case(executor: Any, target: Target, case: Case, op: str, plugin_files: Sequence[str] = ()) -> dict[str, Any]:
    """Run one (target, case, op) through ``executor`` and return its check record."""
    backend = _registry(plugin_files).get(target.backend)
    path = "value" if op in execute.VALUE_OPS else execute.gradient_path(backend, op)
    given = inputs_for(case, target.dtype, op, path)
    start = time.perf_counter()
    out = executor.run(
        (target.backend, target.device), execute.call, target.backend, tuple(plugin_files),
        target.device, target.dtype, op, given, case.axis, case.strided,
    )
    seconds = time.perf_counter() - start
    with np.errstate(all="ignore"):
        verdict = evaluate(case, target.dtype, op, path, np.asarray(out, dtype=np.float64), given)
    return {
        **base_record(target, case, op), "path": path, "passed": verdict.passed,
        "behaviour": verdict.behaviour, "reason": verdict.reason, "failure": None,
        "seconds": round(seconds, 4), **verdict.figures,
    }


def _registry(plugin_files: Sequence[str]):
    from .registry import cached

    return cached(plugin_files)


def plan(targets: Sequence[Target], chosen: Sequence[Case], plugin_files: Sequence[str] = (), ops: Optional[Sequence[str]] = None) -> list[Unit]:
    """One unit per (target, case, op) that applies, backend by backend so workers are reused."""
    registry = _registry(plugin_files)
    units = []
    for target in targets:
        backend = registry.get(target.backend)
        for case in chosen:
            if not case.applies_to(target.dtype):
                continue
            for op in case.ops:
                if (ops and op not in ops) or not execute.supports(backend, op):
                    continue
                units.append(Unit(
                    identity={**base_record(target, case, op)},
                    run=lambda ex, t=target, c=case, o=op: [run_case(ex, t, c, o, plugin_files)],
                    on_failure=lambda f, t=target, c=case, o=op: [failure_record(t, c, o, f)],
                    label=f"{target.backend} {target.dtype} {case.name} {op}",
                ))
    return units


# --------------------------------------------------------------------------- conventions


def convention_output(library: str, x: np.ndarray, axis: int) -> np.ndarray:
    """What torch.softmax, jax.nn.softmax or scipy.special.softmax return for float32 ``x``."""
    x32 = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        if library == "torch":
            import torch

            return torch.softmax(torch.from_numpy(x32), dim=axis).numpy()
        if library == "jax":
            import jax

            return np.asarray(jax.nn.softmax(jax.numpy.asarray(x32), axis=axis))
        import scipy.special

        return scipy.special.softmax(x32, axis=axis)


def _library_missing(library: str) -> Optional[str]:
    import importlib.util

    module = "scipy" if library == "scipy" else library
    return None if importlib.util.find_spec(module) else f"{module} is not installed"


def convention_units(chosen: Sequence[Case]) -> list[Unit]:
    """Reference rows for the overflow matrix: the libraries' own softmax on the special cases."""
    units = []
    for library in REFERENCE_LIBRARIES:
        if _library_missing(library):
            continue
        target = Target(f"ref.{library}", "cpu", "float32")
        for case in chosen:
            if not case.special or not case.applies_to("float32"):
                continue

            def run(ex, t=target, c=case, lib=library):
                out = ex.run((t.backend, "cpu"), convention_output, lib, c.inputs("float32"), c.axis)
                verdict = evaluate(c, "float32", "softmax", "value", np.asarray(out, dtype=np.float64), {"x": c.inputs("float32")})
                return [{**base_record(t, c, "softmax"), "reference": True, "passed": None, "judged": False,
                         "behaviour": verdict.behaviour, "reason": None, "failure": None, **verdict.figures}]

            units.append(Unit(
                identity={**base_record(target, case, "softmax")}, run=run,
                on_failure=lambda f, t=target, c=case: [{**failure_record(t, c, "softmax", f), "reference": True, "passed": None}],
                label=f"{target.backend} {case.name}",
            ))
    return units


# --------------------------------------------------------------------------- command


def select_cases(names: Sequence[str]) -> list[Case]:
    """The named cases (all by default); ``UsageError`` for an unknown name."""
    from .cli import choose

    return [case_catalog.get(name) for name in choose(names, case_catalog.names(), "case")]


def summarise(records: Sequence[dict[str, Any]], out=sys.stdout) -> None:
    """Per-backend pass/fail counts and worst ULP, the overflow matrix, and each failure."""
    from tabulate import tabulate

    mine = [r for r in records if not r.get("reference")]
    groups: dict[tuple, list] = {}
    for r in mine:
        groups.setdefault((r["backend"], r["device"], r["dtype"]), []).append(r)
    rows = []
    dtype_order = {d: i for i, d in enumerate(dt.DTYPES)}
    for (backend, device, dtype), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], dtype_order.get(kv[0][2], 9))):
        judged = [r for r in rs if r.get("passed") is not None]
        worst = [r.get("max_ulp") for r in rs if r["op"] == "softmax" and not r.get("special") and r.get("passed")]
        rows.append([backend, device, dtype, sum(r["passed"] is True for r in judged), sum(r["passed"] is False for r in judged),
                     sum(r.get("passed") is None for r in rs), _fmt(max((w for w in worst if w is not None), default=0.0))])
    print(tabulate(rows, headers=["backend", "device", "dtype", "passed", "failed", "recorded", "worst ULP (softmax, passing)"],
                   tablefmt="simple", colalign=("left", "left", "left", "right", "right", "right", "right")), file=out)
    matrix = overflow_matrix(records)
    if matrix:
        print("\nOverflow behaviour (softmax; x = judged and failed):", file=out)
        print(tabulate(matrix[1:], headers=matrix[0], tablefmt="simple"), file=out)
    failures = sorted((r for r in mine if r.get("passed") is False), key=lambda r: (r["backend"], r["device"], dtype_order.get(r["dtype"], 9)))
    if failures:
        print(f"\n{len(failures)} failure(s):", file=out)
        for r in failures:
            print(f"FAIL {r['backend']} {r['device']} {r['dtype']} {r['case']} {r['op']}: {r.get('reason')}", file=out)


def overflow_matrix(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Rows: backend (dtype); columns: special cases; cells: behaviour of the softmax."""
    specials = [c.name for c in case_catalog.CASES if c.special]
    cells: dict[str, dict[str, str]] = {}
    for r in records:
        if r.get("op") != "softmax" or r.get("case") not in specials:
            continue
        label = f"{r['backend']} ({r['dtype']}, {r['device']})"
        cell = r["behaviour"] + (" x" if r.get("passed") is False else "")
        if r.get("subnormal") and r["case"] == "subnormal_output":
            cell = f"{cell}, {r['subnormal']}"
        cells.setdefault(label, {})[r["case"]] = cell
    if not cells:
        return []
    order = sorted(cells, key=lambda k: (k.startswith("ref."), k))
    return [["backend"] + specials] + [[k] + [cells[k].get(c, "") for c in specials] for k in order]


def cmd_check(args: argparse.Namespace) -> int:
    """``softmax-bench check``: exit 0 when every judged case passes, 1 otherwise."""
    from . import suite

    registry = suite.load(args)
    selection = suite.select(args, registry)
    chosen = select_cases(args.case)
    suite.report_skipped(selection)
    if not selection.targets:
        print("nothing to check: no selected backend is available here", file=sys.stderr)
        return 0
    results = suite.open_results(args)
    units = plan(selection.targets, chosen, selection.plugin_files)
    units += convention_units(chosen)  # what torch, jax and scipy do, beside every matrix
    try:
        jobs = args.jobs or min(os.cpu_count() or 1, 4)
        with suite.executor_for(args) as executor:
            suite.execute(units, results, executor, desc="check", jobs=jobs)
    except KeyboardInterrupt:
        print(f"interrupted: {len(results.records)} records kept in {results.path}", file=sys.stderr)
        return 130
    summarise(results.records)
    print(f"\nresults: {results.path}")
    failed = any(r.get("passed") is False for r in results.records if not r.get("reference"))
    return 1 if failed else 0


RUN_SUMMARY_CASES = ("randn_scale_3", "offset_1e4", "overflow_threshold", "underflow_threshold", "masked_prefix", "nan_entry")


def summary_for_run(selection, executor, results) -> list[dict[str, Any]]:
    """The short correctness summary ``run`` prints: a few telling cases, softmax only."""
    chosen = [case_catalog.get(name) for name in RUN_SUMMARY_CASES]
    units = plan(selection.targets, chosen, selection.plugin_files, ops=("softmax",))
    from .suite import execute as run_units

    made = run_units(units, results, executor, desc="correctness")
    lines = {}
    for r in made:
        key = (r["backend"], r["device"], r["dtype"])
        entry = lines.setdefault(key, {"pass": 0, "fail": [], "ulp": 0.0})
        if r.get("passed"):
            entry["pass"] += 1
            entry["ulp"] = max(entry["ulp"], r.get("max_ulp") or 0.0)
        elif r.get("passed") is False:
            entry["fail"].append(r["case"])
    for (backend, device, dtype), e in sorted(lines.items()):
        failed = f", FAILED {', '.join(e['fail'])}" if e["fail"] else ""
        print(f"correctness {backend} {device} {dtype}: {e['pass']}/{e['pass'] + len(e['fail'])} pass, worst {_fmt(e['ulp'])} ULP{failed}")
    return made
