"""Vocabulary-parallel softmax and cross-entropy on torch.distributed: shards, a rank group, and two entry points.

A backend with ``parallel="vocab"`` computes one softmax (or cross-entropy)
whose reduced axis, the vocabulary, is split over the ranks of a process
group, as Megatron-LM's tensor-parallel output layer is. Each rank holds a
contiguous slice ``[start, stop)`` of the vocabulary and every function of
the backend takes the keyword ``shard=`` (a ``Shard``) and runs the
collectives it needs on ``shard.group`` itself.

The pieces, bottom up:

- ``Shard`` and ``split``: who owns which columns (``numpy.array_split``
  sizes: the first ``vocab % world_size`` ranks get one column more; a rank
  may own none when ``vocab < world_size``).
- ``RankGroup``: ``world_size`` spawned processes joined in one
  torch.distributed group (gloo on CPU, NCCL on CUDA), reused for many tasks.
  It is the isolation of distributed work: a rank that raises is a
  ``BackendFailure("raised")``; a rank that dies or a group that hangs past the
  timeout gets every rank killed and joined (gloo collectives block forever
  when a peer is gone, so the parent watches all of them) and a
  ``BackendFailure("crashed" | "timeout")`` naming the rank. Under
  ``torchrun`` (RANK, WORLD_SIZE and MASTER_ADDR set) it runs in place on this
  rank instead.
- ``run_sharded``: the correctness entry point. Full NumPy float64 inputs in,
  the gathered output (one NumPy array in the backend's dtype) out.
- ``time_sharded``: the timing entry point. Every rank builds its shard of
  random inputs and runs the one timer (``clock.time_calls``) with an
  ``InStepSampler``: each sample is a barrier, ``inner`` calls and the
  device's completion; the sample time is the slowest rank's.

Call ``run_sharded`` and ``time_sharded`` from the main process, not through an
``IsolatedExecutor`` worker: they start (and isolate) their own processes,
and a daemonic worker may not have children.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..core import adapters, registry
from ..measure import clock
from ..backend import IGNORE_INDEX, PASSES, TIMED_OPS
from ..core.dtypes import info
from ..errors import describe_exception
from ..core.isolation import BackendFailure, death_reason, failure_from, limit_memory
from ..measure.memory import MAX_BUFFERS, buffer_count, llc_bytes
from ..measure.clock import DEFAULT_BUDGET

# What run_sharded checks: the suite's ops (backend.VALUE_OPS, GRADIENT_OPS) with the
# gradient of the loss split by route, since across ranks there is no autodiff:
# ce_grad through log_softmax and its VJP, cross_entropy_grad through cross_entropy_fwd_bwd.
SOFTMAX_OPS = ("softmax", "log_softmax")
SOFTMAX_VJP_OPS = ("softmax_vjp", "log_softmax_vjp")
SHARDED_OPS = SOFTMAX_OPS + SOFTMAX_VJP_OPS + ("ce_grad", "cross_entropy", "cross_entropy_grad")
# The collectives the worker's meter counts (torch.distributed functions, by name).
COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor",
               "broadcast", "reduce", "all_to_all_single")
# After one rank fails, how long the parent waits for the others to say why
# (a peer's death makes the survivors raise from inside a collective; the
# death is the cause worth reporting).
GRACE_S = 1.0
STARTUP_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------- shards


def split(vocab: int, world_size: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` per rank, sizes as ``numpy.array_split``: they differ by at most 1.

    The first ``vocab % world_size`` ranks get one column more. With
    ``vocab < world_size`` the last ranks get ``(vocab, vocab)``: no columns
    (the built-in backends handle an empty shard; it still joins every collective).
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, not {world_size}")
    if vocab < 0:
        raise ValueError(f"vocab must not be negative, not {vocab}")
    base, extra = divmod(vocab, world_size)
    bounds, start = [], 0
    for rank in range(world_size):
        stop = start + base + (1 if rank < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


@dataclass(frozen=True)
class Shard:
    """This rank's part of a vocabulary-parallel computation.

    ``group`` is the torch.distributed ProcessGroup to run collectives on
    (``None``: the default group), ``rank`` and ``world_size`` are this
    process's place in it, ``[start, stop)`` the columns of the global
    vocabulary of size ``vocab`` that this rank holds.
    """

    group: Any
    rank: int
    world_size: int
    start: int
    stop: int
    vocab: int

    @property
    def size(self) -> int:
        """Columns held by this rank (``stop - start``, possibly 0)."""
        return self.stop - self.start

    @classmethod
    def of(cls, vocab: int, rank: int, world_size: int, group: Any = None) -> "Shard":
        """Rank ``rank``'s shard of a ``vocab``-wide axis split over ``world_size`` ranks (see ``split``)."""
        start, stop = split(vocab, world_size)[rank]
        return cls(group, rank, world_size, start, stop, vocab)


@dataclass(frozen=True)
class RankContext:
    """What a task running on one rank knows about its place: passed as the task's first argument."""

    rank: int
    world_size: int
    local_rank: int
    device: str  # "cpu" or "cuda" (the current CUDA device is this rank's)
    group: Any = None  # None: the default (world) group

    def shard(self, vocab: int) -> Shard:
        """This rank's ``Shard`` of a ``vocab``-wide axis."""
        return Shard.of(vocab, self.rank, self.world_size, self.group)


# --------------------------------------------------------------------------- torchrun


@dataclass(frozen=True)
class LaunchEnv:
    """The environment torchrun gives each process (``torchrun --nnodes N --nproc-per-node P``)."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    master_addr: str
    master_port: str


def launch_env(environ: Optional[Mapping[str, str]] = None) -> Optional[LaunchEnv]:
    """The torchrun environment of this process, or ``None`` when it was not started by torchrun.

    torchrun sets RANK, WORLD_SIZE, MASTER_ADDR (and MASTER_PORT, LOCAL_RANK,
    LOCAL_WORLD_SIZE, GROUP_RANK); with all three of the first set, the group
    runs in place on this rank rather than spawning its own processes.
    """
    env = os.environ if environ is None else environ
    if not all(env.get(key) for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR")):
        return None
    world = int(env["WORLD_SIZE"])
    return LaunchEnv(
        rank=int(env["RANK"]), world_size=world, local_rank=int(env.get("LOCAL_RANK", env["RANK"])),
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)), node_rank=int(env.get("GROUP_RANK", 0)),
        master_addr=env["MASTER_ADDR"], master_port=env.get("MASTER_PORT", "29500"),
    )


def writes_results(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether this process writes a results file: always when not under torchrun; there, local rank 0 of each node.

    Every rank of a torchrun job computes the same figures (outputs are
    gathered, sample times all-reduced), so one writer per node suffices and
    needs no shared file system; ``softmax-bench report`` merges the nodes' files.
    """
    env = launch_env(environ)
    return env is None or env.local_rank == 0


