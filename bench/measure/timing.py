"""One measurement, as every front end takes it: the CLI's worker, asv and pytest-benchmark.

``prepare`` builds a ``PreparedCall``: the backend's op in a pass
(``workloads``) on device inputs of one size, ready to call, with its
completion (``wait``) and its contract check. Nothing of that is timed.

``measure`` is the task the isolated worker runs for ``softmax-bench run``:
a plain copy of the same bytes with the same library (the bandwidth
ceiling), the first call (checked against the contract: a backend returning
garbage is not timed), the timer's samples with new input values before
each and the last output of each checked after it (``workloads.Inputs``),
and the peak memory of one call, measured apart from the timing. A timing
the engine cannot trust gets a ``suspect`` reason (``suspicion``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..core import adapters, registry, threads
from ..core.dtypes import info
from .memory import MAX_BUFFERS, buffer_count, llc_bytes, peak_memory
from ..core.selection import unavailable
from ..core.sizes import Size
from .clock import DEFAULT_BUDGET, Budget, resolution, time_calls
from .workloads import Inputs, Workload, build, unsupported

MODES = ("warm", "cold")
# A timing faster than a plain copy of the same bytes on the same device by
# more than this is physically impossible for a memory-bound op: run-to-run
# noise on these machines is within 10-20%, and cache effects are the same
# for the copy and the op (both time the same buffers in the same mode).
CEILING_MARGIN = 1.25
# A read-only stream (the loss alone reads the logits and writes one number a
# row) has no write-allocate traffic, which costs a copy about half its time:
# it may legitimately approach twice a copy's GB/s.
READ_ONLY_MARGIN = 2.5


class Unavailable(NotImplementedError):
    """The backend cannot run this here (asv skips on NotImplementedError)."""


@dataclass
class PreparedCall:
    """One backend's op and pass, ready to call on device inputs of one size: what every front end times."""

    workload: Workload
    size: Size
    inputs: Inputs

    @property
    def fn(self):
        """What is timed: ``fn(*args)`` for each arg tuple of ``inputs.args``."""
        return self.workload.fn

    @property
    def adapter(self):
        return self.workload.adapter

    def wait(self, result: Any) -> Any:
        """Block until ``result`` (an output or a list of them) is computed on the device."""
        return self.workload.adapter.wait(result, self.workload.device)

    def call(self, args: Optional[tuple] = None) -> Any:
        """One completed call on ``args`` (default: the first buffer's); returns the output."""
        return self.wait(self.fn(*(self.inputs.args[0] if args is None else args)))

    def check(self, out: Any) -> None:
        """``BackendFailure`` unless ``out`` honours the contract for this call."""
        self.workload.check(out, self.size.rows, self.size.vocab)

    def verify(self, out: Any, sample: int = 0) -> Optional[str]:
        """Why ``out`` (of the first buffer's call) is wrong, or None: a float64 check on a few rows."""
        return self.inputs.verify(sample, self.inputs.args[0], out)

    def to_numpy(self, y: Any) -> np.ndarray:
        """An output (or input) of this call as a NumPy array on the host."""
        return self.workload.adapter.to_numpy(y)


def prepare(
    backend_name: str,
    device: str,
    dtype: str,
    size: Size,
    buffers: int = 1,
    plugin_files: Sequence[str] = (),
    seed: int = 0,
    op: str = "softmax",
    pass_: str = "fwd",
    options: Any = None,
) -> PreparedCall:
    """Random inputs on the device (``buffers`` sets), nothing timed.

    Raises ``Unavailable`` when the backend cannot run ``op`` in ``pass_`` on
    ``device`` with ``dtype`` here, with the reason.
    """
    reg = registry.cached(plugin_files)
    backend = reg.get(backend_name)
    reason = unavailable(reg, backend_name, device, dtype) or unsupported(backend, op, pass_)
    if reason:
        raise Unavailable(f"{backend_name} {op} {pass_} on {device} {dtype}: {reason}")
    workload = build(backend, device, dtype, op, pass_, options)
    return PreparedCall(workload, size, Inputs(workload, size.rows, size.vocab, buffers, seed))


def gbps(nbytes: int, seconds: Optional[float]) -> Optional[float]:
    """Effective bandwidth: the bytes one call must move over its time, in GB/s."""
    if not seconds or seconds <= 0:
        return None
    return nbytes / seconds / 1e9


