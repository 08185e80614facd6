"""Run backend code where its crashes cannot take the run down.

``IsolatedExecutor`` keeps one worker process per (backend, device), started
with the spawn method and reused across that backend's cases. A worker that
dies on a signal, runs past the per-task timeout, or runs out of memory costs
that one task, which fails with a ``BackendFailure`` naming the reason; the
worker is restarted for the next task. ``InProcessExecutor`` runs the same
tasks in this process, for debugging (``--no-isolate``) and for pytest.

Tasks are module-level functions with picklable arguments; whatever they time
is timed inside the worker, so the isolation overhead stays outside the timed
region.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable, Optional

from ..errors import NotAvailable, describe_exception


class BackendFailure(Exception):
    """A task failed because of the backend: raised, crashed, hung or ran out of memory."""

    def __init__(self, reason: str, kind: str = "raised"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # raised | crashed | timeout | memory | invalid | unavailable


def failure_from(exc: BaseException) -> BackendFailure:
    """The ``BackendFailure`` an exception a task raised stands for (what the parent reports).

    Used by every process that runs backend code: the isolated workers here and
    the ranks of a distributed group (``sharded.RankGroup``).
    """
    if isinstance(exc, BackendFailure):
        return exc
    if isinstance(exc, NotAvailable):
        return BackendFailure(str(exc), "unavailable")
    if isinstance(exc, MemoryError):
        return BackendFailure(f"out of memory ({describe_exception(exc)})", "memory")
    return BackendFailure(describe_exception(exc), "raised")


class InProcessExecutor:
    """Runs tasks in this process: no protection, no timeout; for debugging and tests."""

    isolated = False

    def run(self, key: tuple[str, str], func: Callable, *args: Any, **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)``; a backend's exception becomes ``BackendFailure``."""
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from a plugin is a failure too
            raise failure_from(exc) from exc

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def limit_memory(limit: Optional[int]) -> None:
    """Cap this process's data segment at ``limit`` bytes (``None`` or 0: no cap); called first thing in a
    worker or rank, so a runaway backend fails with ``MemoryError`` alone, before the OOM killer picks."""
    if not limit:
        return
    import resource

    # RLIMIT_DATA counts heap and private writable mappings (every large array),
    # but not the address space CUDA or JAX reserve without touching it.
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _worker_main(conn: Connection, memory_limit: Optional[int]) -> None:
    # Ctrl-C belongs to the parent, which stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_memory(memory_limit)
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message is None:
            return
        func, args, kwargs = message
        try:
            reply = ("ok", func(*args, **kwargs))
        except BaseException as exc:
            failure = failure_from(exc)
            reply = ("error", (failure.reason, failure.kind, traceback.format_exc(limit=-3)))
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result is the backend's failure too
            conn.send(("error", (f"result could not be sent back ({describe_exception(exc)})", "invalid", "")))


class _Worker:
    def __init__(self, ctx: Any, memory_limit: Optional[int]):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, memory_limit), daemon=True)
        self.process.start()
        child.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.process.join(2)
        except (OSError, ValueError):
            pass
        self.kill()


def death_reason(exitcode: Optional[int], who: str = "worker") -> BackendFailure:
    """The failure of a process (``who``: "worker", "rank 1") that ended without answering, from its exit code:
    "worker died on SIGKILL (killed: out of memory?)", "rank 1 exited with status 3"."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (killed: out of memory?)" if -exitcode == signal.SIGKILL else ""
        return BackendFailure(f"{who} died on {name}{hint}", "crashed")
    return BackendFailure(f"{who} exited with status {exitcode}", "crashed")


def default_memory_limit() -> Optional[int]:
    """80% of physical memory: a runaway backend fails alone, before the OOM killer picks."""
    try:
        return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


class IsolatedExecutor(InProcessExecutor):
    """One spawned worker per (backend, device); failures cost one task, not the run."""

    isolated = True

    def __init__(self, timeout: Optional[float] = 120.0, memory_limit: Optional[int] = None):
        self.timeout = timeout
        self.memory_limit = memory_limit
        self._ctx = mp.get_context("spawn")
        self._workers: dict[tuple[str, str], _Worker] = {}

    def _worker(self, key: tuple[str, str]) -> _Worker:
        worker = self._workers.get(key)
        if worker is None or not worker.process.is_alive():
            # Workers that drive a GPU get no data limit: CUDA maps host memory of its own.
            limit = None if key[1] == "cuda" else self.memory_limit
            worker = self._workers[key] = _Worker(self._ctx, limit)
        return worker

    def run(self, key: tuple[str, str], func: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run ``func`` in the worker for ``key``; ``BackendFailure`` on any failure."""
        worker = self._worker(key)
        try:
            worker.conn.send((func, args, kwargs))
            ready = worker.conn.poll(self.timeout)
        except (OSError, EOFError):
            ready = True  # the worker is gone; recv below says how
        if not ready:
            self._discard(key)
            raise BackendFailure(f"timed out after {self.timeout:g} s", "timeout")
        try:
            status, payload = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(5)
            failure = death_reason(worker.process.exitcode)
            self._discard(key)
            raise failure from None
        if status == "ok":
            return payload
        reason, kind, _tb = payload
        raise BackendFailure(reason, kind)

    def _discard(self, key: tuple[str, str]) -> None:
        worker = self._workers.pop(key, None)
        if worker is not None:
            worker.kill()

    def close(self) -> None:
        for key in list(self._workers):
            worker = self._workers.pop(key)
            worker.stop()


def make_executor(isolate: bool, timeout: Optional[float] = 120.0, memory_limit: Optional[int] = None):
    """Isolated workers (``memory_limit`` ``None``: 80% of RAM; 0: none), or in-process without ``isolate``."""
    if not isolate:
        return InProcessExecutor()
    limit = default_memory_limit() if memory_limit is None else memory_limit
    return IsolatedExecutor(timeout=timeout, memory_limit=limit or None)
