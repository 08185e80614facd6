"""The timing engine: one measurement used by the CLI, asv and pytest-benchmark.

What one measurement does (``measure``, run inside the backend's isolated
worker, so process start-up and pipe traffic stay outside the timed region):

1. Inputs are generated on the device by the library's adapter (``randn``),
   and for the cold-cache mode replicated into enough distinct buffers that
   together they exceed ``COLD_FACTOR`` times the last-level cache. Nothing of
   that is timed.
2. The first call is timed alone (``first_call_s``: it includes JIT or
   compilation) and its output is checked against the contract (array type,
   shape, dtype, device): a backend returning garbage is not timed.
3. Warm-up by time (``Budget.warmup_s``, at least ``warmup_calls`` calls), then
   inner iterations are calibrated so that one sample lasts at least
   ``min_sample_s``: thousands of times the resolution of ``perf_counter``.
4. Samples: ``inner`` calls, then the library's completion (torch and CuPy
   synchronise the device, JAX blocks on the outputs, NumPy is done when it
   returns), then the clock. The result is the median per call with its
   interquartile range over the samples.
5. Peak memory of one call, measured apart from the timing (tracemalloc for
   NumPy, the resident-set high-water mark for torch and JAX on CPU, the
   allocator's peak on CUDA).

``cmd_run`` is the ``softmax-bench run`` command built on it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import glob
import math
import os
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import adapters, registry
from .backend import Backend
from .cli import UsageError
from .execute import check_output
from . import suite
from .sizes import Size, human_bytes, working_set
from .suite import Selection, Unit

MODES = ("warm", "cold")
OP = "softmax"
BASELINE = "max-shift"  # the comparison table's reference backend

# Used where the last-level cache cannot be read: at least every CPU LLC and
# GPU L2 in common use (H100 50 MB, MI300X 256 MB Infinity Cache), so a cold
# run stays cold when we guess.
DEFAULT_LLC_BYTES = 256 * 2**20
# Cold mode rotates through inputs totalling at least this many LLCs. Every
# call also writes an output of the same size, so between two uses of one
# buffer at least 4 LLCs of data pass through the cache: even under random
# replacement about exp(-4) ~ 2% of it could survive.
COLD_FACTOR = 2
# Rotating millions of tiny arrays costs more memory in Python objects than in
# data; inputs that would need more buffers than this get no cold figure.
MAX_BUFFERS = 2**18
# Overrides the detected last-level cache size, in bytes (a wrong sysfs figure
# in a VM, or a short cold run in tests).
LLC_ENV = "SOFTMAX_BENCH_LLC_BYTES"


@dataclass(frozen=True)
class Budget:
    """How long one measurement may take; every front end and test can shrink it.

    ``repeats`` samples are taken, fewer (but at least ``min_repeats``) once
    sampling has taken ``max_s``: slow calls at large sizes still finish.
    """

    warmup_s: float = 0.2
    warmup_calls: int = 3
    min_sample_s: float = 0.01
    repeats: int = 15
    min_repeats: int = 5
    max_s: float = 2.0


MAX_INNER = 10**7  # calls per sample; a no-op needs ~3e5 for a 10 ms sample
DEFAULT_BUDGET = Budget()
# --quick: proves the run works; not for judging speed.
QUICK_BUDGET = Budget(warmup_s=0.05, warmup_calls=2, min_sample_s=0.002, repeats=7, min_repeats=3, max_s=0.3)


@dataclass
class Timing:
    """The outcome of timing one callable: per-call median, spread, and how it was taken."""

    median_s: float
    iqr_s: float
    repeats: int
    inner: int
    first_call_s: float
    samples_s: list[float] = field(default_factory=list)  # per-call time of each sample


# ---------------------------------------------------------------- the timer

def _sample(fn: Callable, seq: Sequence[Any], wait: Callable[[Any], Any], ordered: bool) -> float:
    """Seconds for calling ``fn`` on each input of ``seq`` and waiting for completion."""
    clock = time.perf_counter
    if ordered:
        # One in-order stream: waiting on the last output covers all of them.
        y = None
        start = clock()
        for x in seq:
            y = fn(x, axis=-1)
        wait(y)
        return clock() - start
    outs: list[Any] = []
    append = outs.append
    start = clock()
    for x in seq:
        append(fn(x, axis=-1))
    wait(outs)
    elapsed = clock() - start
    del outs
    return elapsed


class _Rotation:
    """Hands out inputs in a fixed cycle; the cycle carries on across samples."""

    def __init__(self, inputs: Sequence[Any]):
        self.inputs = list(inputs)
        self.position = 0

    def take(self, n: int) -> list[Any]:
        """The next ``n`` inputs of the cycle (built before a sample, never inside it)."""
        count = len(self.inputs)
        if count == 1:
            return self.inputs * n
        seq = [self.inputs[(self.position + i) % count] for i in range(n)]
        self.position = (self.position + n) % count
        return seq


def time_calls(
    fn: Callable,
    inputs: Sequence[Any],
    wait: Callable[[Any], Any],
    budget: Budget = DEFAULT_BUDGET,
    ordered: bool = True,
    first: Optional[float] = None,
) -> Timing:
    """Time ``fn(x, axis=-1)`` over ``inputs`` (one: warm; many, rotated: cold).

    ``wait(result)`` returns once ``result`` is computed (the adapter's
    ``wait``); ``ordered`` says whether waiting on the last output covers the
    earlier ones. ``first`` is the first call's time if the caller already
    made it (it is made here otherwise).
    """
    rotation = _Rotation(inputs)
    if first is None:
        first = _sample(fn, rotation.take(1), wait, ordered)
    # Warm-up by time, not count: JIT, autotuning, lazy allocation and the
    # page faults of first touches all end before the samples start.
    singles: list[float] = []
    deadline = time.perf_counter() + budget.warmup_s
    while len(singles) < budget.warmup_calls or time.perf_counter() < deadline:
        singles.append(_sample(fn, rotation.take(1), wait, ordered))
    per_call = max(float(np.median(singles)), 1e-9)
    inner = min(MAX_INNER, max(1, math.ceil(budget.min_sample_s / per_call)))
    # Calibrate on a real sample: single calls include one wait each and can
    # misjudge fast calls; grow ``inner`` until a sample lasts long enough.
    # A sample that does is a valid sample, kept (slow calls pay for it once).
    samples: list[float] = []
    started = time.perf_counter()
    for _ in range(5):
        elapsed = _sample(fn, rotation.take(inner), wait, ordered)
        if elapsed >= budget.min_sample_s:
            samples.append(elapsed / inner)
            break
        # Capped: each sample's input list is built up front, 8 bytes a call.
        inner = min(MAX_INNER, max(inner + 1, math.ceil(inner * 1.2 * budget.min_sample_s / max(elapsed, 1e-9))))
    while len(samples) < budget.repeats:
        samples.append(_sample(fn, rotation.take(inner), wait, ordered) / inner)
        if len(samples) >= budget.min_repeats and time.perf_counter() - started > budget.max_s:
            break
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return Timing(float(median), float(q3 - q1), len(samples), inner, float(first), samples)


# ------------------------------------------------------- cache and buffers

def _parse_cache_size(text: str) -> Optional[int]:
    text = text.strip().upper()
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    try:
        if text and text[-1] in units:
            return int(text[:-1]) * units[text[-1]]
        return int(text)
    except ValueError:
        return None


def cpu_llc_bytes(root: str = "/sys/devices/system/cpu/cpu0/cache") -> Optional[int]:
    """Size of CPU 0's highest-level data or unified cache, from sysfs."""
    best: tuple[int, int] = (0, 0)
    for index in glob.glob(os.path.join(root, "index*")):
        try:
            with open(os.path.join(index, "type")) as handle:
                if handle.read().strip() == "Instruction":
                    continue
            with open(os.path.join(index, "level")) as handle:
                level = int(handle.read())
            with open(os.path.join(index, "size")) as handle:
                size = _parse_cache_size(handle.read())
        except (OSError, ValueError):
            continue
        if size and (level, size) > best:
            best = (level, size)
    return best[1] or None


