"""Array adapters: one module per library, owning conversion, device transfer and sync.

The engine speaks NumPy; a backend speaks its own library. An adapter moves a
NumPy array to the backend's library, device and dtype, brings results back,
waits for queued device work, and knows how to make a plain copy (the
bandwidth ceiling) and a gradient by autodiff. Libraries are imported on first
use only, so listing backends never pulls in torch, jax or cupy until their
availability is asked for.

Adding a library is one module here (named as the library, defining
``ADAPTER``, a subclass of ``base.Adapter``) and its name in
``softmax_bench.backend.LIBRARIES``.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Optional

from ...backend import LIBRARIES
from ...errors import describe_exception
from .base import Adapter

__all__ = ["Adapter", "autodiff_libraries", "get", "library_unavailable", "packages", "unavailable"]


def library_unavailable(library: str) -> Optional[str]:
    """``None`` if ``library`` (a module name) imports, else the one-line reason it does not."""
    try:
        importlib.import_module(library)
    except Exception as exc:  # an import can fail with anything, not only ImportError
        return f"{library} is not importable ({describe_exception(exc)})"
    return None


@lru_cache(maxsize=None)
def _class(library: str) -> type[Adapter]:
    if library not in LIBRARIES:
        raise KeyError(f"no adapter for library {library!r}; valid: {', '.join(LIBRARIES)}")
    return importlib.import_module(f"{__name__}.{library}").ADAPTER


@lru_cache(maxsize=None)
def get(library: str) -> Adapter:
    """The adapter for ``library`` (one of ``LIBRARIES``)."""
    return _class(library)()


def autodiff_libraries() -> tuple[str, ...]:
    """The libraries that differentiate a backend's forward themselves."""
    return tuple(library for library in LIBRARIES if _class(library).autodiff)


def packages() -> tuple[str, ...]:
    """Every library's distributions, for the versions a results file records."""
    return tuple(name for library in LIBRARIES for name in _class(library).packages)


def unavailable(library: str, device: str) -> Optional[str]:
    """Why arrays of ``library`` cannot be used on ``device`` now, or ``None``."""
    reason = library_unavailable(library)
    if reason:
        return reason
    try:
        return get(library).unavailable(device)
    except Exception as exc:
        return f"{library} on {device}: {describe_exception(exc)}"
