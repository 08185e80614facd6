"""``run``'s timings as units of work: one ``TimingRecord`` per (target, size, mode, op, pass).

Each unit is independent: it runs ``timing.measure`` in its backend's worker,
which times the library's own copy of the same bytes beside the backend, so
no unit's record depends on which unit ran before it. A unit whose working
set does not fit the memory budget, or whose cold mode would need too many
buffers, is recorded as skipped with the reason instead of being run; one the
backend cannot provide (no VJP, no loss) is not planned.

``finalize`` runs over a whole run's records once they are in: the fastest
copy on each device for the same dtype, size and mode becomes every record's
``device_copy_gbps``, and what is faster than it by more than the margin is
``suspect``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ..core.formatting import human_bytes
from .memory import COLD_FACTOR, MAX_BUFFERS, buffer_count, llc_bytes
from ..core.records import TimingRecord, copy_fraction
from ..core.selection import Selection, Target
from ..core.sizes import Size, working_set
from .suite import Unit
from .clock import Budget
from .timing import ceiling_margin, measure, roofline, suspicion
from .calls import options_unsupported
from .workloads import unsupported


@dataclass(frozen=True)
class Plan:
    """What to time: sizes x modes x (op, pass) pairs, and extra (size, mode, op, pass) units."""

    sizes: Sequence[Size]
    modes: Sequence[str]
    passes: Sequence[tuple[str, str]]
    extra: Sequence[tuple[Size, str, str, str]] = ()
    # The cross-entropy's loss options (``CrossEntropyOptions``), each its own unit; () is the plain loss alone.
    loss_options: Sequence[Any] = ()

    def options_of(self, op: str) -> list[Any]:
        """The loss options ``op`` is timed under: each of ``loss_options`` for the cross-entropy, else None."""
        return list(self.loss_options) if op == "cross_entropy" and self.loss_options else [None]

    def items(self) -> list[tuple[Size, str, str, str]]:
        grid = [(size, mode, op, pass_) for (op, pass_) in self.passes for size in self.sizes for mode in self.modes]
        return list(dict.fromkeys(grid + list(self.extra)))


def _record(target: Target, size: Size, mode: str, op: str, pass_: str, library: str, options: Any = None) -> TimingRecord:
    return TimingRecord(backend=target.backend, device=target.device, dtype=target.dtype, rows=size.rows,
                        vocab=size.vocab, mode=mode, op=op, pass_=pass_, library=library,
                        options=(options.to_record() or None) if options is not None else None)


def skip_reason(size: Size, dtype: str, buffers: int, llc: int, max_bytes: Optional[int], op: str = "softmax",
                pass_: str = "fwd") -> Optional[str]:
    """Why a unit cannot be run within the limits, or ``None``."""
    if buffers > MAX_BUFFERS:
        return (f"skipped: a cold cache needs {buffers} inputs of {human_bytes(size.nbytes(dtype))}"
                f" to exceed {COLD_FACTOR} x the {human_bytes(llc)} cache; at most {MAX_BUFFERS}")
    need = working_set(size, dtype, buffers, op, pass_)
    if max_bytes and need > max_bytes:
        return f"skipped: working set {human_bytes(need)} exceeds --max-bytes {human_bytes(max_bytes)}"
    return None


def timing_units(selection: Selection, plan: Plan, budget: Budget, max_bytes: Optional[int],
                 threads: Optional[int] = None) -> list[Unit]:
    """One ``suite.Unit`` per (size, mode, op, pass, target) the backend can provide."""
    llcs = {device: llc_bytes(device) for device in {t.device for t in selection.targets}}
    plugin_files = tuple(selection.plugin_files)
    units = []
    for size, mode, op, pass_ in plan.items():
        for target, options in ((t, o) for o in plan.options_of(op) for t in selection.single_process):
            backend = selection.registry.get(target.backend)
            if unsupported(backend, op, pass_):
                continue
            llc = llcs[target.device]
            record = _record(target, size, mode, op, pass_, backend.library, options)
            label = f"{target.backend} {target.device} {target.dtype} {size.label} {mode} {op} {pass_}"
            if options is not None and options.active():
                label += f" {options.label()}"
            buffers = buffer_count(size.nbytes(target.dtype), mode, llc)
            reason = skip_reason(size, target.dtype, buffers, llc, max_bytes, op, pass_)
            # Loss options the backend does not declare: recorded as not run, with the reason (never dropped).
            lacking = options_unsupported(backend, "cross_entropy" if pass_ == "fwd" else "ce_grad", options) if op == "cross_entropy" else None
            if lacking:
                reason = f"skipped: {lacking}"
            if reason:
                record.skipped, record.reason = True, reason
                units.append(Unit(identity=record.workpoint, run=lambda ex, r=record: [r.as_dict()],
                                  on_failure=lambda f, r=record: [r.as_dict()], label=label))
                continue

            def run(ex, t=target, s=size, m=mode, o=op, p=pass_, lib=backend.library, llc=llc, lo=options):
                figures = ex.run((t.backend, t.device), measure, t.backend, t.device, t.dtype, s.rows, s.vocab, m,
                                 budget=budget, llc=llc, plugin_files=plugin_files, op=o, pass_=p,
                                 thread_count=threads, options=lo)
                return [_record(t, s, m, o, p, lib, lo).measured(figures).as_dict()]

            def failed(f, t=target, s=size, m=mode, o=op, p=pass_, lib=backend.library, lo=options):
                record = _record(t, s, m, o, p, lib, lo)
                if f.kind == "unavailable":  # a route that cannot apply: not run, not a failure
                    record.skipped, record.reason = True, f"skipped: {f.reason}"
                else:
                    record.reason, record.failure = f.reason, f.kind
                return [record.as_dict()]

            units.append(Unit(identity=record.workpoint, run=run, on_failure=failed, label=label))
    return units


def finalize(records: list[dict[str, Any]]) -> int:
    """Set every timing's ``device_copy_gbps`` (the fastest copy on its device at its dtype,
    size and mode in these records) and flag what beats it by more than the margin; returns
    how many records changed."""

    def key(r):
        return (r["device"], r["dtype"], r["rows"], r["vocab"], r.get("mode"))

    fastest: dict[tuple, float] = {}
    for r in records:
        if r.get("kind") == "timing" and r.get("copy_gbps"):
            fastest[key(r)] = max(fastest.get(key(r), 0.0), r["copy_gbps"])
    changed = 0
    for r in records:
        if r.get("kind") != "timing" or key(r) not in fastest:
            continue
        before = (r.get("device_copy_gbps"), r.get("suspect"))
        r["device_copy_gbps"] = fastest[key(r)]
        r["device_copy_fraction"] = copy_fraction(r.get("gbps"), fastest[key(r)])
        # The roofline against the same fastest copy, and the unit's own exp rate.
        r["roofline_s"], r["roofline_binds"] = roofline(r.get("bytes"), fastest[key(r)], r.get("exps"), r.get("exp_rate"))
        r["roofline_fraction"] = r["roofline_s"] / r["median_s"] if r["roofline_s"] and r.get("median_s") else None
        if not r.get("suspect"):
            margin = ceiling_margin(r.get("op", "softmax"), r.get("pass", "fwd"))
            r["suspect"] = suspicion(r.get("gbps"), fastest[key(r)], margin, r.get("median_s"))
        changed += (r.get("device_copy_gbps"), r.get("suspect")) != before
    return changed
