"""The backend registry: entry points and ``--plugin`` files, one path for all.

Every backend, built-in or third-party, arrives through the entry-point group
``softmax_bench.backends`` (or a ``--plugin FILE.py`` given explicitly). An
entry point's value loads to a ``Backend``, an iterable of them, or a
zero-argument callable returning either. Following xarray's backends, a
plugin that fails to load, or repeats a name already taken, becomes a warning
with its reason, never a crash. Nothing is imported from the working
directory implicitly.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional, Sequence

from . import adapters
from ..backend import Backend
from ..errors import describe_exception

GROUP = "softmax_bench.backends"
BUILTIN_ENTRY_POINT = "builtins"


class RegistryWarning(UserWarning):
    """A plugin that could not be registered; the reason is in the message."""


@dataclass
class Registry:
    """Registered backends by name, plus the warnings met while loading them."""

    backends: dict[str, Backend] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _availability: dict[tuple[str, str], Optional[str]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.backends)

    def get(self, name: str) -> Backend:
        """The backend called ``name``; ``KeyError`` naming the valid choices otherwise."""
        try:
            return self.backends[name]
        except KeyError:
            raise KeyError(f"unknown backend {name!r}; valid: {', '.join(self.backends) or '(none)'}") from None

    def unavailable(self, name: str, device: str) -> Optional[str]:
        """``None`` if backend ``name`` can run on ``device`` here, else the reason."""
        key = (name, device)
        if key not in self._availability:
            self._availability[key] = _check_available(self.get(name), device)
        return self._availability[key]

    def add(self, backend: Backend, origin: str) -> None:
        if not isinstance(backend, Backend):
            self._warn(f"{origin}: provides {type(backend).__name__}, not a softmax_bench.Backend; ignored")
            return
        if backend.name in self.backends:
            first = self.backends[backend.name].origin
            self._warn(f"{origin}: duplicate backend name {backend.name!r} ignored (first registered by {first})")
            return
        object.__setattr__(backend, "origin", backend.origin or origin)
        self.backends[backend.name] = backend

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        warnings.warn(message, RegistryWarning, stacklevel=3)


def _check_available(backend: Backend, device: str) -> Optional[str]:
    if device not in backend.devices:
        return f"runs on {', '.join(backend.devices)} only"
    reason = adapters.unavailable(backend.library, device)
    if reason is None and backend.available is not None:
        try:
            reason = backend.available(device)
        except Exception as exc:
            reason = f"availability check raised {describe_exception(exc)}"
    return reason


def backends_in(value: Any, origin: str) -> list[Backend]:
    """Normalise what a plugin provides (a Backend, an iterable, a callable) to a list."""
    if callable(value) and not isinstance(value, Backend):
        value = value()
    if isinstance(value, Backend):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return list(value)
    raise TypeError(f"{origin} gives {type(value).__name__}; expected a Backend, an iterable of them, or a callable")


def backends_of_module(module: ModuleType) -> list[Backend]:
    """The ``backend`` or ``backends`` a plugin module defines."""
    for attr in ("backends", "backend"):
        if hasattr(module, attr):
            return backends_in(getattr(module, attr), module.__name__)
    raise AttributeError(f"{module.__name__} defines neither 'backend' nor 'backends'")


def import_plugin_file(path: str | Path) -> ModuleType:
    """Import a single-file plugin under a private module name (no sys.path change)."""
    path = Path(path).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"softmax_bench_plugin_{path.stem.replace('-', '_')}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} (not a Python file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = list(importlib.metadata.entry_points(group=GROUP))
    # Built-ins first so that a third-party plugin cannot shadow them silently.
    return sorted(eps, key=lambda ep: (ep.name != BUILTIN_ENTRY_POINT, ep.name, ep.value))


def load(plugin_files: Sequence[str | Path] = ()) -> Registry:
    """Build a registry from the entry-point group and the given plugin files."""
    registry = Registry()
    for ep in _entry_points():
        origin = f"entry point {ep.name} = {ep.value}"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                found = backends_in(ep.load(), origin)
            for w in caught:
                registry._warn(str(w.message))
        except Exception as exc:
            registry._warn(f"{origin}: failed to load ({describe_exception(exc)})")
            continue
        for backend in found:
            registry.add(backend, origin)
    for path in plugin_files:
        origin = f"plugin {path}"
        try:
            found = backends_of_module(import_plugin_file(path))
        except Exception as exc:
            registry._warn(f"{origin}: failed to load ({describe_exception(exc)})")
            continue
        for backend in found:
            registry.add(backend, origin)
    return registry


_cache: dict[tuple[str, ...], Registry] = {}


def reset() -> None:
    """Forget every cached registry (after installing a plugin, or between tests)."""
    _cache.clear()


def cached(plugin_files: Sequence[str | Path] = ()) -> Registry:
    """``load`` once per set of plugin files in this process (workers call it per task)."""
    key = tuple(str(Path(p).resolve()) for p in plugin_files)
    if key not in _cache:
        _cache[key] = load(plugin_files)
    return _cache[key]
