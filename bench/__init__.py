"""softmax-bench: one registry of softmax backends, one correctness suite, one timer.

Public API: ``Backend`` (the plugin contract), ``load_backends`` (the registry)
and the constants naming valid libraries, devices, dtypes and ops.
"""

from .backend import DEVICES, DTYPES, IGNORE_INDEX, LIBRARIES, OPS, PASSES, TIMED_OPS, Backend, BackendError
from .core.registry import Registry, RegistryWarning
from .core.registry import load as load_backends

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "DEVICES",
    "DTYPES",
    "IGNORE_INDEX",
    "LIBRARIES",
    "OPS",
    "PASSES",
    "Registry",
    "RegistryWarning",
    "TIMED_OPS",
    "load_backends",
    "__version__",
]
