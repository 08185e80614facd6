"""The engine shared by ``check`` and ``run``: selection, isolation, results, progress.

A command turns its arguments into a list of ``Unit``s (one unit of work each:
one backend, device, dtype and case or size). ``execute`` runs them through
an executor (isolated workers by default), turns a backend's failure into a
recorded failure of that unit, writes every finished unit to the results file
at once, skips units a resumed file already holds, and stops cleanly on
Ctrl-C keeping everything measured so far.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from .backend import DEVICES, DTYPES
from .cli import UsageError, choose, load
from .isolation import BackendFailure, InProcessExecutor, default_memory_limit, describe_exception, make_executor
from .registry import Registry
from .results import ResultsFile, default_path


@dataclass(frozen=True)
class Target:
    """One (backend, device, dtype) combination a command will exercise."""

    backend: str
    device: str
    dtype: str


@dataclass
class Selection:
    """What the user asked for, resolved against the registry."""

    registry: Registry
    targets: list[Target]
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (backend, device, reason)
    plugin_files: tuple[str, ...] = ()


def select(args: argparse.Namespace, registry: Registry) -> Selection:
    """Validate --backend/--device/--dtype and list the runnable targets.

    An explicitly requested device or dtype that a backend does not support is
    simply not combined with it; a backend unavailable here is skipped with
    its reason (reported, never an error).
    """
    names = choose(args.backend, registry.names(), "backend")
    devices = choose(getattr(args, "device", []), DEVICES, "device")
    dtypes = choose(args.dtype, DTYPES, "dtype")
    selection = Selection(registry, [], plugin_files=tuple(getattr(args, "plugin", [])))
    for name in names:
        backend = registry.get(name)
        for device in (d for d in devices if d in backend.devices):
            reason = registry.unavailable(name, device)
            if reason:
                selection.skipped.append((name, device, reason))
                continue
            selection.targets.extend(Target(name, device, dt) for dt in dtypes if dt in backend.dtypes)
    return selection


def open_results(args: argparse.Namespace) -> ResultsFile:
    """The results file for this run: new (``--out`` or a default name) or resumed."""
    if getattr(args, "resume", None):
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise UsageError("--resume FILE continues FILE itself; leave out --out or give the same path")
        return ResultsFile(args.resume, resume=True)
    path = Path(args.out) if args.out else default_path()
    if path.exists() and path.is_dir():
        raise UsageError(f"--out {path}: is a directory")
    return ResultsFile(path)


def executor_for(args: argparse.Namespace):
    """Isolated workers unless ``--no-isolate``; ``--memory-limit 0`` lifts the limit."""
    limit = args.memory_limit if args.memory_limit is not None else default_memory_limit()
    return make_executor(not args.no_isolate, tuple(args.plugin), timeout=args.timeout, memory_limit=limit or None)


@dataclass
class Unit:
    """One unit of work: its identity (for resume) and how to produce its records.

    ``run(executor)`` returns the unit's records; a ``BackendFailure`` it
    raises becomes ``on_failure(failure)``'s records instead.
    """

    identity: dict[str, Any]
    run: Callable[[Any], list[dict[str, Any]]]
    on_failure: Callable[[BackendFailure], list[dict[str, Any]]]
    label: str = ""


# A backend that hangs or crashes on this many units in a row has its
# remaining units recorded as failures without running them: one hanging
# plugin must not hold a whole run hostage for timeout x cases.
GIVE_UP_AFTER = {"timeout": 2, "crashed": 3}


def execute(units: Iterable[Unit], results: ResultsFile, executor: Any, desc: str = "") -> list[dict[str, Any]]:
    """Run every unit not yet recorded; return the records made by this call.

    ``KeyboardInterrupt`` propagates after the results file holds everything
    finished. The caller owns (and closes) the executor.
    """
    units = [u for u in units if not results.has(u.identity)]
    made: list[dict[str, Any]] = []
    streaks: dict[tuple, tuple[str, int]] = {}  # (backend, device) -> (failure kind, count in a row)
    progress = _progress(len(units), desc)
    try:
        for unit in units:
            if progress is not None:
                progress.set_postfix_str(unit.label, refresh=False)
            key = (unit.identity.get("backend"), unit.identity.get("device"))
            kind, count = streaks.get(key, ("", 0))
            try:
                if count >= GIVE_UP_AFTER.get(kind, 1 << 30):
                    raise BackendFailure(f"not run: the backend {'timed out' if kind == 'timeout' else kind} on {count} cases in a row", kind)
                records = unit.run(executor)
                streaks.pop(key, None)
            except BackendFailure as failure:
                streaks[key] = (failure.kind, count + 1 if failure.kind == kind else 1)
                records = unit.on_failure(failure)
            except Exception as exc:  # our own bug: record it against the unit and go on
                reason = f"internal error in softmax-bench ({describe_exception(exc)})"
                print(f"warning: {unit.label}: {reason}", file=sys.stderr)
                records = unit.on_failure(BackendFailure(reason, "internal"))
            results.add(records)
            made.extend(records)
            if progress is not None:
                progress.update(1)
    finally:
        if progress is not None:
            progress.close()
    return made


def _progress(total: int, desc: str):
    """A tqdm bar on an interactive terminal for runs long enough to want one."""
    if total < 2 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="case", file=sys.stderr, leave=False, dynamic_ncols=True)


def report_skipped(selection: Selection) -> None:
    for name, device, reason in selection.skipped:
        print(f"skipped {name} on {device}: {reason}", file=sys.stderr)


__all__ = [
    "InProcessExecutor",
    "Selection",
    "Target",
    "Unit",
    "execute",
    "executor_for",
    "load",
    "open_results",
    "report_skipped",
    "select",
]