def cuda_l2_bytes() -> Optional[int]:
    """L2 size of CUDA device 0, from torch or CuPy, whichever is importable."""
    try:
        import torch

        if torch.cuda.is_available():
            size = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0)
            if size:
                return int(size)
    except Exception:  # torch missing or broken: try CuPy
        pass
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceProperties(0)["l2CacheSize"]) or None
    except Exception:
        return None


def llc_bytes(device: str) -> int:
    """The last-level cache the cold mode must defeat on ``device``.

    ``$SOFTMAX_BENCH_LLC_BYTES`` if set, else sysfs (CPU) or the device
    properties (CUDA), else ``DEFAULT_LLC_BYTES``.
    """
    override = os.environ.get(LLC_ENV, "").strip()
    if override:
        try:
            return max(int(float(override)), 1)
        except ValueError:
            raise UsageError(f"${LLC_ENV}={override!r} is not a number of bytes") from None
    found = cpu_llc_bytes() if device == "cpu" else cuda_l2_bytes()
    return found or DEFAULT_LLC_BYTES


def buffer_count(nbytes: int, mode: str, llc: int) -> int:
    """Inputs to rotate through: 1 warm; cold, enough to exceed ``COLD_FACTOR`` x LLC.

    A single input larger than the LLC is already cold: one buffer.
    """
    if mode == "warm" or nbytes <= 0 or nbytes > llc:
        return 1
    return math.ceil(COLD_FACTOR * llc / nbytes)


