"""Results files as a report reads them: loaded, named by machine, merged.

Files from several machines merge into one set of records, each keyed by the
machine its file records (CPU model, plus GPU model when present). A unit of
work that a later file records again for the same machine replaces the
earlier one, with a warning.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ResultsError, UsageError
from .results import load, record_key


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


def merge(runs: Sequence[Run], warn: Callable[[str], None] = warn_stderr) -> list[dict[str, Any]]:
    """All records, each copied with a ``machine`` field.

    A unit of work that a later file records again for the same machine (a
    rerun) is taken from the later file, with one warning per pair of files,
    so no table cell silently mixes two runs.
    """

    def key(run: Run, record: dict[str, Any]) -> tuple:
        return (run.machine, *record_key(record), record.get("scale"), record.get("reference"))

    owner: dict[tuple, int] = {}
    for index, run in enumerate(runs):
        for record in run.records:
            owner[key(run, record)] = index
    merged: list[dict[str, Any]] = []
    replaced: Counter = Counter()
    for index, run in enumerate(runs):
        for record in run.records:
            later = owner[key(run, record)]
            if later != index:
                replaced[(index, later)] += 1
                continue
            merged.append({**record, "machine": run.machine})
    for (earlier, later), count in replaced.items():
        warn(f"{runs[later].path} repeats {count} record(s) of {runs[earlier].path} on the same machine "
             f"(CPU and GPU model); using {runs[later].path.name}'s")
    return merged
