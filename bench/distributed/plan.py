"""Distributed (``parallel="vocab"``) backends in ``check`` and ``run``: units over world sizes.

A vocabulary-parallel backend is checked and timed the same way as any
other, once per world size asked (``--world-size``): its check records carry
the exact-reference figures of the gathered output, its timing records (warm
and cold, as any backend's) the slowest rank's time, the collective count and
the bytes each rank sends.
The ranks of each (device, world size) are one ``sharded.RankGroup``,
started once and reused; the group is the isolation (a rank that hangs or
dies is that unit's recorded failure, and every rank of the group goes with
it), so these units run in this process rather than in a worker.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Optional, Sequence

import numpy as np

from . import sharded
from ..measure.cases import Case
from ..measure.checks import base_record, failure_record
from ..measure.calls import route
from ..core.dtypes import info
from ..measure.figures import evaluate, inputs_for
from ..measure.memory import MAX_BUFFERS, llc_bytes
from ..core.records import TimingRecord
from ..core.registry import cached
from ..core.selection import Target
from ..core.sizes import Size
from ..measure.suite import Unit
from ..measure.clock import Budget
from ..measure.timing import ceiling_margin, suspicion
from ..measure.planning import skip_reason
from ..measure.workloads import BYTE_MODELS


class Groups:
    """One rank group per (device, world size), started on first use, all closed on exit."""

    def __init__(self, timeout: float, memory_limit: Optional[int] = None, threads: Optional[int] = None):
        self.timeout, self.memory_limit, self.threads = timeout, memory_limit, threads
        self._groups: dict[tuple[str, int], sharded.RankGroup] = {}

    def get(self, device: str, world_size: int) -> sharded.RankGroup:
        key = (device, world_size)
        if key not in self._groups:
            self._groups[key] = sharded.RankGroup(world_size, device, self.timeout, memory_limit=self.memory_limit,
                                                      threads=self.threads)
        return self._groups[key]

    def close(self) -> None:
        for group in self._groups.values():
            group.close()
        self._groups.clear()

    def __enter__(self) -> "Groups":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_distributed(target: Target, plugin_files: Sequence[str] = ()) -> bool:
    return cached(plugin_files).get(target.backend).parallel == "vocab"


def _sharded_op(op: str, how: str) -> str:
    # run_sharded names the fused gradient apart from the derived one.
    return "cross_entropy_grad" if (op, how) == ("ce_grad", "fused") else op


def check_units(targets: Sequence[Target], chosen: Sequence[Case], plugin_files: Sequence[str],
                world_sizes: Sequence[int], groups: Groups, ops: Optional[Sequence[str]] = None) -> list[Unit]:
    """One unit per (distributed target, world size, case, op) the backend has (of ``ops``, when given).

    Cases of loss options are left out: no sharded backend declares an option
    yet, and the shards are not handed them.
    """
    from ..measure.calls import supports

    registry = cached(plugin_files)
    units = []
    for target in (t for t in targets if is_distributed(t, plugin_files)):
        backend = registry.get(target.backend)
        for world_size in world_sizes:
            for case in chosen:
                if not case.applies_to(target.dtype):
                    continue
                for op in case.ops:
                    # Across ranks there is no autodiff: a gradient needs the backend's own function.
                    if not supports(backend, op) or route(backend, op) == "autodiff":
                        continue
                    # The shards are handed no loss options: a case of options is for the single-process check.
                    if (ops and op not in ops) or (case.options is not None and case.options.active()):
                        continue
                    identity = replace(base_record(target, case, op), world_size=world_size).workpoint

                    def run(ex, t=target, c=case, o=op, w=world_size):
                        how = "value" if o in ("softmax", "log_softmax") else route(registry.get(t.backend), o)
                        given = inputs_for(c, t.dtype, o, how)
                        start = time.perf_counter()
                        out = sharded.run_sharded(t.backend, tuple(plugin_files), t.device, t.dtype,
                                                      _sharded_op(o, how), given, w, groups.timeout, c.axis,
                                                      group=groups.get(t.device, w))
                        seconds = time.perf_counter() - start
                        with np.errstate(all="ignore"):
                            verdict = evaluate(c, t.dtype, o, how, np.asarray(out, dtype=np.float64), given)
                        record = base_record(t, c, o)
                        record.path, record.seconds, record.world_size = how, round(seconds, 4), w
                        record.passed, record.behaviour, record.reason = verdict.passed, verdict.behaviour, verdict.reason
                        for name, value in verdict.figures.items():
                            setattr(record, name, value)
                        return [record.as_dict()]

                    def on_failure(f, t=target, c=case, o=op, w=world_size):
                        return [{**failure_record(t, c, o, f), "world_size": w}]

                    units.append(Unit(identity=identity, run=run, on_failure=on_failure,
                                      label=f"{target.backend} x{world_size} {target.dtype} {case.name} {op}"))
    return units


def timing_units(targets: Sequence[Target], items: Sequence[tuple[Size, str, str, str]], plugin_files: Sequence[str],
                 world_sizes: Sequence[int], groups: Groups, budget: Budget) -> list[Unit]:
    """One unit per (distributed target, world size, size, mode, op, pass) the backend has.

    Both modes, as for any backend: warm times every call on each rank's
    same inputs; cold rotates each rank's inputs through copies that exceed
    the device's cache (``sharded.cold_buffers``). A cold unit that would
    need more copies than ``memory.MAX_BUFFERS`` is recorded as skipped with
    the reason, as ``timing_plan`` does, rather than left out unsaid.
    """
    registry = cached(plugin_files)
    llcs: dict[str, int] = {}
    units = []
    for target in (t for t in targets if is_distributed(t, plugin_files)):
        llc = llcs.setdefault(target.device, llc_bytes(target.device))
        for world_size in world_sizes:
            for size, mode, op, pass_ in items:
                if not _has(registry.get(target.backend), op, pass_):
                    continue
                record = TimingRecord(backend=target.backend, device=target.device, dtype=target.dtype, rows=size.rows,
                                      vocab=size.vocab, mode=mode, op=op, pass_=pass_, library="torch",
                                      world_size=world_size)
                label = f"{target.backend} x{world_size} {size.label} {mode} {op} {pass_}"
                reason = _skip_reason(size, target.dtype, mode, world_size, llc)
                if reason:
                    record.skipped, record.reason = True, reason
                    units.append(Unit(identity=record.workpoint, run=lambda ex, r=record: [r.as_dict()],
                                      on_failure=lambda f, r=record: [r.as_dict()], label=label))
                    continue

                def run(ex, t=target, s=size, m=mode, o=op, p=pass_, w=world_size, r=record, llc=llc):
                    found = sharded.time_sharded(t.backend, tuple(plugin_files), t.device, t.dtype, o, p, s.rows,
                                                     s.vocab, w, budget, groups.timeout, group=groups.get(t.device, w),
                                                     mode=m, llc=llc)
                    figures = {k: found.get(k) for k in ("median_s", "iqr_s", "repeats", "inner", "first_call_s",
                                                         "collectives", "comm_bytes", "comm_median_s", "buffers",
                                                         "llc_bytes")}
                    model = BYTE_MODELS[(o, p)]
                    moved = model.bytes(s.rows, s.vocab, info(t.dtype).itemsize)
                    median = figures["median_s"]
                    rate = moved / median / 1e9 if median else None
                    figures.update(threads=groups.get(t.device, w).threads, bytes=moved, byte_model=model.text,
                                   gbps=rate, route="fused" if (o, p) == ("cross_entropy", "full") else "explicit",
                                   # The engine's own check (a call below the clock's resolution); the copy
                                   # ceiling comes later, from planning.finalize, as for any record.
                                   suspect=suspicion(rate, None, ceiling_margin(o, p), median))
                    return [replace(r, **figures).as_dict()]

                def failed(f, r=record):
                    return [replace(r, reason=f.reason, failure=f.kind).as_dict()]

                units.append(Unit(identity=record.workpoint, run=run, on_failure=failed, label=label))
    return units


def _skip_reason(size: Size, dtype: str, mode: str, world_size: int, llc: int) -> Optional[str]:
    """Why a sharded unit cannot be run within the limits (a cold rotation of too many copies), or ``None``."""
    buffers = sharded.cold_buffers(size.rows, size.vocab, world_size, dtype, mode, llc)
    if buffers <= MAX_BUFFERS:
        return None
    widest = max(stop - start for start, stop in sharded.split(size.vocab, world_size))
    return skip_reason(Size(size.rows, widest), dtype, buffers, llc, None)


def _has(backend: Any, op: str, pass_: str) -> bool:
    """Whether a sharded backend has what ``sharded.time_sharded`` calls for ``op`` in ``pass_``:
    across ranks there is no autodiff, so a gradient needs the backend's own function."""
    if op == "cross_entropy":
        needs = {"fwd": "cross_entropy", "bwd": "log_softmax_vjp", "full": "cross_entropy_fwd_bwd"}[pass_]
    else:
        needs = op if pass_ == "fwd" else f"{op}_vjp"
    return backend.function(needs) is not None
