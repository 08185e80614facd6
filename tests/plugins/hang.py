"""A backend that never returns."""

import time

from softmax_bench import Backend


def softmax(x, axis=-1):
    while True:
        time.sleep(1)


backend = Backend(name="hang", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=softmax)
