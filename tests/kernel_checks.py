"""The assertions the GPU kernel tests share (CUDA on the host emulator, Triton in its interpreter).

One reference and one tolerance table for every kernel, so a planted bug is
judged by exactly the check the real kernel passes.
"""

from __future__ import annotations

import numpy as np

from softmax_bench.core.dtypes import np_dtype

# Relative tolerance on the output: a few units of roundoff of the storage type.
# bfloat16 allows one whole ulp because Triton's interpreter truncates on store
# where the GPU rounds to nearest.
RTOL = {"float64": 1e-13, "float32": 3e-6, "float16": 1.5e-3, "bfloat16": 1.6e-2}


def rounded(x: np.ndarray, dtype: str) -> np.ndarray:
    """x's values as the kernel sees them: rounded to ``dtype``, back in float64."""
    return np.asarray(x).astype(np_dtype(dtype)).astype(np.float64)


def reference(x: np.ndarray, op: str, axis: int = -1) -> np.ndarray:
    """float64 max-shifted softmax/log_softmax; an all -inf row is NaN (like torch)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        z = x - x.max(axis=axis, keepdims=True)
        s = np.exp(z).sum(axis=axis, keepdims=True)
        return z - np.log(s) if op == "log_softmax" else np.exp(z) / s


def assert_matches(y: np.ndarray, x: np.ndarray, dtype: str, op: str, axis: int = -1) -> None:
    """y (any float array) against the reference of x rounded to ``dtype``: NaN where NaN, inf where inf."""
    y = np.asarray(y).astype(np.float64)
    assert y.shape == np.shape(x), f"shape {y.shape} for input {np.shape(x)}"
    rtol = RTOL[dtype]
    atol = rtol * (1e-3 if op == "softmax" else 1.0)
    np.testing.assert_allclose(y, reference(rounded(x, dtype), op, axis), rtol=rtol, atol=atol)


def rng_rows(shape, scale: float = 3.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) * scale


def masked_prefix(n: int = 3000) -> np.ndarray:
    """Rows starting with -inf: many threads', warps' and tiles' worth of nothing but -inf."""
    x = rng_rows((4, n), seed=1)
    x[0, : n - 3] = -np.inf  # only the last three finite
    x[1, : n // 2] = -np.inf
    x[2, ::2] = -np.inf
    x[3, 1:] = -np.inf  # one finite value, at the start
    return x


def large_logits(dtype: str, shape=(2, 700)) -> np.ndarray:
    """Logits far above exp's overflow threshold (88.7; 11.1 in float16), at a spacing the dtype resolves."""
    offset = {"float16": 1e3, "bfloat16": 1e3}.get(dtype, 1e4)
    return offset + rng_rows(shape, 1.0 if dtype in ("float64", "float32", "float16") else 8.0, seed=2)
