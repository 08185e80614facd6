"""``run``'s timings as units of work: one ``TimingRecord`` per (target, size, mode).

Each unit is independent: it runs ``timing.measure`` in its backend's worker,
which times the library's own copy of the same bytes beside the backend, so
no unit's record depends on which unit ran before it. A unit whose working
set does not fit the memory budget, or whose cold mode would need too many
buffers, is recorded as skipped with the reason instead of being run.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .memory import COLD_FACTOR, MAX_BUFFERS, buffer_count, llc_bytes
from .formatting import human_bytes
from .records import TimingRecord
from .selection import Selection, Target
from .sizes import Size, working_set
from .suite import Unit
from .timer import Budget
from .timing import measure


def _record(target: Target, size: Size, mode: str, library: str) -> TimingRecord:
    return TimingRecord(backend=target.backend, device=target.device, dtype=target.dtype,
                        rows=size.rows, vocab=size.vocab, mode=mode, library=library)


def skip_reason(size: Size, dtype: str, buffers: int, llc: int, max_bytes: Optional[int]) -> Optional[str]:
    """Why a unit cannot be run within the limits, or ``None``."""
    if buffers > MAX_BUFFERS:
        return (f"skipped: a cold cache needs {buffers} inputs of {human_bytes(size.nbytes(dtype))}"
                f" to exceed {COLD_FACTOR} x the {human_bytes(llc)} cache; at most {MAX_BUFFERS}")
    need = working_set(size, dtype, buffers)
    if max_bytes and need > max_bytes:
        return f"skipped: working set {human_bytes(need)} exceeds --max-bytes {human_bytes(max_bytes)}"
    return None


def timing_units(
    selection: Selection,
    sizes: Sequence[Size],
    modes: Sequence[str],
    budget: Budget,
    max_bytes: Optional[int],
) -> list[Unit]:
    """One ``suite.Unit`` per (size, mode, target)."""
    llcs = {device: llc_bytes(device) for device in {t.device for t in selection.targets}}
    plugin_files = tuple(selection.plugin_files)
    units = []
    for size in sizes:
        for mode in modes:
            for target in selection.targets:
                library = selection.registry.get(target.backend).library
                llc = llcs[target.device]
                record = _record(target, size, mode, library)
                label = f"{target.backend} {target.device} {target.dtype} {size.label} {mode}"
                reason = skip_reason(size, target.dtype, buffer_count(size.nbytes(target.dtype), mode, llc), llc, max_bytes)
                if reason:
                    record.skipped, record.reason = True, reason
                    units.append(Unit(identity=record.as_dict(), run=lambda ex, r=record: [r.as_dict()],
                                      on_failure=lambda f, r=record: [r.as_dict()], label=label))
                    continue
                units.append(Unit(
                    identity=record.as_dict(),
                    run=lambda ex, t=target, s=size, m=mode, lib=library, llc=llc: [
                        _record(t, s, m, lib).measured(ex.run(
                            (t.backend, t.device), measure, t.backend, t.device, t.dtype, s.rows, s.vocab, m,
                            budget, True, llc, plugin_files,
                        )).as_dict()
                    ],
                    on_failure=lambda f, t=target, s=size, m=mode, lib=library: [
                        _failed(_record(t, s, m, lib), f.reason, f.kind)
                    ],
                    label=label,
                ))
    return units


def _failed(record: TimingRecord, reason: str, kind: str) -> dict[str, Any]:
    record.reason, record.failure = reason, kind
    return record.as_dict()