def results_suffix(environ: Optional[Mapping[str, str]] = None) -> str:
    """A results-file name part that keeps nodes apart: ``-node<GROUP_RANK>`` under torchrun, else empty."""
    env = launch_env(environ)
    return "" if env is None else f"-node{env.node_rank}"


# --------------------------------------------------------------------------- the collective meter


class _Meter:
    """Counts the collectives a rank makes and marks when it is inside one.

    Installed once per rank process, it wraps the torch.distributed functions
    in ``COLLECTIVES`` (so a backend calling ``torch.distributed.all_reduce``
    goes through it). ``state[rank]`` (shared memory the parent reads) holds
    1 + the index of the collective this rank is blocked in, 0 outside one:
    on a timeout it tells the rank that hung from the ranks waiting for it.
    """

    def __init__(self, rank: int, state: Any = None):
        self.rank = rank
        self.state = state
        self.counting = False
        self.calls: list[tuple[str, int, tuple, Any, Any]] = []  # (name, nbytes, shape, dtype, reduce op)

    def install(self) -> None:
        import torch.distributed as dist

        for index, name in enumerate(COLLECTIVES):
            original = getattr(dist, name, None)
            if original is None or getattr(original, "_softmax_bench_meter", False):
                continue
            setattr(dist, name, self._wrap(name, index, original))

    def _wrap(self, name: str, index: int, original: Callable) -> Callable:
        meter = self

        def collective(*args: Any, **kwargs: Any) -> Any:
            if meter.counting:
                sent = _sent_tensors(name, args, kwargs)
                nbytes = sum(int(t.numel()) * t.element_size() for t in sent)
                first = sent[0] if sent else None
                op = kwargs.get("op", args[1] if name in ("all_reduce",) and len(args) > 1 else None)
                meter.calls.append((name, nbytes, tuple(first.shape) if first is not None else (),
                                    first.dtype if first is not None else None, op))
            if meter.state is not None:
                meter.state[meter.rank] = index + 1
            try:
                return original(*args, **kwargs)
            except BaseException as exc:
                try:  # the parent ranks a failure inside a collective below the failure that caused it
                    exc._softmax_bench_collective = name  # type: ignore[attr-defined]
                except Exception:
                    pass
                raise
            finally:
                if meter.state is not None:
                    meter.state[meter.rank] = 0

        collective._softmax_bench_meter = True  # type: ignore[attr-defined]
        collective.__wrapped__ = original  # type: ignore[attr-defined]
        collective.__name__ = name
        return collective

    def start(self) -> None:
        """Count from now on (the calls made so far are forgotten)."""
        self.calls = []
        self.counting = True

    def stop(self) -> list[tuple[str, int, tuple, Any, Any]]:
        """Stop counting; the collectives made since ``start``."""
        self.counting = False
        return self.calls


def _sent_tensors(name: str, args: tuple, kwargs: dict) -> list:
    """The tensors a rank contributes to collective ``name`` (what ``comm_bytes`` counts)."""
    if name in ("all_reduce", "broadcast", "reduce"):
        t = kwargs.get("tensor", args[0] if args else None)
        return [t] if t is not None else []
    if name == "all_gather":
        t = kwargs.get("tensor", args[1] if len(args) > 1 else None)
        return [t] if t is not None else []
    if name in ("all_gather_into_tensor", "reduce_scatter_tensor", "all_to_all_single"):
        t = kwargs.get("input_tensor", kwargs.get("input", args[1] if len(args) > 1 else None))
        return [t] if t is not None else []
    if name == "reduce_scatter":
        ts = kwargs.get("input_list", args[1] if len(args) > 1 else [])
        return list(ts)
    return []


_METER: Optional[_Meter] = None  # this rank process's meter (None outside a rank)


def meter() -> _Meter:
    """This rank's collective meter (installed by the group; a fresh one outside a group)."""
    global _METER
    if _METER is None:
        _METER = _Meter(0)
        _METER.install()
    return _METER


# --------------------------------------------------------------------------- the rank processes


def _dist_backend(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


def _setup_rank(rank: int, world_size: int, local_rank: int, device: str, init_method: str, timeout: float,
                threads: Optional[int], state: Any) -> RankContext:
    """Join the group (this process is rank ``rank``); the context tasks get."""
    import torch
    import torch.distributed as dist

    if threads:
        torch.set_num_threads(threads)
    if device == "cuda":
        torch.cuda.set_device(local_rank % max(torch.cuda.device_count(), 1))
    # One meter per process: a second group in the same process (torchrun) re-aims it, not a second shim.
    m = meter()
    m.rank, m.state = rank, state
    if not dist.is_initialized():
        # gloo's own timeout backs up the parent's watch; it must not fire first.
        dist.init_process_group(_dist_backend(device), init_method=init_method, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout + 60))
        if init_method == "env://":
            # Under torchrun the group lives as long as the process: leave it cleanly at exit
            # (a process exiting with gloo's threads still up aborts: "terminate called ...").
            atexit.register(_destroy_group)
    return RankContext(rank, world_size, local_rank, device, None)


def _destroy_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _error_payload(exc: BaseException) -> tuple[str, str, Optional[str], str]:
    failure = failure_from(exc)
    inside = getattr(exc, "_softmax_bench_collective", None)
    return failure.reason, failure.kind, inside, traceback.format_exc(limit=-3)


