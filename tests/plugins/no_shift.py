"""Subtly wrong: exp without subtracting the max (overflows past log(max) of the dtype)."""

import numpy as np

from softmax_bench import Backend


def softmax(x, axis=-1):
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


backend = Backend(name="no-shift", library="numpy", devices=("cpu",), dtypes=("float32", "float64"), softmax=softmax)
