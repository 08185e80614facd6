"""What several test modules share: the CLI in a subprocess, planted plugin paths, registry targets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"


def plugin(name: str) -> str:
    """Path of a planted plugin file in tests/plugins."""
    return str(PLUGINS / f"{name}.py")


# The ways a user starts the tool: the installed console script and both module forms.
ENTRIES = {
    "softmax-bench": (str(Path(sys.executable).with_name("softmax-bench")),),
    "python -m softmax_bench": (sys.executable, "-m", "softmax_bench"),
    "python -m softmax_bench.cli": (sys.executable, "-m", "softmax_bench.cli"),
}


def run_console(*argv: str, timeout: float = 300, env: dict | None = None, cwd: str | None = None,
                entry: str = "python -m softmax_bench"):
    """Run the command line as a user would, in a subprocess (one of ``ENTRIES``)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*ENTRIES[entry], *map(str, argv)],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
    )


def registry_targets(registry):
    """(backend, device, dtype, skip reason or None) for every target a registry declares."""
    for name in registry.names():
        backend = registry.get(name)
        for device in backend.devices:
            reason = registry.unavailable(name, device)
            for dtype in backend.dtypes:
                yield name, device, dtype, (f"{name} on {device}: {reason}" if reason else None)
