"""pytest-benchmark over the registry: every available backend x dtype x a few sizes.

``pytest --benchmark-only`` times them; the default ``--benchmark-disable``
(pyproject addopts) calls each once, a smoke run. The inputs, the call and its
completion (device sync, JAX block) are the timing engine's own
(``timing.prepare``), so these numbers measure what ``softmax-bench run`` and
asv measure. Every benchmark also checks its result against a float64
reference, so a fast wrong backend fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from softmax_bench import PASSES, TIMED_OPS, load_backends
from softmax_bench.measure import timing
from softmax_bench.core.dtypes import info
from softmax_bench.core.sizes import Size
from softmax_bench.measure.workloads import unsupported

from helpers import registry_targets

REGISTRY = load_backends()
SIZES = [Size(1, 1024), Size(8, 32000), Size(1, 128256)]
# Relative tolerance in units of the dtype's roundoff: generous for half
# precision, where JAX rounds x - max in the input dtype (up to ~16 ULP in
# bfloat16), tight enough everywhere to catch a wrong normalisation.
ULPS = {"float64": 1e4, "float32": 200, "float16": 32, "bfloat16": 32}


def reference(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# The gradient side: every op and pass once, in float32 at one size.
OP_PASSES = [(op, p) for op in TIMED_OPS for p in PASSES if (op, p) != ("softmax", "fwd")]


def _op_params():
    for name, device, dtype, skip in registry_targets(REGISTRY):
        if dtype != "float32":
            continue
        for op, pass_ in OP_PASSES:
            why = skip or unsupported(REGISTRY.get(name), op, pass_)
            marks = [pytest.mark.skip(reason=why)] if why else []
            yield pytest.param(name, device, op, pass_, id=f"{name}-{device}-{op}-{pass_}", marks=marks)


@pytest.mark.parametrize("name, device, op, pass_", list(_op_params()))
def test_op_and_pass(benchmark, name, device, op, pass_):
    case = timing.prepare(name, device, "float32", Size(8, 4096), op=op, pass_=pass_)
    case.check(case.call())
    benchmark.group = f"{device} float32 8x4096 {op} {pass_}"
    out = benchmark(case.call)
    # What was timed is what is checked: the output of the benchmarked calls, against float64.
    assert case.verify(out) is None


def _params():
    for name, device, dtype, skip in registry_targets(REGISTRY):
        for size in SIZES:
            marks = [pytest.mark.skip(reason=skip)] if skip else []
            yield pytest.param(name, device, dtype, size, id=f"{name}-{device}-{dtype}-{size.label}", marks=marks)


@pytest.mark.parametrize("name, device, dtype, size", list(_params()))
def test_softmax(benchmark, name, device, dtype, size):
    case = timing.prepare(name, device, dtype, size)
    case.check(case.call())  # the first call (JIT, compile) stays out of the timing
    benchmark.group = f"{device} {dtype} {size.label}"
    y = benchmark(case.call)
    x = case.to_numpy(case.inputs.args[0][0]).astype(np.float64)
    fi = info(dtype)
    np.testing.assert_allclose(case.to_numpy(y).astype(np.float64), reference(x), rtol=ULPS[dtype] * fi.u, atol=fi.tiny)
