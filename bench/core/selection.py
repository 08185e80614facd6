"""What a command will exercise: the registry with its plugin files, and the targets.

``load_registry(plugin_files)`` and ``select(backends, devices, dtypes,
registry)`` take explicit values, never parsed arguments; they raise
``UsageError`` for a name that is not a valid choice, naming the valid ones.
``unavailable(registry, backend, device, dtype)`` is the one test of whether a
backend can run a device and dtype here, used by selection, timing, the asv
suites and the tests alike.
"""

from __future__ import annotations

import re

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..backend import DEVICES, DTYPES
from ..errors import UsageError
from .registry import Registry, RegistryWarning, load


@dataclass(frozen=True)
class Target:
    """One (backend, device, dtype) combination a command will exercise."""

    backend: str
    device: str
    dtype: str


@dataclass
class Selection:
    """What the user asked for, resolved against the registry."""

    registry: Registry
    targets: list[Target]
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (backend, device, reason)
    plugin_files: tuple[str, ...] = ()

    @property
    def single_process(self) -> list[Target]:
        """The targets that run in one process (not sharded over a group: ``parallel`` unset)."""
        return [t for t in self.targets if self.registry.get(t.backend).parallel is None]


def load_registry(plugin_files: Sequence[str] = ()) -> Registry:
    """The registry with ``plugin_files``; a missing file is a ``UsageError``.

    Plugins that fail to load are in ``registry.warnings`` (the caller says
    them), never raised.
    """
    for path in plugin_files:
        if not Path(path).is_file():
            raise UsageError(f"--plugin {path}: no such file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegistryWarning)
        return load(plugin_files)


def choose(given: Sequence[str], valid: Sequence[str], what: str) -> list[str]:
    """``given`` if every entry is valid (default: all of ``valid``), else ``UsageError``."""
    for item in given:
        if item not in valid:
            raise UsageError(f"unknown {what} {item!r}; valid: {', '.join(valid) or '(none)'}")
    return list(dict.fromkeys(given)) if given else list(valid)


def _patterns(given: Sequence[str], option: str) -> list["re.Pattern[str]"]:
    """``given`` compiled; a bad expression is a ``UsageError`` naming it (one line, exit 2)."""
    compiled = []
    for text in given:
        try:
            compiled.append(re.compile(text))
        except re.error as exc:
            raise UsageError(f"{option} {text!r}: not a regular expression ({exc})") from None
    return compiled


def filter_names(valid: Sequence[str], named: Sequence[str] = (), bench: Sequence[str] = (),
                 skip: Sequence[str] = ()) -> list[str]:
    """The backends of ``--backend`` NAMEs plus those ``-b/--bench`` REGEXes find, less ``--skip`` REGEXes.

    As in asv, ``-b`` searches the name (``-b numba`` finds every numba
    backend); ``--skip`` must match the whole name, so ``--skip numba-2pass``
    leaves ``numba-2pass-reload`` in. With neither ``--backend`` nor ``-b``
    every backend is the start. An empty result is a ``UsageError``: an empty
    selection would otherwise mean "all" to ``select``.
    """
    wanted = _patterns(bench, "-b/--bench")
    dropped = _patterns(skip, "--skip")
    start = choose(named, valid, "backend") if named or not wanted else []
    start += [n for n in valid if n not in start and any(p.search(n) for p in wanted)]
    kept = [n for n in start if not any(p.fullmatch(n) for p in dropped)]
    if not kept:
        asked = " ".join([*(f"--backend {n}" for n in named), *(f"-b {b}" for b in bench), *(f"--skip {s}" for s in skip)])
        raise UsageError(f"{asked}: selects no backend; valid: {', '.join(valid) or '(none)'}")
    return kept


def unavailable(registry: Registry, backend: str, device: str, dtype: Optional[str] = None) -> Optional[str]:
    """``None`` when ``backend`` can run on ``device`` (in ``dtype``) here, else the reason."""
    reason = registry.unavailable(backend, device)
    declared = registry.get(backend).dtypes
    if reason is None and dtype is not None and dtype not in declared:
        reason = f"supports {', '.join(declared)} only"
    return reason


def select(backends: Sequence[str], devices: Sequence[str], dtypes: Sequence[str], registry: Registry,
           plugin_files: Sequence[str] = ()) -> Selection:
    """Validate the names asked for and list the runnable targets (empty sequences mean all).

    An explicitly requested device or dtype that a backend does not support is
    simply not combined with it; a backend unavailable here is skipped with
    its reason (reported, never an error).
    """
    names = choose(backends, registry.names(), "backend")
    devices = choose(devices, DEVICES, "device")
    dtypes = choose(dtypes, DTYPES, "dtype")
    selection = Selection(registry, [], plugin_files=tuple(plugin_files))
    for name in names:
        backend = registry.get(name)
        for device in (d for d in devices if d in backend.devices):
            reason = unavailable(registry, name, device)
            if reason:
                selection.skipped.append((name, device, reason))
                continue
            selection.targets.extend(Target(name, device, dt) for dt in dtypes if dt in backend.dtypes)
    return selection