# ----------------------------------------------------------------- memory

def _rss_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes."""
    found = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    return found


def _release_free_heap() -> None:
    """Return freed heap memory to the OS so a new allocation shows up in the RSS."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def peak_method(library: str, device: str) -> str:
    """How ``peak_bytes`` measures: "tracemalloc", "rss" (a lower bound) or "allocator"."""
    if device != "cpu":
        return "allocator"
    return "tracemalloc" if library == "numpy" else "rss"


def peak_bytes(adapter: adapters.Adapter, device: str, call: Callable[[], Any]) -> Optional[int]:
    """Peak memory of one completed ``call()`` beyond what existed before it; None if unknown.

    CPU: NumPy reports its allocations to tracemalloc; torch and JAX
    allocate outside Python, so the resident set's high-water mark (reset
    through /proc/self/clear_refs) is read around the call: memory their
    allocators already hold does not show, so that figure is a lower bound.
    CUDA: the library allocator's peak (``adapter.peak_memory``).
    """
    method = peak_method(adapter.library, device)
    if method == "allocator":
        try:
            adapter.reset_peak_memory(device)
            call()
            peak = adapter.peak_memory(device)
        except Exception:
            return None
        return None if peak is None else max(int(peak), 0)
    if method == "tracemalloc":
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            result = call()
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        del result
        return max(int(peak), 0)
    try:
        _release_free_heap()
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current VmRSS
        before = _rss_status()["VmRSS"]
        result = call()
        peak = _rss_status()["VmHWM"] - before
    except (OSError, KeyError, ValueError):
        return None
    del result
    return max(int(peak), 0)


# ------------------------------------------------------------ a prepared case

class Unavailable(NotImplementedError):
    """The backend cannot run on this device here (asv skips on NotImplementedError)."""


@dataclass
class Case:
    """One backend ready to call on device inputs of one size: what every front end times."""

    backend: Backend
    adapter: adapters.Adapter
    device: str
    dtype: str
    size: Size
    inputs: list

    @property
    def fn(self) -> Callable:
        """The backend's softmax, ``fn(x, axis=-1)``: what is timed."""
        return self.backend.softmax

    def wait(self, result: Any) -> Any:
        """Block until ``result`` (an output or a list of them) is computed on the device."""
        return self.adapter.wait(result, self.device)

    def call(self, x: Any = None) -> Any:
        """One completed call on ``x`` (default: the first input); returns the output."""
        return self.wait(self.fn(self.inputs[0] if x is None else x, axis=-1))

    def check(self, out: Any) -> None:
        """``BackendFailure`` unless ``out`` honours the contract for this case."""
        check_output(self.adapter, out, (self.size.rows, self.size.vocab), self.dtype, self.device)

    def to_numpy(self, y: Any) -> np.ndarray:
        """An output (or input) of this case as a NumPy array on the host."""
        return self.adapter.to_numpy(y)


