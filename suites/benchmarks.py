"""asv benchmarks over every registered backend, thin wrappers around the engine.

``TimeSoftmax``: ``time_softmax`` (one completed call, synchronised through
the library's adapter inside the timed function) and ``peakmem_softmax``,
parametrized by backend x device x dtype x size. ``TimeOps``: ``time_op`` and
``peakmem_op`` for the gradient side, over op.pass (softmax.bwd,
cross_entropy.full, ...). ``TrackError``: each backend's worst softmax error
in ULP against the exact reference of the correctness suite, on a few of its
cases, and ``track_ce_error`` the same for the cross-entropy loss and its
gradient, so accuracy is tracked across commits like speed.

Every repeat gets new inputs (asv runs ``setup`` before each), and the last
output timed is checked against a float64 reference in ``teardown``: a
backend that replays or caches answers fails its benchmark.

The measured code is the installed ``softmax_bench`` of the commit under test;
this file comes from the working tree. A backend, library or device missing
here raises ``NotImplementedError`` in ``setup``, which asv records as
skipped (any other exception would make ``asv continuous`` exit 2).

By default the parameters are reduced so that ``asv continuous main HEAD``
finishes in minutes on a small machine; ``SOFTMAX_BENCH_FULL=1`` selects every
dtype and the full size grid.
"""

import os


FULL = os.environ.get("SOFTMAX_BENCH_FULL", "") == "1"

try:  # commits from before the timing engine existed are skipped, not failed
    import softmax_bench
    from softmax_bench import load_backends
    from softmax_bench.measure import timing
    from softmax_bench.core.sizes import PRESETS, default_max_bytes, parse, working_set
except ImportError as exc:  # pragma: no cover - depends on the commit under test
    timing = None
    _MISSING = f"softmax_bench at this commit has no timing engine ({exc})"
    BACKENDS = ["max-shift"]
    TIMED_OPS, PASSES = ("softmax",), ("fwd",)
else:
    BACKENDS = load_backends().names()
    # The engine's one list of ops and passes: a new op is benchmarked here without an edit.
    TIMED_OPS = getattr(softmax_bench, "TIMED_OPS", ("softmax",))
    PASSES = getattr(softmax_bench, "PASSES", ("fwd",))

DEVICES = ["cpu", "cuda"]
DTYPES = ["float32", "float64", "float16", "bfloat16"] if FULL else ["float32"]
if FULL and timing is not None:
    SIZES = [s.label for s in PRESETS["full"]]
else:
    SIZES = ["1x1024", "8x32000", "1x128256"]
_ALL_PASSES = [f"{op}.{p}" for op in TIMED_OPS for p in PASSES]
# By default the gradient side is one backward and one training step, at one size:
# `asv continuous` on a fresh clone stays within minutes.
OP_PASSES = _ALL_PASSES if FULL else ["softmax.bwd", "cross_entropy.full"]
OP_SIZES = SIZES if FULL else ["8x32000"]


def _unavailable(registry, backend, device, dtype):
    """The engine's own availability-and-dtype test, where this commit has one."""
    try:
        from softmax_bench.core.selection import unavailable
    except ImportError:  # commits from before the commands layer
        reason = registry.unavailable(backend, device)
        declared = registry.get(backend).dtypes
        return reason or (None if dtype in declared else f"supports {', '.join(declared)} only")
    return unavailable(registry, backend, device, dtype)


def _require_engine():
    if timing is None:
        raise NotImplementedError(_MISSING)


class TimeSoftmax:
    """Time and peak memory of one softmax call on a warm (reused) input."""

    params = (BACKENDS, DEVICES, DTYPES, SIZES)
    param_names = ["backend", "device", "dtype", "size"]
    # Enough samples for a median asv can compare; bounded so CI-sized runs end.
    repeat = (5, 20, 4.0)
    warmup_time = 0.2  # jit and torch.compile compile during warm-up, not in the samples

    def setup(self, backend, device, dtype, size):
        _require_engine()
        (shape,) = parse(size)
        if working_set(shape, dtype, 1) > default_max_bytes():
            raise NotImplementedError(f"{size} {dtype} does not fit in half of the available memory")
        try:
            self.case = timing.prepare(backend, device, dtype, shape)  # Unavailable is a NotImplementedError
        except KeyError as exc:  # a backend this commit does not have
            raise NotImplementedError(str(exc)) from None
        self.case.check(self.case.call())  # compiles, and proves the output honours the contract

    def time_softmax(self, backend, device, dtype, size):
        self.case.call()

    def peakmem_softmax(self, backend, device, dtype, size):
        self.case.call()


