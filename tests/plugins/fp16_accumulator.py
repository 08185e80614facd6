"""Subtly wrong: a float32 row's exponentials are summed in a float16 accumulator.

A sequential float16 running sum stalls once it reaches 2048 (adding 1 no
longer changes it) and drops small terms long before; the suite must fail it.
"""

import numpy as np

from softmax_bench import Backend


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    running = np.cumsum(e.astype(np.float16), axis=axis, dtype=np.float16)  # one add at a time, in float16
    s = np.take(running, [-1], axis=axis).astype(x.dtype) if x.shape[axis] else running
    return e / s


backend = Backend(name="fp16-accumulator", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=softmax)
