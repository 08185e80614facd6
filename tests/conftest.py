"""Shared fixtures: the CLI in-process and as a real subprocess, and plugin paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from softmax_bench.cli import main

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"


def plugin(name: str) -> str:
    """Path of a planted plugin file in tests/plugins."""
    return str(PLUGINS / f"{name}.py")


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit status, stdout, stderr)."""

    def run(*argv: str):
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def run_console(*argv: str, timeout: float = 300, env: dict | None = None, cwd: str | None = None):
    """Run ``softmax-bench`` as a user would, in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "softmax_bench.cli", *map(str, argv)],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """``pytest --benchmark-only`` times the benchmarks despite ``--benchmark-disable`` in addopts.

    The addopts default keeps the benchmarks a one-call smoke run in CI;
    asking for benchmarks only means asking for them to be timed.
    """
    if config.getoption("benchmark_only", False):
        config.option.benchmark_enable = True


def registry_targets(registry):
    """(backend, device, dtype, skip reason or None) for every target a registry declares."""
    for name in registry.names():
        backend = registry.get(name)
        for device in backend.devices:
            reason = registry.unavailable(name, device)
            for dtype in backend.dtypes:
                yield name, device, dtype, (f"{name} on {device}: {reason}" if reason else None)