_repeats = {"n": 0}


class TimeOps:
    """Time and peak memory of one call of an op in a pass (warm input), new inputs every repeat."""

    params = (BACKENDS, DEVICES, OP_PASSES, OP_SIZES)
    param_names = ["backend", "device", "op_pass", "size"]
    repeat = (5, 20, 4.0)
    warmup_time = 0.2

    def setup(self, backend, device, op_pass, size):
        # asv calls teardown even when setup skips (NotImplementedError): it must find no case then.
        self.case = None
        _require_engine()
        import inspect

        if "pass_" not in inspect.signature(timing.prepare).parameters:
            raise NotImplementedError("softmax_bench at this commit times the softmax forward only")
        op, pass_ = op_pass.split(".")
        (shape,) = parse(size)
        if working_set(shape, "float32", 1, op, pass_) > default_max_bytes():
            raise NotImplementedError(f"{size} does not fit in half of the available memory")
        _repeats["n"] += 1
        try:
            self.case = timing.prepare(backend, device, "float32", shape, op=op, pass_=pass_, seed=_repeats["n"])
        except KeyError as exc:
            raise NotImplementedError(str(exc)) from None
        self.out = self.case.call()
        self.case.check(self.out)

    def time_op(self, backend, device, op_pass, size):
        self.out = self.case.call()

    def peakmem_op(self, backend, device, op_pass, size):
        self.out = self.case.call()

    def teardown(self, backend, device, op_pass, size):
        if self.case is None:  # skipped in setup
            return
        problem = self.case.verify(self.out)
        if problem:
            raise AssertionError(f"{backend} {op_pass}: {problem}")


# Cases whose exact answer every sound implementation gets within tolerance:
# the tracked figure moves when accuracy moves, not because a case is broken by design.
TRACK_CASES = ("randn_scale_3", "vocab_32000", "masked_prefix")


def worst_error(backend, device, dtype, op="softmax", names=None):
    """Largest error in ULP of ``op`` over ``TRACK_CASES`` (or ``names``), against the suite's exact reference."""
    from softmax_bench.measure import cases
    from softmax_bench.measure.checks import run_case
    from softmax_bench.core.isolation import InProcessExecutor

    try:
        from softmax_bench.core.selection import Target
    except ImportError:  # commits from before the commands layer
        from softmax_bench.measure.suite import Target

    worst = 0.0
    for name in names or TRACK_CASES:
        record = run_case(InProcessExecutor(), Target(backend, device, dtype), cases.get(name), op)
        if record["max_ulp"] is None:  # non-finite output: asv shows the benchmark as failed
            return float("nan")
        worst = max(worst, record["max_ulp"])
    return worst


class TrackError:
    """Each backend's worst softmax error in ULP per dtype (lower is better)."""

    params = (BACKENDS, DEVICES, ["float64", "float32", "float16", "bfloat16"] if FULL else ["float64", "float32"])
    param_names = ["backend", "device", "dtype"]
    unit = "ULP"

    def setup(self, backend, device, dtype):
        _require_engine()
        registry = load_backends()
        if backend not in registry.names():
            raise NotImplementedError(f"no backend {backend!r} at this commit")
        reason = _unavailable(registry, backend, device, dtype)
        if reason:
            raise NotImplementedError(reason)

    def track_max_ulp(self, backend, device, dtype):
        return worst_error(backend, device, dtype)


CE_TRACK_CASES = ("randn_scale_3", "ce_large_margin", "ce_ignore_index")


class TrackCrossEntropyError(TrackError):
    """Each backend's worst error in ULP of the cross-entropy loss and its gradient (lower is better)."""

    def setup(self, backend, device, dtype):
        super().setup(backend, device, dtype)
        from softmax_bench.measure import cases

        if not set(CE_TRACK_CASES) <= set(cases.names()):
            raise NotImplementedError("softmax_bench at this commit does not check the cross-entropy loss")
        from softmax_bench.measure.calls import supports

        if not all(supports(load_backends().get(backend), op) for op in ("cross_entropy", "ce_grad")):
            raise NotImplementedError(f"{backend} has no cross-entropy loss and gradient")

    def track_max_ulp(self, backend, device, dtype):
        return max(worst_error(backend, device, dtype, op, CE_TRACK_CASES) for op in ("cross_entropy", "ce_grad"))