def prepare(
    backend_name: str,
    device: str,
    dtype: str,
    size: Size,
    buffers: int = 1,
    plugin_files: Sequence[str] = (),
    seed: int = 0,
) -> Case:
    """Generate ``buffers`` distinct standard-normal inputs on the device, nothing timed.

    Raises ``Unavailable`` when the backend cannot run on ``device`` with
    ``dtype`` here, with the reason.
    """
    reg = registry.cached(plugin_files)
    backend = reg.get(backend_name)
    reason = reg.unavailable(backend_name, device)
    if reason is None and dtype not in backend.dtypes:
        reason = f"supports {', '.join(backend.dtypes)} only"
    if reason:
        raise Unavailable(f"{backend_name} on {device} {dtype}: {reason}")
    adapter = adapters.get(backend.library)
    first = adapter.randn((size.rows, size.vocab), dtype, device, seed)
    adapter.wait(first, device)
    inputs = [first] if buffers == 1 else adapter.replicate(first, buffers)
    adapter.wait(inputs, device)
    return Case(backend, adapter, device, dtype, size, inputs)


def gbps(size: Size, dtype: str, seconds: Optional[float]) -> Optional[float]:
    """Effective bandwidth: read and write each element once, 2 x rows x vocab x itemsize / time."""
    if not seconds or seconds <= 0:
        return None
    return 2 * size.nbytes(dtype) / seconds / 1e9


# ------------------------------------------------------------ the worker task

def measure(
    backend_name: str,
    device: str,
    dtype: str,
    rows: int,
    vocab: int,
    mode: str,
    budget: Budget = DEFAULT_BUDGET,
    with_copy: bool = True,
    llc: Optional[int] = None,
    plugin_files: Sequence[str] = (),
) -> dict[str, Any]:
    """Time one (backend, device, dtype, size, mode); runs inside the isolated worker.

    Returns ``{"timing": fields, "copy": fields or None}``: the timing record's
    measured fields, and (when ``with_copy``) the same measurement of a plain
    copy of the same inputs with the same library, for the bandwidth ceiling.
    A backend that raises or returns the wrong thing raises ``BackendFailure``.
    """
    size = Size(rows, vocab)
    llc = llc or llc_bytes(device)
    buffers = buffer_count(size.nbytes(dtype), mode, llc)
    if buffers > MAX_BUFFERS:
        raise ValueError(f"cold mode at {size.label} {dtype} needs {buffers} buffers (more than {MAX_BUFFERS})")
    case = prepare(backend_name, device, dtype, size, buffers=buffers, plugin_files=plugin_files)
    adapter = case.adapter

    copy = None
    if with_copy:
        op = adapter.copy_op(case.inputs[0])
        copy_time = time_calls(lambda x, axis=-1: op(x), case.inputs, case.wait, budget, adapter.ordered)
        copy = {"median_s": copy_time.median_s, "iqr_s": copy_time.iqr_s, "gbps": gbps(size, dtype, copy_time.median_s)}

    start = time.perf_counter()
    out = case.call()
    first = time.perf_counter() - start
    case.check(out)
    del out
    timing = time_calls(case.fn, case.inputs, case.wait, budget, adapter.ordered, first=first)

    # Peak memory apart from the timing; the cold inputs are released first so
    # that the process's own high-water mark is not made of them.
    if buffers > 1:
        case.inputs = adapter.replicate(case.inputs[0], 1)
    peak = peak_bytes(adapter, device, case.call)
    fields = asdict(timing)
    fields.pop("samples_s")
    fields.update(
        gbps=gbps(size, dtype, timing.median_s), peak_bytes=peak, peak_method=peak_method(adapter.library, device),
        buffers=buffers, llc_bytes=llc,
    )
    return {"timing": fields, "copy": copy}


# --------------------------------------------------------------- the command

def _identity(target: Any, size: Size, mode: str) -> dict[str, Any]:
    return {
        "kind": "timing", "backend": target.backend, "device": target.device, "dtype": target.dtype,
        "op": OP, "rows": size.rows, "vocab": size.vocab, "mode": mode,
    }