def copy_budget(budget: Budget) -> Budget:
    """The copy's budget: a plain copy is steady, so a shorter warm-up and fewer samples do."""
    return dataclasses.replace(budget, warmup_s=budget.warmup_s / 2, repeats=max(budget.min_repeats, budget.repeats // 2))


# Elements per thread of the exp-rate buffer: 32 KiB of float32, in L1/L2 of one
# core, so the figure is the exponential's own throughput, not memory's.
EXP_ELEMENTS_PER_THREAD = 8192


def exp_rate(adapter: Any, device: str, dtype: str, thread_count: int, budget: Budget,
             wait: Callable[[Any], Any], own_exp: Optional[Callable[[Any, Any], None]] = None) -> Optional[float]:
    """Exponentials per second of the library's own ``exp`` over an in-cache buffer.

    The buffer holds ``EXP_ELEMENTS_PER_THREAD`` elements per thread the timing
    uses, values in [-10, 0] (what exp(x - max) sees). A library that runs its
    exp on one thread (NumPy) is measured on one and scaled by the thread count:
    the exp of separate cores over their own caches does not share a resource.
    ``own_exp(x, out)``: the backend's own inlined exponential instead (Backend.exp;
    one thread, scaled).
    """
    xp = adapter.xp
    n = EXP_ELEMENTS_PER_THREAD * max(1, thread_count)
    x = adapter.from_numpy(np.linspace(-10.0, 0.0, n), device, dtype)
    if own_exp is not None:
        out = np.empty_like(x)
        fn = lambda a: own_exp(a, out)  # noqa: E731
        timing = time_calls(fn, [(x,)], wait, copy_budget(budget), adapter.ordered)
        return n * thread_count / timing.median_s if timing.median_s else None
    try:
        out = xp.empty_like(x)
        xp.exp(x, out=out)
        fn = lambda a: xp.exp(a, out=out)  # noqa: E731 - no allocation in the timed call
    except TypeError:  # jax: no out=
        fn = xp.exp
    timing = time_calls(fn, [(x,)], wait, copy_budget(budget), adapter.ordered)
    if not timing.median_s:
        return None
    scale = thread_count if adapter.library == "numpy" else 1
    return n * scale / timing.median_s


def roofline(nbytes: Optional[float], copy_gbps_: Optional[float], exps: Optional[float],
             exp_rate_: Optional[float]) -> tuple[Optional[float], Optional[str]]:
    """(roofline_s, which ceiling binds: "copy" or "exp"): the slower of the bytes over the
    copy bandwidth and the exponentials over the exp rate; (None, None) unless both are known."""
    if not (nbytes and copy_gbps_ and exps and exp_rate_):
        return None, None
    memory_s, exp_s = nbytes / (copy_gbps_ * 1e9), exps / exp_rate_
    return (exp_s, "exp") if exp_s > memory_s else (memory_s, "copy")


def suspicion(gbps_: Optional[float], copy_gbps: Optional[float], margin: float, median_s: Optional[float]) -> Optional[str]:
    """Why a timing is physically impossible, or None."""
    if median_s is not None and median_s < resolution():
        return f"a call took {median_s:.2g} s, below the timer's resolution ({resolution():.2g} s)"
    if gbps_ and copy_gbps and gbps_ > margin * copy_gbps:
        return (f"faster than a copy: {gbps_:.3g} GB/s against the fastest copy's {copy_gbps:.3g} GB/s "
                f"on this device (more than {margin:g}x)")
    return None


def ceiling_margin(op: str, pass_: str) -> float:
    """How far above a copy's GB/s an op may go before it is impossible (see READ_ONLY_MARGIN)."""
    return READ_ONLY_MARGIN if (op, pass_) == ("cross_entropy", "fwd") else CEILING_MARGIN


def _releases_device_memory(measure_fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """``measure_fn``, then the device memory the library's allocator keeps cached handed back.

    A worker per backend lives through a whole run, and on the H200 eight of
    them, each keeping the blocks of its largest unit, ran the 139 GiB card
    out of memory. The hand-back comes after ``measure_fn`` has returned (or
    raised), when its arrays are gone.
    """
    signature = inspect.signature(measure_fn)

    @functools.wraps(measure_fn)
    def measured(*args: Any, **kwargs: Any) -> dict[str, Any]:
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        try:
            return measure_fn(*args, **kwargs)
        finally:
            where = given.arguments
            if where["device"] != "cpu":
                library = registry.cached(where["plugin_files"]).get(where["backend_name"]).library
                if not adapters.library_unavailable(library):
                    adapters.get(library).release_cached(where["device"])

    return measured


@_releases_device_memory
def measure(
    backend_name: str,
    device: str,
    dtype: str,
    rows: int,
    vocab: int,
    mode: str,
    *,
    budget: Budget = DEFAULT_BUDGET,
    with_copy: bool = True,
    llc: Optional[int] = None,
    plugin_files: Sequence[str] = (),
    op: str = "softmax",
    pass_: str = "fwd",
    thread_count: Optional[int] = None,
    options: Any = None,
) -> dict[str, Any]:
    """Time one (backend, device, dtype, size, mode, op, pass); runs inside the isolated worker.

    Returns the timing record's measured fields, with (``with_copy``) the
    bandwidth of a plain copy of the same inputs with the same library,
    measured here, just before: each unit carries its own ceiling, whatever
    ran before it. A backend that raises or returns the wrong thing raises
    ``BackendFailure``.
    """
    threads.apply(thread_count)
    size = Size(rows, vocab)
    llc = llc or llc_bytes(device)
    buffers = buffer_count(size.nbytes(dtype), mode, llc)
    if buffers > MAX_BUFFERS:
        raise ValueError(f"cold mode at {size.label} {dtype} needs {buffers} buffers (more than {MAX_BUFFERS})")
    prepared = prepare(backend_name, device, dtype, size, buffers=buffers, plugin_files=plugin_files, op=op, pass_=pass_,
                       options=options)
    workload, inputs, adapter = prepared.workload, prepared.inputs, prepared.adapter
    in_place = op in workload.backend.overwrites_input
    if in_place:
        # One call per sample, each on inputs refilled before it: a call never sees an earlier one's writes.
        budget = dataclasses.replace(budget, min_sample_s=0.0)

    copy_gbps = None
    if with_copy:
        copy = adapter.copy_op(inputs.arrays[0]["x"])
        copy_time = time_calls(copy, [(a["x"],) for a in inputs.arrays], prepared.wait, copy_budget(budget), adapter.ordered)
        copy_gbps = gbps(2 * size.nbytes(dtype), copy_time.median_s)
    per_element = workload.backend.exps_per_element.get((op, pass_))
    rate_of_exp = None
    if with_copy and per_element is not None:
        # The compute ceiling beside the copy: same device, same run, same threads.
        used = threads.count(workload.backend.library, workload.backend.threads) if device == "cpu" else 1
        rate_of_exp = exp_rate(adapter, device, dtype, used, budget, prepared.wait, workload.backend.exp)

    start = time.perf_counter()
    out = prepared.call()
    first = time.perf_counter() - start
    prepared.check(out)
    del out
    problems: list[str] = []

    def inspect(sample: int, args: tuple, out: Any) -> None:
        if not problems:
            problem = inputs.verify(sample, args, out)
            if problem:
                problems.append(problem)

    timing = time_calls(workload.fn, inputs.args, prepared.wait, budget, adapter.ordered, first=first,
                        refresh=inputs.refill, inspect=inspect)

    # Peak memory apart from the timing, in a worker that holds one buffer set
    # and nothing else: the cold rotation's other inputs are released first.
    inputs.release_all_but_one()
    args = inputs.args[0]
    peak = peak_memory(adapter, device, lambda: prepared.call(args), workload.backend.release,
                       planned=lambda: adapter.planned_peak(workload.fn, args))
    model = workload.byte_model
    moved = model.bytes(rows, vocab, info(dtype).itemsize)
    fields = asdict(timing)
    fields.pop("samples_s")
    rate = gbps(moved, timing.median_s)
    fields.update(
        gbps=rate, copy_gbps=copy_gbps, bytes=moved, byte_model=model.text, route=workload.route,
        includes_bwd=workload.includes_bwd, threads=threads.count(workload.backend.library, workload.backend.threads) if device == "cpu" else None,
        buffers=buffers, llc_bytes=llc, in_place=in_place or None, **peak,
        exps=per_element * rows * vocab if per_element is not None else None, exp_rate=rate_of_exp,
        # The ceiling is the fastest copy of the whole run (planning.finalize); here, what one unit knows.
        suspect=problems[0] if problems else suspicion(rate, None, ceiling_margin(op, pass_), timing.median_s),
    )
    return fields
