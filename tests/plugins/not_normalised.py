"""Subtly wrong: an off-by-one sum that leaves out the last element, so rows do not sum to 1."""

import numpy as np

from softmax_bench import Backend


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    head = np.take(e, np.arange(max(x.shape[axis] - 1, 0)), axis=axis)
    return e / np.sum(head, axis=axis, keepdims=True)


backend = Backend(name="not-normalised", library="numpy", devices=("cpu",), dtypes=("float32", "float64"), softmax=softmax)
