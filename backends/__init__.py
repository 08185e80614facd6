"""Built-in softmax backends, one module per implementation.

Each module defines ``backend`` (or ``backends``). ``builtin_backends`` is the
target of this package's own entry point in the ``softmax_bench.backends``
group, so the built-ins load through the same path as any plugin, and adding
one is a new file here with no edit elsewhere. Modules whose names start with
an underscore are shared helpers, not backends.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings

from softmax_bench.backend import Backend
from softmax_bench.core.registry import RegistryWarning, backends_of_module


def builtin_backends() -> list[Backend]:
    """Every backend defined by a module of this package; broken modules warn."""
    found: list[Backend] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        name = f"{__name__}.{info.name}"
        try:
            found.extend(backends_of_module(importlib.import_module(name)))
        except Exception as exc:
            warnings.warn(f"built-in module {name}: failed to load ({type(exc).__name__}: {exc})", RegistryWarning)
    return found
