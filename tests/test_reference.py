"""The exact reference against known values, and its two arithmetics against each other."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softmax_bench.measure import reference


@pytest.fixture(params=["gmpy2", "mpmath"])
def arithmetic(request):
    if request.param == "gmpy2":
        pytest.importorskip("gmpy2")
    before = reference.arithmetic()
    reference.use(request.param)
    yield request.param
    reference.use(before)


def test_known_values(arithmetic):
    hi, lo = reference.log_softmax(np.array([[0.0, -20.0]]))
    assert hi[0, 0] == -math.log1p(math.exp(-20.0))  # -2.0611536e-09, what a sum including the 1 loses
    hi, _ = reference.softmax(np.array([[89.0, 88.0, 0.0]]))
    assert hi[0, 0] == pytest.approx(1 / (1 + math.exp(-1) + math.exp(-89)), rel=1e-16)
    assert hi[0, 2] == pytest.approx(math.exp(-89) / (1 + math.exp(-1)), rel=1e-15)
    hi, _ = reference.log_softmax(np.array([[1e8, 1e8]]))
    assert hi[0, 0] == -math.log(2)


def test_double_double_carries_the_bits_float64_drops(arithmetic):
    hi, lo = reference.softmax(np.array([[0.0, 0.0, 0.0]]))
    assert hi[0, 0] == 1 / 3
    assert abs(lo[0, 0]) < math.ulp(1 / 3)  # the remainder is below hi's last bit, and not zero
    assert lo[0, 0] != 0


def test_special_rows(arithmetic):
    x = np.array([[-np.inf, -np.inf, 0.0, 1.0], [-np.inf] * 4, [0.0, np.inf, 1.0, 2.0], [0.0, np.nan, 1.0, 2.0]])
    hi, _ = reference.softmax(x)
    assert hi[0, 0] == 0 and hi[0, 1] == 0 and hi[0, 3] == pytest.approx(math.e / (1 + math.e), rel=1e-16)
    assert np.isnan(hi[1:]).all()  # undefined: fully masked, +inf, NaN
    z, _ = reference.log_softmax(x[:1])
    assert z[0, 0] == -np.inf and z[0, 2] == pytest.approx(-math.log1p(math.e), rel=1e-16)


def test_gradients_match_their_closed_forms(arithmetic):
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((2, 7)), rng.standard_normal((2, 7))
    y, _ = reference.softmax(x)
    at_x, _ = reference.softmax_grad(x, dy)
    given_y, _ = reference.softmax_vjp(y, dy)
    expected = y * (dy - (dy * y).sum(-1, keepdims=True))
    np.testing.assert_allclose(at_x, expected, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(given_y, expected, rtol=1e-13, atol=1e-16)
    ce, _ = reference.log_softmax_grad(x, -np.eye(7)[[1, 4]])
    np.testing.assert_allclose(ce, y - np.eye(7)[[1, 4]], rtol=1e-13, atol=1e-16)


def test_gmpy2_and_mpmath_agree_to_the_last_bit():
    pytest.importorskip("gmpy2")
    x = np.random.default_rng(1).standard_normal((3, 400)) * 20
    before = reference.arithmetic()
    try:
        reference.use("gmpy2")
        a = reference.softmax(x), reference.log_softmax(x)
        reference.use("mpmath")
        b = reference.softmax(x), reference.log_softmax(x)
    finally:
        reference.use(before)
    for (hi_a, lo_a), (hi_b, lo_b) in zip(a, b):
        assert np.array_equal(hi_a, hi_b)
        np.testing.assert_allclose(lo_a, lo_b, rtol=1e-6, atol=1e-300)
