"""softmax-bench: one registry of softmax backends, one correctness suite, one timer.

Public API: ``Backend`` (the plugin contract), ``load_backends`` (the registry)
and the constants naming valid libraries, devices, dtypes and ops.
"""

from .backend import DEVICES, DTYPES, LIBRARIES, OPS, Backend, BackendError
from .registry import Registry, RegistryWarning
from .registry import load as load_backends

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "DEVICES",
    "DTYPES",
    "LIBRARIES",
    "OPS",
    "Registry",
    "RegistryWarning",
    "load_backends",
    "__version__",
]
