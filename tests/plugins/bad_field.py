"""A plugin whose Backend breaks the contract (an unknown library)."""

from softmax_bench import Backend

backend = Backend(name="bad-field", library="tensorflow", devices=("cpu",), dtypes=("float32",), softmax=lambda x, axis=-1: x)
