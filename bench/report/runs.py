"""Results files as a report reads them: loaded, named by machine, completed, merged.

Files from several machines merge into one set of records, each keyed by the
machine its file records (CPU model, plus GPU model when present). A unit of
work that a later file records again for the same machine replaces the
earlier one, with a warning.

Timing records are completed as they are read (``complete_timings``): fields
that files from before them lack get the value those files meant (``op``
softmax, ``pass`` fwd), and the fraction of the device's fastest copy is
computed from the file's own copy figures where the file does not record it.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ResultsError, UsageError
from ..core.records import Workpoint, copy_fraction, options_label
from ..core.results import load

# What a timing record without these fields measured: a forward softmax (every file before them).
TIMING_DEFAULTS = {"op": "softmax", "pass": "fwd"}
# The copy a timing is held against: the same bytes on the same device, in the same cache mode.
_COPY_KEY = ("device", "dtype", "rows", "vocab", "mode")


def warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class Run:
    """One loaded results file."""

    path: Path
    environment: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def machine(self) -> str:
        return machine_label(self.environment)


def machine_label(environment: dict[str, Any]) -> str:
    """The machine a file ran on: its CPU model, plus the GPU model when there is one."""
    gpu = environment.get("gpu")
    gpu_name = gpu.get("name") if isinstance(gpu, dict) else gpu
    parts = [str(p).strip() for p in (environment.get("cpu"), gpu_name) if p not in (None, "")]
    return " + ".join(parts) if parts else str(environment.get("host") or "unknown machine")


def load_runs(paths: Sequence[str | Path], skip_bad: bool = False,
              warn: Callable[[str], None] = warn_stderr) -> list[Run]:
    """Load results files in order; a bad one raises ``ResultsError``, or with
    ``skip_bad`` gets one warning and is left out. The same path twice loads once."""
    runs: list[Run] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            document = load(path)
        except ResultsError as exc:
            if not skip_bad:
                raise
            warn(f"{exc}; skipped")
            continue
        runs.append(Run(path, document["environment"], document["records"]))
    if not runs:
        raise UsageError(f"none of the {len(seen)} results file(s) could be read")
    return runs


def complete_timings(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of one file, timing records copied with their defaults and device copy filled in.

    ``op`` and ``pass`` get ``TIMING_DEFAULTS`` where absent; ``options`` (the
    loss options) becomes its label (``records.options_label``), absent for the plain loss. Where a record
    has no ``device_copy_gbps`` (files from before it), it is the fastest
    ``copy_gbps`` any library measured in this file at the same device, dtype,
    size and mode, and ``device_copy_fraction`` follows from it: the figure
    the engine records now, computed the same way. Check records pass through.
    """
    fastest: dict[tuple, float] = {}
    for r in records:
        if r["kind"] == "timing" and r.get("copy_gbps") is not None:
            key = tuple(r.get(f) for f in _COPY_KEY)
            fastest[key] = max(fastest.get(key, 0.0), r["copy_gbps"])
    completed = []
    for r in records:
        if r["kind"] != "timing":
            completed.append(r)
            continue
        r = {**r, **{f: v for f, v in TIMING_DEFAULTS.items() if r.get(f) is None}}
        if r.get("options") is not None:  # the loss options as one label (a table's column, a comparison's key)
            r["options"] = options_label(r["options"])
        if r.get("device_copy_gbps") is None:
            r["device_copy_gbps"] = fastest.get(tuple(r.get(f) for f in _COPY_KEY)) or None
        if r.get("device_copy_fraction") is None:
            r["device_copy_fraction"] = copy_fraction(r.get("gbps"), r.get("device_copy_gbps"))
        completed.append(r)
    return completed


def merge(runs: Sequence[Run], warn: Callable[[str], None] = warn_stderr) -> list[dict[str, Any]]:
    """All records, completed (``complete_timings``), each copied with a ``machine`` field.

    A unit of work that a later file records again for the same machine (a
    rerun) is taken from the later file, with one warning per pair of files,
    so no table cell silently mixes two runs. "Later" is later on the command
    line, whatever the files' times.
    """

    def key(run: Run, record: dict[str, Any]) -> tuple:
        # A rerun is the same unit of work on the same machine; other threads, scales or a reference row are not.
        return (run.machine, Workpoint.of(record), record.get("threads"), record.get("scale"), record.get("reference"))

    completed = [complete_timings(run.records) for run in runs]
    owner: dict[tuple, int] = {}
    for index, run in enumerate(runs):
        for record in completed[index]:
            owner[key(run, record)] = index
    merged: list[dict[str, Any]] = []
    replaced: Counter = Counter()
    for index, run in enumerate(runs):
        for record in completed[index]:
            later = owner[key(run, record)]
            if later != index:
                replaced[(index, later)] += 1
                continue
            merged.append({**record, "machine": run.machine})
    for (earlier, later), count in replaced.items():
        warn(f"{runs[later].path} repeats {count} record(s) of {runs[earlier].path} on the same machine "
             f"(CPU and GPU model); using {runs[later].path.name}'s")
    return merged
