"""A correct third-party plugin in one file: max-shifted softmax."""

import numpy as np

from softmax_bench import Backend


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


backend = Backend(name="plugin-good", library="numpy", devices=("cpu",), dtypes=("float64", "float32"), softmax=softmax)