def _rank_main(conn: Connection, rank: int, world_size: int, device: str, init_method: str, timeout: float,
               threads: Optional[int], memory_limit: Optional[int], state: Any) -> None:
    # Ctrl-C belongs to the parent, which kills the ranks itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if device == "cpu":
        limit_memory(memory_limit)
    try:
        ctx = _setup_rank(rank, world_size, rank, device, init_method, timeout, threads, state)
    except BaseException as exc:
        conn.send(("error", _error_payload(exc)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if message is None:
            break
        func, args, kwargs = message
        try:
            reply = ("ok", func(ctx, *args, **kwargs))
        except BaseException as exc:
            reply = ("error", _error_payload(exc))
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result is the backend's failure too
            conn.send(("error", (f"result could not be sent back ({describe_exception(exc)})", "invalid", None, "")))
    try:
        import torch.distributed as dist

        dist.destroy_process_group()
    except Exception:
        pass
    conn.close()
    # Skip the interpreter's teardown of torch (seconds on a busy machine): nothing is left to flush.
    os._exit(0)


def _rank_failure(rank: int, reason: str, kind: str) -> BackendFailure:
    return BackendFailure(f"rank {rank}: {reason}", kind)


def _rank_death(rank: int, exitcode: Optional[int]) -> BackendFailure:
    """A rank process that ended without answering: "rank 1 died on SIGKILL", "rank 1 exited with status 3"."""
    return death_reason(exitcode, f"rank {rank}")


class RankGroup:
    """``world_size`` processes joined in one torch.distributed group, reused across tasks.

    ``run(func, *args)`` calls ``func(ctx, *args)`` on every rank (``ctx`` a
    ``RankContext``) and returns the per-rank results in rank order. Ranks are
    spawned (the ``spawn`` start method) on first use and meet through a
    ``file://`` rendezvous in a private temporary directory (no port to race
    for). On CPU each rank gets ``threads`` torch threads (default: the CPUs
    divided among the ranks, at least 1). Every failure raises
    ``BackendFailure``. A rank that died, or any rank still unfinished when
    another failed (blocked in a collective) or at the timeout, tears the
    whole group down: every rank killed and joined, and the next ``run``
    starts a fresh group. A task that raised on ranks while every rank
    answered leaves the group up: its collectives all completed, so the
    ranks are still in step.

    Under torchrun (see ``launch_env``) nothing is spawned: this process is
    one rank, ``run`` calls ``func`` here and gathers every rank's result
    with ``all_gather_object``; the timeout then rests on the collectives'
    own timeout and torchrun's teardown of a job whose process exited.
    """

    def __init__(self, world_size: Optional[int] = None, device: str = "cpu", timeout: float = 120.0, *,
                 memory_limit: Optional[int] = None, threads: Optional[int] = None,
                 startup_timeout: float = STARTUP_TIMEOUT_S, environ: Optional[Mapping[str, str]] = None):
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device {device!r}; valid: cpu, cuda")
        self.env = launch_env(environ)
        if self.env is not None:
            if world_size is not None and world_size != self.env.world_size:
                raise ValueError(f"world_size {world_size} but torchrun started {self.env.world_size} ranks (WORLD_SIZE)")
            world_size = self.env.world_size
        if world_size is None or world_size < 1:
            raise ValueError(f"world_size must be at least 1, not {world_size}")
        self.world_size = world_size
        self.device = device
        self.timeout = timeout
        self.memory_limit = memory_limit
        cpus = os.cpu_count() or 1
        # Ranks sharing one machine's cores: each gets its share, or they oversubscribe (torchrun's
        # processes keep whatever OMP_NUM_THREADS says).
        if self.env is not None:
            self.threads = None
        else:
            self.threads = threads if threads is not None else (max(1, cpus // world_size) if device == "cpu" else None)
        self.startup_timeout = startup_timeout
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._state: Any = None
        self._tmp: Optional[str] = None
        self._ctx: Optional[RankContext] = None  # in place (torchrun)

    # -- lifecycle

    @property
    def in_place(self) -> bool:
        """Whether this process is itself a rank (launched by torchrun)."""
        return self.env is not None

    @property
    def pids(self) -> list[int]:
        """Process ids of the spawned ranks now alive or not yet joined (empty in place)."""
        return [p.pid for p in self._procs]

    def start(self) -> None:
        """Start the ranks and wait until all have joined the group (``BackendFailure`` otherwise)."""
        if self.in_place:
            if self._ctx is None:
                env = self.env
                self._ctx = _setup_rank(env.rank, env.world_size, env.local_rank, self.device, "env://",
                                        self.timeout, None, None)
            return
        if self._procs:
            return
        if mp.current_process().daemon:
            raise RuntimeError("a distributed group is started from the main process, not from a daemonic worker")
        main = sys.modules.get("__main__")
        main_file = getattr(main, "__file__", None)
        if getattr(main, "__spec__", None) is None and main_file and not os.path.exists(main_file):
            # Spawned ranks re-run the main script; "python -" has none to re-run, and each rank would die on it.
            raise RuntimeError(f"spawned ranks re-import the main module, and {main_file} is no file: "
                               "run from a script (with an if __name__ == '__main__' guard), a module or python -c")
        spawn = mp.get_context("spawn")
        self._tmp = tempfile.mkdtemp(prefix="softmax-bench-dist-")
        init_method = "file://" + os.path.join(self._tmp, "rendezvous")
        self._state = spawn.RawArray("i", self.world_size)
        try:
            for rank in range(self.world_size):
                parent, child = spawn.Pipe()
                proc = spawn.Process(
                    target=_rank_main, name=f"softmax-bench-rank{rank}", daemon=True,
                    args=(child, rank, self.world_size, self.device, init_method, self.timeout, self.threads,
                          self.memory_limit, self._state),
                )
                proc.start()
                child.close()
                self._procs.append(proc)
                self._conns.append(parent)
            self._collect("ready", self.startup_timeout, "starting the group")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every rank: ask them to leave, then kill and join whatever remains. Idempotent."""
        for conn in self._conns:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 5
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        self._kill()

    def _kill(self) -> None:
        """Kill and join every rank process; nothing of the group outlives this."""
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():  # unkillable (stuck in the kernel): say so rather than hide it
                raise RuntimeError(f"rank process {proc.pid} survived SIGKILL")
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "RankGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a group dropped without close() still takes its ranks with it
        try:
            if self._procs:
                self._kill()
        except Exception:
            pass

    # -- tasks

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """``func(ctx, *args, **kwargs)`` on every rank; the results in rank order.

        ``func`` must be a module-level function (it is pickled by reference)
        and its result picklable. ``BackendFailure`` when a rank raises
        ("raised", or the kind the task gave), dies ("crashed") or the group
        does not finish within ``timeout`` seconds ("timeout"); the reason
        names the rank.
        """
        if self.in_place:
            return self._run_in_place(func, args, kwargs)
        self.start()
        for rank, conn in enumerate(self._conns):
            try:
                conn.send((func, args, kwargs))
            except (OSError, ValueError):
                pass  # that rank is gone; the collection below says how
        try:
            return self._collect("ok", self.timeout, "the task")
        except BackendFailure:
            raise
        except BaseException:  # Ctrl-C while waiting: the ranks ignore SIGINT, so stop them here
            self._kill()
            raise

    def _run_in_place(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> list[Any]:
        import torch.distributed as dist

        self.start()
        try:
            reply: tuple = ("ok", func(self._ctx, *args, **kwargs))
        except BaseException as exc:
            reply = ("error", _error_payload(exc)[:3])
        # Every rank learns every rank's outcome, so all of them raise the same
        # failure (or return the same results) and stay in step.
        replies: list[Any] = [None] * self.world_size
        dist.all_gather_object(replies, reply)
        failures = [(r, payload) for r, (status, payload) in enumerate(replies) if status == "error"]
        if failures:
            rank, (reason, kind, _inside) = sorted(failures, key=lambda f: f[1][2] is not None)[0]
            raise _rank_failure(rank, reason, kind)
        return [payload for _, payload in replies]

    def _collect(self, expect: str, timeout: float, what: str) -> list[Any]:
        """Wait for every rank's reply to a ``what``; on any failure tear the group down and raise."""
        results: list[Any] = [None] * self.world_size
        pending = set(range(self.world_size))
        failures: list[tuple[int, int, BackendFailure]] = []  # (priority, rank, failure)
        deadline = time.monotonic() + timeout
        grace: Optional[float] = None
        while pending:
            limit = deadline if grace is None else min(deadline, grace)
            remaining = limit - time.monotonic()
            if remaining <= 0:
                break
            waitables: dict[Any, tuple[int, str]] = {}
            for rank in pending:
                waitables[self._conns[rank]] = (rank, "conn")
                waitables[self._procs[rank].sentinel] = (rank, "sentinel")
            for ready in wait(list(waitables), remaining):
                rank, kind = waitables[ready]
                if rank not in pending:
                    continue
                conn = self._conns[rank]
                if kind == "sentinel" and conn.poll(0):
                    kind = "conn"  # it answered before it exited: read the answer
                if kind == "conn":
                    try:
                        status, payload = conn.recv()
                    except (EOFError, OSError):
                        self._procs[rank].join(5)
                        failures.append((0, rank, _rank_death(rank, self._procs[rank].exitcode)))
                        pending.discard(rank)
                        continue
                    pending.discard(rank)
                    if status == expect or (expect == "ready" and status == "ready"):
                        results[rank] = payload
                    else:
                        reason, fkind, inside, _tb = payload
                        failures.append((2 if inside else 1, rank, _rank_failure(rank, reason, fkind)))
                else:
                    self._procs[rank].join(5)
                    failures.append((0, rank, _rank_death(rank, self._procs[rank].exitcode)))
                    pending.discard(rank)
            if failures and grace is None:
                grace = time.monotonic() + GRACE_S
        if failures:
            # A group every rank answered is still in step (a collective completes on all
            # ranks or on none), so a task that raised costs that task only; a rank that
            # died or is still blocked takes the group down.
            if pending or expect == "ready" or any(priority == 0 for priority, _, _ in failures):
                self._kill()
            raise min(failures, key=lambda f: (f[0], f[1]))[2]
        if pending:
            failure = self._timeout_failure(sorted(pending), timeout, what)
            self._kill()
            raise failure
        return results

    def _timeout_failure(self, pending: list[int], timeout: float, what: str) -> BackendFailure:
        """Name the ranks that hung: those not blocked in a collective (the others wait for them)."""
        inside = {r: COLLECTIVES[self._state[r] - 1] for r in pending if self._state is not None and self._state[r] > 0}
        hung = [r for r in pending if r not in inside]
        waiting = ", ".join(f"rank {r} in {name}" for r, name in sorted(inside.items()))
        if hung:
            who = ", ".join(str(r) for r in hung)
            detail = f"rank{'s' if len(hung) > 1 else ''} {who} did not finish {what}"
            detail += f" (waiting for it: {waiting})" if waiting else ""
        else:
            detail = f"every unfinished rank is blocked in a collective ({waiting}): mismatched collectives"
        return BackendFailure(f"timed out after {timeout:g} s: {detail}", "timeout")


# --------------------------------------------------------------------------- checks of outputs


def _check_tensor(out: Any, shape: tuple, dtype: str, device: str, what: str) -> None:
    import torch

    if not isinstance(out, torch.Tensor):
        raise BackendFailure(f"{what}: returned {type(out).__module__}.{type(out).__name__}, not a torch tensor", "invalid")
    if tuple(out.shape) != tuple(shape):
        raise BackendFailure(f"{what}: returned shape {tuple(out.shape)}, expected {tuple(shape)}", "invalid")
    got = str(out.dtype).replace("torch.", "")
    if got != dtype:
        raise BackendFailure(f"{what}: returned {got} for {dtype} input", "invalid")
    if out.device.type != device:
        raise BackendFailure(f"{what}: returned a tensor on {out.device.type}, not {device}", "invalid")


def _vocab_backend(backend_name: str, plugin_files: Sequence[str]):
    backend = registry.cached(tuple(plugin_files)).get(backend_name)
    if backend.parallel != "vocab":
        raise ValueError(f"backend {backend_name!r} is not vocabulary-parallel (parallel={backend.parallel!r})")
    if backend.library != "torch":
        raise ValueError(f"backend {backend_name!r}: vocabulary-parallel backends take torch tensors, not {backend.library}")
    return backend


def _needs(backend: Any, name: str, op: str) -> Callable:
    fn = backend.function(name)
    if fn is None:
        raise ValueError(f"backend {backend.name!r} has no {name} (needed for {op})")
    return fn


def unavailable(backend_name: str, plugin_files: Sequence[str], device: str, world_size: int) -> Optional[str]:
    """``None`` when ``backend_name`` can run vocabulary-parallel on ``world_size`` ranks of ``device`` here, else why not.

    Cheap (no process is started): the backend's own availability, torch.distributed
    and its communication backend (gloo for cpu, NCCL for cuda), and one GPU per rank.
    """
    reg = registry.cached(tuple(plugin_files))
    try:
        backend = reg.get(backend_name)
    except KeyError as exc:
        return str(exc.args[0])
    if backend.parallel != "vocab":
        return f"not vocabulary-parallel (parallel={backend.parallel!r})"
    reason = reg.unavailable(backend_name, device)
    if reason:
        return reason
    try:
        import torch
        import torch.distributed as dist
    except Exception as exc:
        return f"torch.distributed is not importable ({describe_exception(exc)})"
    if not dist.is_available():
        return "this torch build has no torch.distributed"
    if device == "cpu" and not dist.is_gloo_available():
        return "this torch build has no gloo backend"
    if device == "cuda":
        if not dist.is_nccl_available():
            return "this torch build has no NCCL backend"
        count = torch.cuda.device_count()
        if count < world_size and launch_env() is None:
            return f"{world_size} ranks need {world_size} GPUs; torch sees {count}"
    return None


# --------------------------------------------------------------------------- correctness


def _as_rows(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` as (rows, n), the reduced axis last (a 1-D array is one row)."""
    moved = np.moveaxis(np.asarray(a), axis, -1)
    return moved.reshape(int(np.prod(moved.shape[:-1], dtype=np.int64)), moved.shape[-1])


def _from_rows(rows: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    """Undo ``_as_rows``: back to ``shape`` with the reduced axis where it was."""
    moved = list(shape)
    moved.append(moved.pop(axis % len(shape)))
    return np.moveaxis(rows.reshape(moved), -1, axis)


def _sharded_call(ctx: RankContext, backend_name: str, plugin_files: tuple, dtype: str, op: str,
                  inputs: dict[str, np.ndarray], axis: int) -> dict[str, np.ndarray]:
    """One rank's part of ``run_sharded``: its slices in, its output shard (and loss) out, as NumPy."""
    import torch

    with np.errstate(all="ignore"):
        backend = _vocab_backend(backend_name, plugin_files)
        adapter = adapters.get("torch")
        device = ctx.device
        main = "x" if "x" in inputs else "y"
        vocab = int(np.asarray(inputs[main]).shape[axis])
        shard = ctx.shard(vocab)
        cols = slice(shard.start, shard.stop)

        def local(name: str) -> Any:  # this rank's columns of a (rows, vocab) input, on the device in dtype
            return adapter.from_numpy(_as_rows(inputs[name], axis)[:, cols], device, dtype)

        rows = _as_rows(inputs[main], axis).shape[0]
        expect = (rows, shard.size)
        where = f"{op} on rank {ctx.rank}"
        out: dict[str, np.ndarray] = {}
        if op in SOFTMAX_OPS:
            y = _needs(backend, op, op)(local("x"), axis=-1, shard=shard)
        elif op in SOFTMAX_VJP_OPS:
            y = _needs(backend, op, op)(local("y"), local("dy"), axis=-1, shard=shard)
        elif op == "ce_grad":  # the suite's p - onehot through the backend's log_softmax and its VJP
            z = _needs(backend, "log_softmax", op)(local("x"), axis=-1, shard=shard)
            _check_tensor(z, expect, dtype, device, f"log_softmax on rank {ctx.rank}")
            y = _needs(backend, "log_softmax_vjp", op)(z, local("dy"), axis=-1, shard=shard)
        else:
            target = torch.from_numpy(np.asarray(inputs["target"], dtype=np.int64).reshape(-1)).to(device)
            if target.shape[0] != rows:
                raise ValueError(f"target has {target.shape[0]} entries for {rows} rows")
            if op == "cross_entropy":
                loss = _needs(backend, "cross_entropy", op)(local("x"), target, ignore_index=IGNORE_INDEX, shard=shard)
                y = None
            else:
                dloss = adapter.from_numpy(np.asarray(inputs["dloss"], dtype=np.float64).reshape(-1), device, dtype)
                result = _needs(backend, "cross_entropy_fwd_bwd", op)(local("x"), target, dloss,
                                                                   ignore_index=IGNORE_INDEX, shard=shard)
                if not isinstance(result, tuple) or len(result) != 2:
                    raise BackendFailure(f"{where}: cross_entropy_fwd_bwd must return (loss, dlogits)", "invalid")
                loss, y = result
            _check_tensor(loss, (rows,), dtype, device, f"{where} (loss)")
            if device == "cuda":
                torch.cuda.synchronize()
            out["loss"] = adapter.to_numpy(loss)
        if y is not None:
            _check_tensor(y, expect, dtype, device, where)
            if device == "cuda":
                torch.cuda.synchronize()
            out["shard"] = adapter.to_numpy(y)
        return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)


@contextlib.contextmanager
def _group(group: Optional["RankGroup"], world_size: int, device: str, timeout: float, memory_limit: Optional[int]):
    """The group given (checked against world size and device), or a new one closed afterwards."""
    if group is not None:
        if group.world_size != world_size or group.device != device:
            raise ValueError(f"the group given has {group.world_size} ranks on {group.device}, not {world_size} on {device}")
        yield group
        return
    owned = RankGroup(world_size, device, timeout, memory_limit=memory_limit)
    try:
        yield owned
    finally:
        owned.close()


def run_sharded(
    backend_name: str,
    plugin_files: Sequence[str],
    device: str,
    dtype: str,
    op: str,
    inputs: Mapping[str, np.ndarray],
    world_size: int,
    timeout: float = 120.0,
    axis: int = -1,
    *,
    group: Optional[RankGroup] = None,
    memory_limit: Optional[int] = None,
) -> np.ndarray:
    """Run ``op`` of a vocabulary-parallel backend on ``world_size`` ranks; the gathered output as NumPy.

    ``inputs`` are the full NumPy (float64) arrays the suite builds: {"x"}
    for softmax and log_softmax; {"y", "dy"} for the explicit VJPs
    (softmax_vjp, log_softmax_vjp); {"x", "dy"} for ce_grad (log_softmax, then
    log_softmax_vjp); {"x", "target", "dloss"} for cross_entropy (the loss
    per row) and cross_entropy_grad (dlogits, from ``cross_entropy_fwd_bwd``),
    ``target`` int64 per row (``IGNORE_INDEX`` = -100: ignored), ``dloss`` the
    upstream gradient per row. The reduced axis ``axis`` of every full-size
    array is moved last and the rest flattened to rows; each rank takes its
    ``Shard`` of the columns, converted to torch on ``device`` in ``dtype``,
    and calls the backend's function with ``axis=-1, shard=...``.

    Returns an array of ``dtype`` (bfloat16 through ml_dtypes): the shape of
    the input for every op but ``cross_entropy``, which returns the loss per
    row (the input's shape without ``axis``). A loss must be identical on
    every rank. Raises ``BackendFailure`` for what the backend did (raised,
    crashed, hung, returned the wrong shape, dtype or device, or ranks
    disagreeing on the loss) and ``ValueError`` for a request that cannot be
    made (an unknown op, a backend that is not vocabulary-parallel or lacks
    the op). ``group`` reuses a started ``RankGroup`` of the same world size
    and device (it is left open); otherwise one is started and closed here.
    """
    if op not in SHARDED_OPS:
        raise ValueError(f"unknown op {op!r}; valid: {', '.join(SHARDED_OPS)}")
    needed = {"softmax": ("x",), "log_softmax": ("x",), "softmax_vjp": ("y", "dy"), "log_softmax_vjp": ("y", "dy"),
              "ce_grad": ("x", "dy"), "cross_entropy": ("x", "target"), "cross_entropy_grad": ("x", "target", "dloss")}[op]
    missing = [name for name in needed if name not in inputs]
    if missing:
        raise ValueError(f"{op} needs inputs {', '.join(needed)}; missing {', '.join(missing)}")
    given = {name: np.asarray(inputs[name]) for name in needed}
    main = given[needed[0]]
    if main.ndim == 0:
        raise ValueError(f"{op}: a 0-d input has no axis to reduce")
    _vocab_backend(backend_name, plugin_files)  # refuse early, in this process, what no rank could run
    with _group(group, world_size, device, timeout, memory_limit) as ranks:
        parts = ranks.run(_sharded_call, backend_name, tuple(plugin_files), dtype, op, given, axis)
    other_shape = tuple(n for i, n in enumerate(main.shape) if i != axis % main.ndim)
    if "loss" in parts[0]:
        for rank, part in enumerate(parts[1:], start=1):
            if not _same(part["loss"], parts[0]["loss"]):
                row = int(np.argmax(~np.isclose(np.asarray(part["loss"], np.float64),
                                                np.asarray(parts[0]["loss"], np.float64), rtol=0, atol=0, equal_nan=True)))
                raise BackendFailure(f"rank {rank}'s loss differs from rank 0's at row {row}: "
                                     f"{float(part['loss'][row])!r} vs {float(parts[0]['loss'][row])!r}", "invalid")
        if op == "cross_entropy":
            return parts[0]["loss"].reshape(other_shape)
    full = np.concatenate([part["shard"] for part in parts], axis=-1)
    return _from_rows(full, main.shape, axis)


# --------------------------------------------------------------------------- timing


class InStepSampler:
    """``clock.time_calls``'s sampler on one rank: every rank takes each sample in step; it lasts as long as the slowest rank's.

    ``time_calls`` runs on every rank of the group with one of these around
    the rank's own ``clock.LocalSampler`` (its calls on its own inputs, the
    device's completion, its own clock). A sample is a barrier, the local
    sample, then one all_reduce MAX of [elapsed, wall time since the previous
    sample]: the sample's time is the slowest rank's, and ``clock()`` sums
    the slowest wall times. The timer decides (warm-up length, ``inner``,
    when to stop) on these values only, identical on every rank, so every
    rank makes the same calls and the collectives inside them stay matched;
    a rank's own clock would let one rank stop a sample before the others.
    """

    def __init__(self, ctx: RankContext, local: clock.LocalSampler):
        self.ctx, self.local = ctx, local
        self.mine: list[float] = []  # this rank's own seconds per call, one per sample taken (load imbalance)
        self._agreed = 0.0
        self._mark = time.perf_counter()

    def __call__(self, n: int, warm_up: bool = False) -> float:
        import torch.distributed as dist

        dist.barrier(group=self.ctx.group)
        mine = self.local(n, warm_up)
        now = time.perf_counter()
        wall, self._mark = now - self._mark, now
        self.mine.append(mine / n)
        elapsed, wall = _slowest(self.ctx, mine, wall)
        self._agreed += wall
        return elapsed

    def clock(self) -> float:
        """Seconds since this sampler was made, as the slowest rank saw them at the last sample: equal on every rank."""
        return self._agreed


def _slowest(ctx: RankContext, *seconds: float) -> list[float]:
    """The largest value of each of ``seconds`` over the ranks (one all_reduce MAX)."""
    import torch
    import torch.distributed as dist

    t = torch.tensor(seconds, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=ctx.group)
    return [float(v) for v in t.tolist()]


def _time_in_step(ctx: RankContext, fn: Callable, inputs: list, budget: Any,
                  first: Optional[float] = None) -> tuple[clock.Timing, Optional[float]]:
    """``fn(*args)`` over ``inputs`` timed by the one timer, in step on every rank, and this rank's own median per call."""
    adapter = adapters.get("torch")
    local = clock.LocalSampler(fn, inputs, lambda out: adapter.wait(out, ctx.device), adapter.ordered)
    sampler = InStepSampler(ctx, local)
    timing = clock.time_calls(budget=budget, first=first, sampler=sampler)
    # The timer keeps the last ``repeats`` samples (see clock._calibrate): this rank's share of them.
    mine = sampler.mine[-timing.repeats:]
    return timing, clock.median(mine) if mine else None


def _first_call(ctx: RankContext, fn: Callable, args: tuple) -> tuple[float, list[tuple[str, int, tuple, Any, Any]], Any]:
    """The first call, alone and metered: the slowest rank's seconds, the collectives it made, its output."""
    import torch.distributed as dist

    adapter = adapters.get("torch")
    m = meter()
    dist.barrier(group=ctx.group)
    m.start()
    start = time.perf_counter()
    try:
        out = adapter.wait(fn(*args), ctx.device)
    finally:
        calls = m.stop()
    mine = time.perf_counter() - start
    return _slowest(ctx, mine)[0], calls, out


def _replay(calls: list[tuple[str, int, tuple, Any, Any]], device: str, group: Any) -> Optional[Callable[[], Any]]:
    """A call making the same all_reduces (shapes, dtypes, ops) as ``calls``, and nothing else; None if not all are all_reduce."""
    import torch
    import torch.distributed as dist

    if any(name != "all_reduce" for name, *_ in calls):
        return None
    plan = [(torch.ones(shape, dtype=dtype, device=device), op) for _, _, shape, dtype, op in calls]
    reduce = getattr(dist.all_reduce, "__wrapped__", dist.all_reduce)  # the bare collective, unmetered

    def call() -> None:
        for tensor, op in plan:
            if op is None:
                reduce(tensor, group=group)
            else:
                reduce(tensor, op=op, group=group)

    return call


def _timed_op(ctx: RankContext, backend: Any, dtype: str, op: str, pass_: str, rows: int, vocab: int,
              seed: int) -> tuple[Callable, tuple, Callable[[Any], None]]:
    """What one rank times for ``op`` in ``pass_``: ``fn``, the arg tuple of its own inputs, and the check of an output.

    ``fn(*args)`` is the timed call; everything else (targets, the upstream
    loss gradient, saved forward outputs) is made here, before any timing.
    """
    import torch

    adapter = adapters.get("torch")
    device = ctx.device
    shard = ctx.shard(vocab)
    local = (rows, shard.size)
    # Each rank draws its own columns; what every rank must agree on (targets,
    # the upstream loss gradient) comes from one seed shared by all.
    x = adapter.randn(local, dtype, device, seed * 7919 + ctx.rank)
    shared = torch.Generator().manual_seed(seed)
    where = f"{backend.name} {op} {pass_} on rank {ctx.rank}"

    def check_local(out: Any) -> None:
        _check_tensor(out, local, dtype, device, where)

    if op in ("softmax", "log_softmax"):
        forward = _needs(backend, op, op)
        if pass_ == "fwd":
            return (lambda x: forward(x, axis=-1, shard=shard)), (x,), check_local
        vjp = _needs(backend, f"{op}_vjp", f"{op} {pass_}")
        dy = adapter.randn(local, dtype, device, seed * 7919 + 104729 + ctx.rank)
        if pass_ == "bwd":
            y = forward(x, axis=-1, shard=shard)  # the saved forward output
            return (lambda y, dy: vjp(y, dy, axis=-1, shard=shard)), (y, dy), check_local
        return (lambda x, dy: vjp(forward(x, axis=-1, shard=shard), dy, axis=-1, shard=shard)), (x, dy), check_local

    target = torch.randint(0, max(vocab, 1), (rows,), generator=shared).to(device)
    dloss = torch.randn((rows,), generator=shared, dtype=torch.float32).to(device=device, dtype=getattr(torch, dtype))
    if pass_ == "fwd":
        ce = _needs(backend, "cross_entropy", "cross_entropy fwd")
        return ((lambda x: ce(x, target, ignore_index=IGNORE_INDEX, shard=shard)), (x,),
                lambda out: _check_tensor(out, (rows,), dtype, device, where))
    if pass_ == "bwd":
        # The VJP given the saved forward output: the log_softmax VJP with
        # dy = -onehot(target) * dloss, as autograd would feed it.
        log_softmax = _needs(backend, "log_softmax", "cross_entropy bwd")
        vjp = _needs(backend, "log_softmax_vjp", "cross_entropy bwd")
        y = log_softmax(x, axis=-1, shard=shard)
        dy = torch.zeros(local, dtype=x.dtype, device=device)
        owned = (target >= shard.start) & (target < shard.stop)
        idx = torch.nonzero(owned).flatten()
        dy[idx, target[idx] - shard.start] = -dloss[idx]
        return (lambda y, dy: vjp(y, dy, axis=-1, shard=shard)), (y, dy), check_local
    fused = _needs(backend, "cross_entropy_fwd_bwd", "cross_entropy full")

    def check_fused(out: Any) -> None:
        if not isinstance(out, tuple) or len(out) != 2:
            raise BackendFailure(f"{where}: cross_entropy_fwd_bwd must return (loss, dlogits)", "invalid")
        _check_tensor(out[0], (rows,), dtype, device, where + " (loss)")
        _check_tensor(out[1], local, dtype, device, where + " (dlogits)")

    return (lambda x: fused(x, target, dloss, ignore_index=IGNORE_INDEX, shard=shard)), (x,), check_fused


def _rotation(args: tuple, buffers: int) -> list[tuple]:
    """``buffers`` arg tuples equal to ``args``, each in its own memory (the cold-cache rotation), or ``[args]``."""
    if buffers <= 1:
        return [args]
    adapter = adapters.get("torch")
    return list(zip(*(adapter.replicate(a, buffers) for a in args)))


def _sharded_timing(ctx: RankContext, backend_name: str, plugin_files: tuple, dtype: str, op: str, pass_: str,
                    rows: int, vocab: int, budget: Any, seed: int, measure_comm: bool,
                    buffers: int = 1) -> dict[str, Any]:
    """One rank's part of ``time_sharded``."""
    backend = _vocab_backend(backend_name, plugin_files)
    fn, args, check = _timed_op(ctx, backend, dtype, op, pass_, rows, vocab, seed)
    inputs = _rotation(args, buffers)
    first, calls, out = _first_call(ctx, fn, inputs[0])
    check(out)
    del out
    timing, rank_median = _time_in_step(ctx, fn, inputs, budget, first)
    fields: dict[str, Any] = dict(
        median_s=timing.median_s, iqr_s=timing.iqr_s, repeats=timing.repeats, inner=timing.inner,
        samples_s=timing.samples_s, rank_median_s=rank_median, first_call_s=first, collectives=len(calls),
        comm_bytes=sum(c[1] for c in calls), collective_names=[c[0] for c in calls],
    )
    if measure_comm:
        # A separate measurement: the same collectives alone, timed by the same timer.
        replay = _replay(calls, ctx.device, ctx.group) if calls else None
        comm = _time_in_step(ctx, lambda: replay(), [()], budget)[0] if replay is not None else None
        fields["comm_median_s"] = comm.median_s if comm else (0.0 if not calls else None)
        fields["comm_iqr_s"] = comm.iqr_s if comm else None
    fields["host"] = socket.gethostname()
    return fields


def cold_buffers(rows: int, vocab: int, world_size: int, dtype: str, mode: str, llc: int) -> int:
    """Input sets each rank rotates through in ``mode``: 1 warm; cold, enough that the widest
    rank's shard exceeds ``memory.COLD_FACTOR`` x its device's last-level cache ``llc``."""
    widest = max(stop - start for start, stop in split(vocab, world_size))
    return buffer_count(rows * widest * info(dtype).itemsize, mode, llc)


def time_sharded(
    backend_name: str,
    plugin_files: Sequence[str],
    device: str,
    dtype: str,
    op: str,
    pass_: str,
    rows: int,
    vocab: int,
    world_size: int,
    budget: Any = DEFAULT_BUDGET,
    timeout: float = 120.0,
    *,
    group: Optional[RankGroup] = None,
    seed: int = 0,
    measure_comm: bool = True,
    memory_limit: Optional[int] = None,
    mode: str = "warm",
    llc: Optional[int] = None,
) -> dict[str, Any]:
    """Time one vocabulary-parallel op on ``world_size`` ranks: the slowest rank's time per call.

    Each rank draws its shard of standard-normal inputs (rows x its columns
    of ``vocab``) on its device; targets and the upstream loss gradient come
    from one seed shared by all ranks. ``op`` is softmax, log_softmax or
    cross_entropy; ``pass_``:

    - fwd: the forward op (cross_entropy: the loss per row);
    - bwd: the backward given saved forward outputs (softmax_vjp / log_softmax_vjp
      on the forward output; cross_entropy: log_softmax_vjp of the saved
      log_softmax with dy = -onehot(target) * dloss);
    - full: both in one call (softmax then its VJP; cross_entropy:
      ``cross_entropy_fwd_bwd``).

    ``mode`` is warm (every call on the same inputs) or cold: each rank
    rotates through copies of its inputs in distinct memory, enough that the
    widest shard's copies exceed twice the last-level cache ``llc`` (default:
    the device's, ``memory.llc_bytes``), as the single-process cold mode does.

    The first call is timed alone, metered (the collectives it makes, counted
    through a shim around torch.distributed) and checked (shape, dtype,
    device). Then ``clock.time_calls`` on every rank, with an
    ``InStepSampler``: warm-up, calibration of ``inner`` and samples as for
    any backend, each sample a barrier, ``inner`` calls and the device's
    completion, timed by every rank on its own clock and all-reduced with
    MAX: a sample is as slow as the slowest rank. ``budget`` is a
    ``clock.Budget`` (or anything with its fields). With ``measure_comm`` the
    same collectives (same shapes, dtypes and reduce ops, no compute) are
    timed alone, by the same timer.

    Returns median_s, iqr_s, repeats, inner, first_call_s (each the slowest
    rank's), samples_s, world_size, collectives (per call), comm_bytes (bytes
    each rank contributes to the collectives per call: the sum of the input
    tensors' nbytes; a ring all_reduce moves about 2(W-1)/W of that each way),
    collective_names, comm_median_s and comm_iqr_s (the collectives alone;
    None when they are not all all_reduces), comm_share (comm_median_s /
    median_s), rank_median_s (each rank's own median per call: load imbalance),
    shards (columns per rank), threads (torch threads per rank on CPU),
    buffers and llc_bytes (the rotation), and op, pass, mode, rows, vocab,
    dtype, device, backend, hosts. Failures as in ``run_sharded``.
    """
    if op not in TIMED_OPS:
        raise ValueError(f"unknown op {op!r} to time; valid: {', '.join(TIMED_OPS)}")
    if pass_ not in PASSES:
        raise ValueError(f"unknown pass {pass_!r}; valid: {', '.join(PASSES)}")
    if mode not in ("warm", "cold"):
        raise ValueError(f"unknown mode {mode!r}; valid: warm, cold")
    if rows < 1 or vocab < 1:
        raise ValueError(f"rows and vocab must be positive, not {rows} x {vocab}")
    _vocab_backend(backend_name, plugin_files)
    llc = llc or llc_bytes(device)
    buffers = cold_buffers(rows, vocab, world_size, dtype, mode, llc)
    if buffers > MAX_BUFFERS:
        raise ValueError(f"cold mode at {rows}x{vocab} {dtype} on {world_size} ranks needs {buffers} buffers "
                         f"(more than {MAX_BUFFERS})")
    with _group(group, world_size, device, timeout, memory_limit) as ranks:
        per_rank = ranks.run(_sharded_timing, backend_name, tuple(plugin_files), dtype, op, pass_, rows, vocab,
                             budget, seed, measure_comm, buffers)
        threads = ranks.threads
    result = dict(per_rank[0])
    result.pop("host", None)
    result.update(
        backend=backend_name, device=device, dtype=dtype, op=op, **{"pass": pass_}, mode=mode, rows=rows, vocab=vocab,
        world_size=world_size, shards=[stop - start for start, stop in split(vocab, world_size)],
        threads=threads, buffers=buffers, llc_bytes=llc, rank_median_s=[r["rank_median_s"] for r in per_rank],
        collectives=max(r["collectives"] for r in per_rank), comm_bytes=max(r["comm_bytes"] for r in per_rank),
        hosts=[r["host"] for r in per_rank],
    )
    comm = result.get("comm_median_s")
    result["comm_share"] = (comm / result["median_s"]) if comm is not None and result["median_s"] > 0 else None
    return result
