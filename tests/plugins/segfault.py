"""A backend that crashes the interpreter (reads address 0 through ctypes)."""

import ctypes

from softmax_bench import Backend


def softmax(x, axis=-1):
    ctypes.string_at(0)  # SIGSEGV


backend = Backend(name="segfault", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=softmax)
