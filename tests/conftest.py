"""Fixtures: the CLI in-process; the pytest-benchmark switch. Shared helpers are in helpers.py."""

from __future__ import annotations

import pytest

from softmax_bench.cli import main


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit status, stdout, stderr)."""

    def run(*argv: str):
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """``pytest --benchmark-only`` times the benchmarks despite ``--benchmark-disable`` in addopts.

    The addopts default keeps the benchmarks a one-call smoke run in CI;
    asking for benchmarks only means asking for them to be timed.
    """
    if config.getoption("benchmark_only", False):
        config.option.benchmark_enable = True