def empty_record(identity: dict[str, Any], library: str, reason: Optional[str] = None, failure: Optional[str] = None, skipped: bool = False) -> dict[str, Any]:
    """A timing record with every README field, none of them measured yet."""
    return {
        **identity,
        "library": library,
        "median_s": None, "iqr_s": None, "repeats": 0, "inner": 0,
        "gbps": None, "copy_gbps": None, "copy_fraction": None,
        "peak_bytes": None, "peak_method": None, "first_call_s": None,
        "buffers": None, "llc_bytes": None,
        "skipped": skipped, "reason": reason, "failure": failure,
    }


def timing_units(
    selection: Selection,
    sizes: Sequence[Size],
    modes: Sequence[str],
    budget: Budget,
    max_bytes: Optional[int],
) -> list[Unit]:
    """One ``suite.Unit`` per (size, mode, target), interleaving the backends.

    Backends at one size and mode run next to each other, so the ratios the
    table shows are taken close in time even when the machine's load drifts.
    The copy for each (library, device, dtype, size, mode) is measured once,
    by the first backend of that library to get there, and reused.
    """
    copies: dict[tuple, dict[str, Any]] = {}
    llcs = {device: llc_bytes(device) for device in {t.device for t in selection.targets}}
    plugin_files = tuple(selection.plugin_files)
    units = []
    for size in sizes:
        for mode in modes:
            for target in selection.targets:
                library = selection.registry.get(target.backend).library
                identity = _identity(target, size, mode)
                label = f"{target.backend} {target.device} {target.dtype} {size.label} {mode}"
                buffers = buffer_count(size.nbytes(target.dtype), mode, llcs[target.device])
                need = working_set(size, target.dtype, buffers)
                reason = None
                if buffers > MAX_BUFFERS:
                    reason = (f"skipped: a cold cache needs {buffers} inputs of {human_bytes(size.nbytes(target.dtype))}"
                              f" to exceed {COLD_FACTOR} x the {human_bytes(llcs[target.device])} cache; at most {MAX_BUFFERS}")
                elif max_bytes and need > max_bytes:
                    reason = f"skipped: working set {human_bytes(need)} exceeds --max-bytes {human_bytes(max_bytes)}"
                if reason:
                    units.append(_skip_unit(identity, library, reason, label))
                    continue
                copy_key = (library, target.device, target.dtype, size, mode)
                units.append(Unit(
                    identity=identity,
                    run=_runner(identity, library, copy_key, copies, budget, llcs[target.device], plugin_files),
                    on_failure=lambda failure, identity=identity, library=library: [
                        empty_record(identity, library, reason=failure.reason, failure=failure.kind)
                    ],
                    label=label,
                ))
    return units


def _skip_unit(identity: dict[str, Any], library: str, reason: str, label: str) -> Unit:
    record = empty_record(identity, library, reason=reason, skipped=True)
    return Unit(identity=identity, run=lambda executor: [record], on_failure=lambda failure: [record], label=label)


def _runner(identity, library, copy_key, copies, budget, llc, plugin_files):
    def run(executor) -> list[dict[str, Any]]:
        result = executor.run(
            (identity["backend"], identity["device"]), measure,
            identity["backend"], identity["device"], identity["dtype"], identity["rows"], identity["vocab"],
            identity["mode"], budget, copy_key not in copies, llc, plugin_files,
        )
        if result.get("copy"):
            copies[copy_key] = result["copy"]
        record = empty_record(identity, library)
        record.update(result["timing"])
        copy = copies.get(copy_key) or {}
        record["copy_gbps"] = copy.get("gbps")
        if record["gbps"] and record["copy_gbps"]:
            record["copy_fraction"] = record["gbps"] / record["copy_gbps"]
        return [record]

    return run


def _seconds(value: Optional[float]) -> str:
    if value is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if value >= scale or unit == "ns":
            return f"{value / scale:.3g} {unit}"
    return "-"


def _peak(record: dict[str, Any]) -> str:
    if record.get("peak_bytes") is None:
        return "-"
    # A resident-set figure misses memory the allocator already held: a lower bound.
    return ("≥ " if record.get("peak_method") == "rss" else "") + human_bytes(record["peak_bytes"])


