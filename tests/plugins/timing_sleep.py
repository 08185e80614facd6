"""A planted backend that sleeps 20 ms per call: the timer must report at least that."""

import time

from softmax_bench import Backend

SLEEP_S = 0.020


def softmax(x, axis=-1):
    time.sleep(SLEEP_S)
    return x.copy()


backend = Backend(name="sleep-20ms", library="numpy", devices=("cpu",), dtypes=("float32", "float64"), softmax=softmax)
