"""The timer: calls a prepared callable over its inputs and returns the median per call.

1. The first call is timed alone (``first_call_s``: it includes JIT or
   compilation) unless the caller made it already.
2. Warm-up by time (``Budget.warmup_s``, at least ``warmup_calls`` calls), then
   inner iterations are calibrated so that one sample lasts at least
   ``min_sample_s``: thousands of times the resolution of ``perf_counter``.
3. Samples: ``inner`` calls, then the library's completion (torch and CuPy
   synchronise the device, JAX blocks on the outputs, NumPy is done when it
   returns), then the clock. The result is the median per call with its
   interquartile range over the samples.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np


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


Refresh = Callable[[int], None]
Inspect = Callable[[int, tuple, Any], None]


def _sample(fn: Callable, seq: Sequence[tuple], wait: Callable[[Any], Any], ordered: bool) -> tuple[float, Any]:
    """Seconds for calling ``fn(*args)`` on each arg tuple of ``seq`` and waiting for completion,
    and the last call's output (kept for inspection outside the timed region)."""
    clock = time.perf_counter
    if ordered:
        # One in-order stream: waiting on the last output covers all of them.
        y = None
        start = clock()
        for args in seq:
            y = fn(*args)
        wait(y)
        return clock() - start, y
    outs: list[Any] = []
    append = outs.append
    start = clock()
    for args in seq:
        append(fn(*args))
    wait(outs)
    elapsed = clock() - start
    return elapsed, outs[-1]


class _Rotation:
    """Hands out inputs in a fixed cycle; the cycle carries on across samples."""

    def __init__(self, inputs: list):
        self.inputs = inputs  # the caller's list: a refresh may replace its entries
        self.position = 0

    def take(self, n: int) -> list[tuple]:
        """The next ``n`` arg tuples of the cycle (built before a sample, never inside it)."""
        count = len(self.inputs)
        if count == 1:
            return self.inputs * n
        seq = [self.inputs[(self.position + i) % count] for i in range(n)]
        self.position = (self.position + n) % count
        return seq


def time_calls(
    fn: Callable,
    inputs: list,
    wait: Callable[[Any], Any],
    budget: Budget = DEFAULT_BUDGET,
    ordered: bool = True,
    first: Optional[float] = None,
    refresh: Optional[Refresh] = None,
    inspect: Optional[Inspect] = None,
) -> Timing:
    """Time ``fn(*args)`` over the arg tuples of ``inputs`` (one: warm; many, rotated: cold).

    ``wait(result)`` returns once ``result`` is computed (the adapter's
    ``wait``); ``ordered`` says whether waiting on the last output covers the
    earlier ones. ``first`` is the first call's time if the caller already
    made it (it is made here otherwise). Outside the timed region,
    ``refresh(k)`` gives the inputs new values before sample k and
    ``inspect(k, args, out)`` looks at the last call of sample k.
    """
    rotation = _Rotation(inputs)
    if first is None:
        first = _sample(fn, rotation.take(1), wait, ordered)[0]
    # Warm-up by time, not count: JIT, autotuning, lazy allocation and the
    # page faults of first touches all end before the samples start.
    singles: list[float] = []
    deadline = time.perf_counter() + budget.warmup_s
    while len(singles) < budget.warmup_calls or time.perf_counter() < deadline:
        singles.append(_sample(fn, rotation.take(1), wait, ordered)[0])
    per_call = max(float(np.median(singles)), 1e-9)
    inner = min(MAX_INNER, max(1, math.ceil(budget.min_sample_s / per_call)))
    taken = 0

    def sample(n: int) -> float:
        nonlocal taken
        if refresh is not None:
            refresh(taken)
        seq = rotation.take(n)
        elapsed, out = _sample(fn, seq, wait, ordered)
        if inspect is not None:
            inspect(taken, seq[-1], out)
        taken += 1
        return elapsed

    # Calibrate on a real sample: single calls include one wait each and can
    # misjudge fast calls; grow ``inner`` until a sample lasts long enough.
    # A sample that does is a valid sample, kept (slow calls pay for it once).
    samples: list[float] = []
    started = time.perf_counter()
    for _ in range(5):
        elapsed = sample(inner)
        if elapsed >= budget.min_sample_s:
            samples.append(elapsed / inner)
            break
        # Capped: each sample's input list is built up front, 8 bytes a call.
        inner = min(MAX_INNER, max(inner + 1, math.ceil(inner * 1.2 * budget.min_sample_s / max(elapsed, 1e-9))))
    while len(samples) < budget.repeats:
        samples.append(sample(inner) / inner)
        if len(samples) >= budget.min_repeats and time.perf_counter() - started > budget.max_s:
            break
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return Timing(float(median), float(q3 - q1), len(samples), inner, float(first), samples)


def resolution() -> float:
    """The clock's resolution in seconds: a per-call median below it measured nothing."""
    return time.get_clock_info("perf_counter").resolution
