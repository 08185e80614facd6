"""A plugin that tries to take a built-in's name: it must be ignored with a warning."""

import numpy as np

from softmax_bench import Backend

backend = Backend(name="max-shift", library="numpy", devices=("cpu",), dtypes=("float64",), softmax=lambda x, axis=-1: np.zeros_like(x))