def relative_to_baseline(records: Sequence[dict[str, Any]], baseline: str = BASELINE) -> dict[int, Optional[float]]:
    """For each record (by index): baseline median / its median at the same device, dtype, size, mode.

    Above 1 means faster than ``baseline``; ``None`` where either time is missing.
    """
    def key(r):
        return (r["device"], r["dtype"], r["rows"], r["vocab"], r.get("mode"))

    base = {key(r): r["median_s"] for r in records if r["backend"] == baseline and r.get("median_s")}
    return {
        i: (base[key(r)] / r["median_s"]) if r.get("median_s") and base.get(key(r)) else None
        for i, r in enumerate(records)
    }


def table(records: Sequence[dict[str, Any]], tablefmt: str = "simple") -> str:
    """The comparison table of timing records (tabulate)."""
    from tabulate import tabulate

    relative = relative_to_baseline(records)
    rows = []
    for i, r in enumerate(records):
        fraction = r.get("copy_fraction")
        rel = relative[i]
        note = ""
        if r.get("median_s") is None:
            note = r.get("reason") or ""
        rows.append([
            r["backend"], r["device"], r["dtype"], Size(r["rows"], r["vocab"]).label, r.get("mode"),
            _seconds(r.get("median_s")), _seconds(r.get("iqr_s")),
            f"{r['gbps']:.2f}" if r.get("gbps") else "-",
            f"{100 * fraction:.0f}%" if fraction else "-",
            _peak(r),
            f"{rel:.2f}x" if rel else "-",
            note,
        ])
    headers = ["backend", "device", "dtype", "size", "mode", "median", "IQR", "GB/s", "% copy", "peak mem", f"vs {BASELINE}", "note"]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def cmd_run(args: argparse.Namespace) -> int:
    """``softmax-bench run``: correctness summary, timings, comparison table, results file."""
    from .sizes import PRESETS, default_max_bytes, parse

    sizes = parse(args.sizes) if args.sizes is not None else PRESETS["quick" if args.quick else "default"]
    modes = list(MODES) if args.mode == "both" else [args.mode]
    budget = QUICK_BUDGET if args.quick else DEFAULT_BUDGET
    if not args.dtype:
        # Timing defaults to float32 (every backend has it); --dtype adds others.
        args.dtype = ["float32"]
    registry_ = suite.load(args)
    selection = suite.select(args, registry_)
    suite.report_skipped(selection)
    if not selection.targets:
        # Unavailable backends are skipped, never an error (DESIGN.md); say so and stop.
        print("nothing to time: no selected backend can run here with the selected devices and dtypes", file=sys.stderr)
        return 0
    max_bytes = args.max_bytes if args.max_bytes is not None else default_max_bytes()
    results = suite.open_results(args)
    executor = suite.executor_for(args)
    try:
        if not args.no_check:
            from .checks import summary_for_run

            summary_for_run(selection, executor, results)
        units = timing_units(selection, sizes, modes, budget, max_bytes or None)
        print(
            f"timing {len(selection.targets)} targets x {len(sizes)} sizes x {len(modes)} modes"
            f" (--max-bytes {human_bytes(max_bytes) if max_bytes else 'none'})",
            file=sys.stderr,
        )
        suite.execute(units, results, executor, desc="timing")
    except KeyboardInterrupt:
        print(f"interrupted: {len(results.records)} records kept in {results.path}", file=sys.stderr)
        return 130
    finally:
        executor.close()
    wanted = {(t.backend, t.device, t.dtype) for t in selection.targets}
    sizes_wanted = {(s.rows, s.vocab) for s in sizes}
    records = [
        r for r in results.records
        if r.get("kind") == "timing" and (r["backend"], r["device"], r["dtype"]) in wanted
        and (r["rows"], r["vocab"]) in sizes_wanted and r.get("mode") in modes
    ]
    print(table(records))
    failed = [r for r in records if r.get("failure")]
    if failed:
        print(f"{len(failed)} timing(s) failed; see the note column", file=sys.stderr)
    print(f"results: {results.path}")
    return 0
