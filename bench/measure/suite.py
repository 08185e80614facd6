"""The loop ``check`` and ``run`` share: units of work, isolation, results, progress.

A command turns its arguments into a list of ``Unit``s (one unit of work each:
one backend, device, dtype and case or size). ``execute`` runs them through
an executor (isolated workers by default), turns a backend's failure into a
recorded failure of that unit, writes every finished unit to the results file
at once, skips units a resumed file already holds, and stops cleanly on
Ctrl-C keeping everything measured so far.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from ..errors import UsageError, describe_exception
from ..core.isolation import BackendFailure
from ..core.records import Workpoint
from ..core.results import ResultsFile, default_path


def open_results(out: Optional[str], resume: Optional[str]) -> ResultsFile:
    """The results file for this run: new (``out`` or a default name) or ``resume``d."""
    if resume:
        if out and Path(out).resolve() != Path(resume).resolve():
            raise UsageError("--resume FILE continues FILE itself; leave out --out or give the same path")
        return ResultsFile(resume, resume=True)
    path = Path(out) if out else default_path()
    if path.exists() and path.is_dir():
        raise UsageError(f"--out {path}: is a directory")
    return ResultsFile(path)


@dataclass
class Unit:
    """One unit of work: its identity (for resume) and how to produce its records.

    ``run(executor)`` returns the unit's records; a ``BackendFailure`` it
    raises becomes ``on_failure(failure)``'s records instead.
    """

    identity: Workpoint
    run: Callable[[Any], list[dict[str, Any]]]
    on_failure: Callable[[BackendFailure], list[dict[str, Any]]]
    label: str = ""


# A backend that hangs or crashes on this many units in a row has its
# remaining units recorded as failures without running them: one hanging
# plugin must not hold a whole run hostage for timeout x cases.
GIVE_UP_AFTER = {"timeout": 2, "crashed": 3}


def _run_unit(unit: Unit, executor: Any, streak: tuple[str, int]) -> tuple[list[dict[str, Any]], tuple[str, int]]:
    """One unit's records, and the (failure kind, count in a row) streak after it."""
    kind, count = streak
    try:
        if count >= GIVE_UP_AFTER.get(kind, 1 << 30):
            what = "timed out" if kind == "timeout" else kind
            raise BackendFailure(f"not run: the backend {what} on {count} cases in a row", kind)
        return unit.run(executor), ("", 0)
    except BackendFailure as failure:
        return unit.on_failure(failure), (failure.kind, count + 1 if failure.kind == kind else 1)
    except Exception as exc:  # our own bug: record it against the unit and go on
        reason = f"internal error in softmax-bench ({describe_exception(exc)})"
        print(f"warning: {unit.label}: {reason}", file=sys.stderr)
        return unit.on_failure(BackendFailure(reason, "internal")), ("", 0)


def execute(units: Iterable[Unit], results: ResultsFile, executor: Any, desc: str = "", jobs: int = 1,
            deadline: Optional[float] = None) -> list[dict[str, Any]]:
    """Run every unit not yet recorded; return the records made by this call.

    No unit starts after ``deadline`` (a ``time.monotonic()`` value): those
    left are counted on stderr and stay unrecorded, so ``--resume`` runs them.

    Units of one (backend, device) run in order, in that backend's worker.
    With ``jobs`` > 1 (correctness checks only: timings must never share the
    machine) up to ``jobs`` backends run at once, each driven by a thread of
    this process; an in-process executor always runs one at a time.
    ``KeyboardInterrupt`` propagates after the results file holds everything
    finished. The caller owns (and closes) the executor.
    """
    groups: dict[tuple, list[Unit]] = {}
    for unit in units:
        if not results.has(unit.identity):
            groups.setdefault((unit.identity.backend, unit.identity.device), []).append(unit)
    made: list[dict[str, Any]] = []
    lock = threading.Lock()
    stop = threading.Event()
    progress = _progress(sum(len(g) for g in groups.values()), desc)

    left_out = [0]

    def run_group(group: list[Unit]) -> None:
        streak = ("", 0)
        for i, unit in enumerate(group):
            if stop.is_set():
                return
            if deadline is not None and time.monotonic() > deadline:
                with lock:
                    left_out[0] += len(group) - i
                return
            records, streak = _run_unit(unit, executor, streak)
            if stop.is_set():  # interrupted mid-unit: its outcome is not the backend's
                return
            with lock:
                results.add(records)
                made.extend(records)
                if progress is not None:
                    progress.set_postfix_str(unit.label, refresh=False)
                    progress.update(1)

    try:
        if jobs <= 1 or len(groups) <= 1 or not getattr(executor, "isolated", False):
            for group in groups.values():
                run_group(group)
        else:
            pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="softmax-bench")
            futures = [pool.submit(run_group, group) for group in groups.values()]
            try:
                for future in futures:
                    future.result()
            except KeyboardInterrupt:
                stop.set()
                executor.close()  # unblocks the threads waiting on their workers
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if progress is not None:
            progress.close()
    if left_out[0]:
        print(f"{desc or 'run'}: the budget is spent; {left_out[0]} units not run (--resume {results.path} runs them)",
              file=sys.stderr)
    return made


def _progress(total: int, desc: str):
    """A tqdm bar on an interactive terminal for runs long enough to want one."""
    if total < 2 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="case", file=sys.stderr, leave=False, dynamic_ncols=True)
