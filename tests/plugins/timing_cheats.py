"""Backends that are correct when checked and cheat when timed: each must get a suspect record.

- ``cache-by-id``: remembers its last answer per input buffer (keyed on the
  array's address), so a buffer timed again returns what it returned before.
- ``mutates-input``: writes its result into its input and returns it.
- ``right-once``: correct on its first call in a process, zeros afterwards.
"""

import numpy as np

from softmax_bench import Backend
from softmax_bench.backends import max_shift

_answers: dict = {}
_calls = {"n": 0}


def cache_by_id(x, axis=-1):
    key = (x.__array_interface__["data"][0], x.shape, x.dtype.str)
    if key not in _answers:
        _answers[key] = max_shift.softmax(x, axis)
    return _answers[key]


def mutates_input(x, axis=-1):
    x[...] = max_shift.softmax(x, axis)
    return x


def right_once(x, axis=-1):
    _calls["n"] += 1
    return max_shift.softmax(x, axis) if _calls["n"] == 1 else np.zeros_like(x)


backends = [
    Backend(name=name, library="numpy", devices=("cpu",), dtypes=("float32",), softmax=fn)
    for name, fn in (("cache-by-id", cache_by_id), ("mutates-input", mutates_input), ("right-once", right_once))
]
