"""Each built-in backend against a float64 reference on random inputs.

The full correctness suite (exact reference, ULP figures, edge cases) lives in
test_correctness.py; this is the quick per-backend sanity check of the core,
including proof that the comparison can fail (naive overflows).
"""

from __future__ import annotations

import numpy as np
import pytest

from softmax_bench import load_backends
from softmax_bench.measure.calls import call

from helpers import registry_targets

REGISTRY = load_backends()
RTOL = {"float64": 1e-13, "float32": 2e-6, "float16": 2e-3, "bfloat16": 2e-2}


def reference(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def targets():
    return [
        pytest.param(name, device, dtype, id=f"{name}-{device}-{dtype}", marks=[pytest.mark.skip(reason=skip)] if skip else [])
        for name, device, dtype, skip in registry_targets(REGISTRY)
    ]


def rounded(x: np.ndarray, dtype: str) -> np.ndarray:
    from softmax_bench.core.dtypes import np_dtype

    return x.astype(np_dtype(dtype)).astype(np.float64)


@pytest.mark.parametrize("name, device, dtype", targets())
def test_softmax_matches_reference_on_random_input(name, device, dtype):
    x = rounded(np.random.default_rng(0).standard_normal((4, 300)) * 3, dtype)
    y = call(name, (), device, dtype, "softmax", {"x": x}).astype(np.float64)
    np.testing.assert_allclose(y, reference(x), rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-3)


@pytest.mark.parametrize("name, device, dtype", targets())
def test_log_softmax_matches_reference(name, device, dtype):
    if REGISTRY.get(name).log_softmax is None:
        pytest.skip("no log_softmax")
    x = rounded(np.random.default_rng(1).standard_normal((3, 200)), dtype)
    y = call(name, (), device, dtype, "log_softmax", {"x": x}).astype(np.float64)
    np.testing.assert_allclose(y, np.log(reference(x)), rtol=RTOL[dtype] * 4, atol=RTOL[dtype] * 4)


@pytest.mark.parametrize("name", ["max-shift", "online", "lse", "torch-fused", "jax"])
def test_shifted_backends_survive_large_logits(name):
    if REGISTRY.unavailable(name, "cpu"):
        pytest.skip(REGISTRY.unavailable(name, "cpu"))
    x = np.array([[1000.0, 999.0, 0.0]])
    y = call(name, (), "cpu", "float64", "softmax", {"x": x})
    np.testing.assert_allclose(y, reference(x), rtol=1e-13)


def test_naive_overflows_at_large_logits_and_the_comparison_catches_it():
    x = np.array([[1000.0, 999.0, 0.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        y = call("naive", (), "cpu", "float64", "softmax", {"x": x})
    assert np.isnan(y).any()
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(y, reference(x), rtol=1e-3)


def test_online_handles_masked_prefix_across_chunks():
    from softmax_bench.backends import online

    x = np.full((2, 3 * online.CHUNK + 5), -np.inf)
    x[0, -3:] = [0.0, 1.0, 2.0]  # every chunk but the last is fully masked
    x[1, 7] = 5.0
    y = online.softmax(x)
    assert not np.isnan(y).any()
    np.testing.assert_allclose(y[0, -3:], reference(np.array([0.0, 1.0, 2.0])), rtol=1e-15)
    assert y[1, 7] == 1.0 and y[1].sum() == 1.0


def test_online_matches_across_chunk_boundaries_and_axes():
    from softmax_bench.backends import online

    x = np.random.default_rng(2).standard_normal((3, 2 * online.CHUNK + 17, 2)) * 5
    np.testing.assert_allclose(online.softmax(x, axis=1), reference(x, axis=1), rtol=1e-13)
    np.testing.assert_allclose(online.log_softmax(x, axis=1), np.log(reference(x, axis=1)), rtol=1e-12)


@pytest.mark.parametrize("name", ["naive", "max-shift", "online", "lse"])
def test_numpy_vjps_match_the_closed_form(name):
    backend = REGISTRY.get(name)
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((2, 50)), rng.standard_normal((2, 50))
    y = reference(x)
    expected = y * (dy - (dy * y).sum(-1, keepdims=True))
    np.testing.assert_allclose(backend.softmax_vjp(y, dy), expected, rtol=1e-12, atol=1e-15)
    ly = np.log(y)
    np.testing.assert_allclose(backend.log_softmax_vjp(ly, dy), dy - y * dy.sum(-1, keepdims=True), rtol=1e-12, atol=1e-15)


def test_max_shift_keeps_the_log_softmax_tail():
    """log_softmax([0, -20]) = -log1p(exp(-20)) = -2.06e-9, which a sum including the 1 loses."""
    from softmax_bench.backends import max_shift

    y = max_shift.log_softmax(np.array([0.0, -20.0], dtype=np.float32))
    assert y[0] == np.float32(-np.log1p(np.exp(-20.0)))
