"""Planted backends that fail while being timed: one raises, one hangs, one kills its process."""

import os
import signal
import time

from softmax_bench import Backend


def _raises(x, axis=-1):
    raise RuntimeError("planted failure")


def _hangs(x, axis=-1):
    time.sleep(3600)
    return x


def _crashes(x, axis=-1):
    os.kill(os.getpid(), signal.SIGSEGV)
    return x


def _wrong_shape(x, axis=-1):
    return x[:, :1].copy()


backends = [
    Backend(name="raises", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=_raises),
    Backend(name="hangs", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=_hangs),
    Backend(name="crashes", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=_crashes),
    Backend(name="wrong-shape", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=_wrong_shape),
]
