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

Who takes a sample is a *sampler*: by default ``LocalSampler``, the calls of
this process. The distributed path (``sharded.time_sharded``) gives
``time_calls`` a sampler of its own that takes every sample on all ranks in
step and returns the slowest rank's time; warm-up, calibration, the stopping
rules and the statistics stay here, once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

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


# --------------------------------------------------------------------------- statistics


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile of ``values`` (NumPy's linear interpolation).

    The one place figures of a timing are summarised: the timer's median and
    IQR, the warm-up's per-call estimate and the distributed per-rank medians.
    """
    q1, q2, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(q1), float(q2), float(q3)


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (``quartiles``' middle one)."""
    return quartiles(values)[1]


# --------------------------------------------------------------------------- samplers


class Sampler(Protocol):
    """Takes the samples ``time_calls`` asks for.

    ``sampler(n)`` makes ``n`` calls, waits for their completion and returns
    the seconds they took; ``warm_up=True`` marks the first call and the
    warm-up singles, which are not samples (a local sampler neither refreshes
    nor inspects nor counts them). ``sampler.clock()`` is the time, in
    seconds, that the warm-up deadline and the ``max_s`` rule are read from:
    a local sampler's is ``perf_counter``; a distributed one's must read the
    same on every rank, or the ranks would stop after different numbers of
    calls and their collectives would no longer match.
    """

    def __call__(self, n: int, warm_up: bool = False) -> float: ...

    def clock(self) -> float: ...


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


class LocalSampler:
    """The calls of this process: ``fn(*args)`` over ``inputs`` in rotation, then ``wait``, on ``perf_counter``.

    ``inputs`` holds one arg tuple (warm) or many (cold: rotated, the cycle
    carrying on across samples). ``ordered`` says whether waiting on the last
    output covers the earlier ones. Outside the timed region, ``refresh(k)``
    gives the inputs new values before sample k and ``inspect(k, args, out)``
    looks at the last call of sample k (k counts the samples, from 0; the
    first call and the warm-up singles are none of them).
    """

    def __init__(self, fn: Callable, inputs: list, wait: Callable[[Any], Any], ordered: bool = True,
                 refresh: Optional[Refresh] = None, inspect: Optional[Inspect] = None):
        self.fn, self.wait, self.ordered = fn, wait, ordered
        self.refresh, self.inspect = refresh, inspect
        self.rotation = _Rotation(inputs)
        self.taken = 0

    def __call__(self, n: int, warm_up: bool = False) -> float:
        if warm_up:
            return _sample(self.fn, self.rotation.take(n), self.wait, self.ordered)[0]
        if self.refresh is not None:
            self.refresh(self.taken)
        seq = self.rotation.take(n)
        elapsed, out = _sample(self.fn, seq, self.wait, self.ordered)
        if self.inspect is not None:
            self.inspect(self.taken, seq[-1], out)
        self.taken += 1
        return elapsed

    def clock(self) -> float:
        return time.perf_counter()


# --------------------------------------------------------------------------- the timer


def time_calls(
    fn: Optional[Callable] = None,
    inputs: Optional[list] = None,
    wait: Optional[Callable[[Any], Any]] = None,
    budget: Budget = DEFAULT_BUDGET,
    ordered: bool = True,
    first: Optional[float] = None,
    refresh: Optional[Refresh] = None,
    inspect: Optional[Inspect] = None,
    *,
    sampler: Optional[Sampler] = None,
) -> Timing:
    """Time ``fn(*args)`` over the arg tuples of ``inputs`` (one: warm; many, rotated: cold).

    ``wait(result)`` returns once ``result`` is computed (the adapter's
    ``wait``); ``ordered`` says whether waiting on the last output covers the
    earlier ones. ``first`` is the first call's time if the caller already
    made it (it is made here otherwise). Outside the timed region,
    ``refresh(k)`` gives the inputs new values before sample k and
    ``inspect(k, args, out)`` looks at the last call of sample k.

    ``sampler`` takes the samples instead (see ``Sampler``; then give none of
    ``fn``, ``inputs``, ``wait``, ``ordered``, ``refresh``, ``inspect``): the
    first call, the warm-up singles, calibration and the samples all go
    through it, and every decision is taken on what it returns.
    """
    if sampler is None:
        if fn is None or inputs is None or wait is None:
            raise TypeError("time_calls needs fn, inputs and wait, or a sampler")
        sampler = LocalSampler(fn, inputs, wait, ordered, refresh, inspect)
    elif fn is not None or inputs is not None or wait is not None or refresh or inspect or not ordered:
        raise TypeError("time_calls takes fn, inputs and wait (and their options) or a sampler, not both")
    if first is None:
        first = sampler(1, warm_up=True)
    inner = _warm_up(sampler, budget)
    samples, inner = _calibrate(sampler, budget, inner)
    q1, mid, q3 = quartiles(samples)
    return Timing(mid, q3 - q1, len(samples), inner, float(first), samples)


def _warm_up(sampler: Sampler, budget: Budget) -> int:
    """Single calls until the warm-up is over; the first guess at ``inner`` from their median."""
    # Warm-up by time, not count: JIT, autotuning, lazy allocation and the
    # page faults of first touches all end before the samples start.
    singles: list[float] = []
    deadline = sampler.clock() + budget.warmup_s
    while len(singles) < budget.warmup_calls or sampler.clock() < deadline:
        singles.append(sampler(1, warm_up=True))
    per_call = max(median(singles), 1e-9)
    return min(MAX_INNER, max(1, math.ceil(budget.min_sample_s / per_call)))


def _calibrate(sampler: Sampler, budget: Budget, inner: int) -> tuple[list[float], int]:
    """The samples (seconds per call) and the ``inner`` they were taken with.

    Calibrates on real samples: single calls include one wait each and can
    misjudge fast calls, so ``inner`` grows until a sample lasts long enough.
    A sample that does is a valid sample, kept (slow calls pay for it once);
    every kept sample is one of the last ones taken, all of ``inner`` calls.
    """
    samples: list[float] = []
    started = sampler.clock()
    for _ in range(5):
        elapsed = sampler(inner)
        if elapsed >= budget.min_sample_s:
            samples.append(elapsed / inner)
            break
        # Capped: each sample's input list is built up front, 8 bytes a call.
        inner = min(MAX_INNER, max(inner + 1, math.ceil(inner * 1.2 * budget.min_sample_s / max(elapsed, 1e-9))))
    while len(samples) < budget.repeats:
        samples.append(sampler(inner) / inner)
        if len(samples) >= budget.min_repeats and sampler.clock() - started > budget.max_s:
            break
    return samples, inner


def resolution() -> float:
    """The clock's resolution in seconds: a per-call median below it measured nothing."""
    return time.get_clock_info("perf_counter").resolution
