"""NumPy arrays: the engine's own, on the CPU; the base adapter is already theirs."""

from .base import Adapter


class NumpyAdapter(Adapter):
    library = "numpy"


ADAPTER = NumpyAdapter
