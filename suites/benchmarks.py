"""asv benchmarks over every registered backend, thin wrappers around the engine.

``TimeSoftmax``: ``time_softmax`` (one completed call, synchronised through
the library's adapter inside the timed function) and ``peakmem_softmax``,
parametrized by backend x device x dtype x size. ``TrackError``: each
backend's worst relative error on a fixed seeded input per dtype.

The measured code is the installed ``softmax_bench`` of the commit under test;
this file comes from the working tree. A backend, library or device missing
here raises ``NotImplementedError`` in ``setup``, which asv records as
skipped (any other exception would make ``asv continuous`` exit 2).

By default the parameters are reduced so that ``asv continuous main HEAD``
finishes in minutes on a small machine; ``SOFTMAX_BENCH_FULL=1`` selects every
dtype and the full size grid.
"""

import os

import numpy as np

FULL = os.environ.get("SOFTMAX_BENCH_FULL", "") == "1"

try:  # commits from before the timing engine existed are skipped, not failed
    from softmax_bench import load_backends, timing
    from softmax_bench.execute import call
    from softmax_bench.sizes import PRESETS, default_max_bytes, parse, working_set
except ImportError as exc:  # pragma: no cover - depends on the commit under test
    timing = None
    _MISSING = f"softmax_bench at this commit has no timing engine ({exc})"
    BACKENDS = ["max-shift"]
else:
    BACKENDS = load_backends().names()

DEVICES = ["cpu", "cuda"]
DTYPES = ["float32", "float64", "float16", "bfloat16"] if FULL else ["float32"]
if FULL and timing is not None:
    SIZES = [s.label for s in PRESETS["full"]]
else:
    SIZES = ["1x1024", "8x32000", "1x128256"]


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


def reference(x):
    """float64 max-shifted softmax of the (exactly representable) input."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def worst_error(backend, device, dtype):
    """Largest componentwise relative error on a fixed seeded input, against ``reference``."""
    from softmax_bench.dtypes import np_dtype

    x = (3 * np.random.default_rng(1234).standard_normal((4, 1000))).astype(np_dtype(dtype)).astype(np.float64)
    y = call(backend, (), device, dtype, "softmax", {"x": x}).astype(np.float64)
    expected = reference(x)
    return float(np.max(np.abs(y - expected) / expected))


class TrackError:
    """Each backend's worst relative error per dtype (lower is better)."""

    params = (BACKENDS, DEVICES, ["float64", "float32", "float16", "bfloat16"] if FULL else ["float64", "float32"])
    param_names = ["backend", "device", "dtype"]
    unit = "relative error"

    def setup(self, backend, device, dtype):
        _require_engine()
        registry = load_backends()
        if backend not in registry.names():
            raise NotImplementedError(f"no backend {backend!r} at this commit")
        reason = registry.unavailable(backend, device)
        if reason is None and dtype not in registry.get(backend).dtypes:
            reason = f"supports {', '.join(registry.get(backend).dtypes)} only"
        if reason:
            raise NotImplementedError(reason)

    def track_max_rel_error(self, backend, device, dtype):
        return worst_error(backend, device, dtype)
