"""Planted backends whose softmax scribbles over its input after computing: one declares it, one does not.

The declared one must be timed on freshly written inputs and trusted (its
records say ``in_place``); the undeclared one must stay suspect.
"""

import numpy as np

from softmax_bench import Backend


def softmax(x, axis=-1):
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    y = z / z.sum(axis=axis, keepdims=True)
    x[...] = 0  # what Liger's loss does with the gradient: the input is gone after the call
    return y


backends = [
    Backend(name="in-place-declared", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=softmax,
            overwrites_input=("softmax",)),
    Backend(name="in-place-undeclared", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=softmax),
]
