"""The correctness suite as units of work: one check record per (target, case, op).

``plan`` turns targets and cases into ``suite.Unit``s; each unit runs the
backend's op through ``calls.call`` (inside the backend's isolated worker)
and judges the output with ``figures.evaluate`` against the exact reference.
``convention_units`` adds what torch, jax and scipy themselves return on the
special cases, the reference rows of the overflow matrix.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from . import cases as case_catalog
from . import calls
from .cases import CE_OPS, Case
from .figures import evaluate, inputs_for, prime
from ..core.isolation import BackendFailure
from ..core.records import CheckRecord
from ..core.registry import cached
from ..core.selection import Target, choose
from .suite import Unit

REFERENCE_LIBRARIES = ("torch", "jax", "scipy")
# The short correctness summary ``run`` prints: a few telling cases, softmax only.
RUN_SUMMARY_CASES = ("randn_scale_3", "offset_1e4", "overflow_threshold", "underflow_threshold", "masked_prefix", "nan_entry")


def _shape_fields(case: Case, dtype: str) -> dict[str, Any]:
    """rows and vocab as the schema counts them: the reduced axis is the vocabulary."""
    shape = case.inputs(dtype).shape
    others = [n for i, n in enumerate(shape) if i != case.axis % len(shape)]
    return {"rows": int(np.prod(others)), "vocab": int(shape[case.axis]), "shape": list(shape), "axis": case.axis}


def base_record(target: Target, case: Case, op: str) -> CheckRecord:
    """A check record with the identity fields of (target, case, op) and no verdict yet."""
    return CheckRecord(
        backend=target.backend, device=target.device, dtype=target.dtype, **_shape_fields(case, target.dtype),
        case=case.name, op=op, special=case.special, expected=case.expected, judged=case.judged,
        scale=case.scale, anchor=case.anchor,
        options=(case.options.to_record() or None) if case.options is not None and op in CE_OPS else None,
    )


def failure_record(target: Target, case: Case, op: str, failure: BackendFailure) -> dict[str, Any]:
    """A backend that raised, crashed, hung or returned the wrong thing on this case."""
    record = base_record(target, case, op)
    # On a case with no single convention, an exception is a recorded behaviour;
    # a crash, hang or malformed output never is.
    recorded = case.expected is None and failure.kind == "raised"
    record.passed = None if recorded or failure.kind == "unavailable" else False
    record.behaviour = record.failure = failure.kind
    record.reason = failure.reason
    return record.as_dict()


def run_case(executor: Any, target: Target, case: Case, op: str, plugin_files: Sequence[str] = ()) -> dict[str, Any]:
    """Run one (target, case, op) through ``executor`` and return its check record."""
    backend = cached(plugin_files).get(target.backend)
    path = "value" if op in ("softmax", "log_softmax") else calls.route(backend, op)
    given = inputs_for(case, target.dtype, op, path)
    start = time.perf_counter()
    out = executor.run(
        (target.backend, target.device), calls.call, target.backend, tuple(plugin_files),
        target.device, target.dtype, op, given, case.axis, case.strided, case.options if op in CE_OPS else None,
    )
    seconds = time.perf_counter() - start
    with np.errstate(all="ignore"):
        verdict = evaluate(case, target.dtype, op, path, np.asarray(out, dtype=np.float64), given)
    record = base_record(target, case, op)
    record.path, record.seconds = path, round(seconds, 4)
    record.passed, record.behaviour, record.reason = verdict.passed, verdict.behaviour, verdict.reason
    for name, value in verdict.figures.items():
        setattr(record, name, value)
    return record.as_dict()


def _applicable(targets: Sequence[Target], chosen: Sequence[Case], plugin_files: Sequence[str],
                ops: Optional[Sequence[str]]) -> Iterator[tuple[Target, Case, str, str]]:
    """(target, case, op, path) for every check that applies, backend by backend."""
    registry = cached(plugin_files)
    for target in targets:
        backend = registry.get(target.backend)
        for case in chosen:
            if not case.applies_to(target.dtype):
                continue
            for op in case.ops:
                if (ops and op not in ops) or not calls.supports(backend, op):
                    continue
                # A case of loss options is checked where the backend declares them (the others: see skipped_options).
                if calls.options_unsupported(backend, op, case.options) is not None:
                    continue
                yield target, case, op, "value" if op in ("softmax", "log_softmax") else calls.route(backend, op)


def prime_references(targets: Sequence[Target], chosen: Sequence[Case], plugin_files: Sequence[str] = (),
                     ops: Optional[Sequence[str]] = None, workers: Optional[int] = None) -> int:
    """Compute every exact reference the checks of ``plan`` will need, on all cores, before they run."""
    needed = [(case, t.dtype, op, path) for t, case, op, path in _applicable(targets, chosen, plugin_files, ops)]
    needed += [(case, "float32", "softmax", "value") for case in chosen if case.special and case.applies_to("float32")]
    return prime(needed, workers)


def plan(targets: Sequence[Target], chosen: Sequence[Case], plugin_files: Sequence[str] = (), ops: Optional[Sequence[str]] = None) -> list[Unit]:
    """One unit per (target, case, op) that applies, backend by backend so workers are reused."""
    units = []
    for target, case, op, _ in _applicable(targets, chosen, plugin_files, ops):
        units.append(Unit(
            identity=base_record(target, case, op).workpoint,
            run=lambda ex, t=target, c=case, o=op: [run_case(ex, t, c, o, plugin_files)],
            on_failure=lambda f, t=target, c=case, o=op: [failure_record(t, c, o, f)],
            label=f"{target.backend} {target.dtype} {case.name} {op}",
        ))
    return units


def select_cases(names: Sequence[str], loss_options: Sequence[Any] = ()) -> list[Case]:
    """The named cases (all by default); ``UsageError`` for an unknown name.

    With ``loss_options`` (``CrossEntropyOptions``, from ``--loss-options``)
    the cross-entropy cases without options of their own, each run under each
    of those options: the plain catalog, checked with the user's options.
    """
    chosen = [case_catalog.get(name) for name in choose(names, case_catalog.names(), "case")]
    if not loss_options:
        return chosen
    return [replace(case, ops=tuple(op for op in case.ops if op in CE_OPS), options=options)
            for options in loss_options for case in chosen if case.options is None and set(case.ops) & set(CE_OPS)]


def skipped_options(targets: Sequence[Target], chosen: Sequence[Case], plugin_files: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(backend, reason) for each selected backend left out of cases of loss options it does not declare, once each."""
    registry = cached(plugin_files)
    found: dict[str, str] = {}
    for target in targets:
        backend = registry.get(target.backend)
        for case in chosen:
            for op in case.ops:
                if op in CE_OPS and calls.supports(backend, op) and target.backend not in found:
                    reason = calls.options_unsupported(backend, op, case.options)
                    if reason:
                        found[target.backend] = f"{reason}: its cases of loss options ({case.options.label()}, ...) are not checked"
    return list(found.items())


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

    return None if importlib.util.find_spec(library) else f"{library} is not installed"


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
                record = base_record(t, c, "softmax")
                record.reference, record.judged, record.behaviour = True, False, verdict.behaviour
                for name, value in verdict.figures.items():
                    setattr(record, name, value)
                return [record.as_dict()]

            def on_failure(f, t=target, c=case):
                return [{**failure_record(t, c, "softmax", f), "reference": True, "passed": None}]

            units.append(Unit(identity=base_record(target, case, "softmax").workpoint, run=run,
                              on_failure=on_failure, label=f"{target.backend} {case.name}"))
    return units
