"""asv end to end: ``asv continuous`` must catch a backend made 10x slower.

A temporary git repository is made from this working tree (tracked files and
untracked ones git does not ignore), with two commits: the tree as it is,
then ``max-shift`` repeating its work ten times. ``asv continuous`` builds
both commits in one virtualenv (a test-specific asv.conf.json with the
smallest dependency set: no torch, no jax) and must exit 1 naming the slowed
benchmark. The environment needs numpy and friends from the package index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT

SLOWDOWN = '''

# --- planted by tests/test_asv.py: the same softmax, ten times the work ---
import dataclasses as _dataclasses

_fast_softmax = softmax


def softmax(x, axis=-1):
    for _ in range(9):
        _fast_softmax(x, axis)
    return _fast_softmax(x, axis)


backend = _dataclasses.replace(backend, softmax=softmax)
'''


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout


def working_tree_files() -> list[str]:
    """Tracked files and untracked files git does not ignore, as paths relative to the root."""
    listed = _git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    return [p for p in listed.split("\0") if p and (ROOT / p).is_file()]


def make_repo(tmp: Path) -> Path:
    repo = tmp / "repo"
    for rel in working_tree_files():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    config = {
        "version": 1, "project": "softmax-bench", "repo": ".", "branches": ["main"],
        "environment_type": "virtualenv", "benchmark_dir": "suites", "launch_method": "spawn",
        "env_dir": str(tmp / "env"), "results_dir": str(tmp / "results"), "html_dir": str(tmp / "html"),
        "pythons": [f"{sys.version_info.major}.{sys.version_info.minor}"],
        "build_command": ["python -m pip wheel --no-deps --no-build-isolation -w {build_cache_dir} {build_dir}"],
        "install_command": ["in-dir={env_dir} python -m pip install --no-deps --force-reinstall {wheel_file}"],
        "uninstall_command": ["return-code=any python -m pip uninstall -y {project}"],
        # What importing softmax_bench and its exact reference need, and what building its wheel needs.
        "matrix": {"req": {"numpy": [""], "ml_dtypes": [""], "mpmath": [""], "tabulate": [""], "tqdm": [""],
                           "setuptools": [""], "wheel": [""]}},
    }
    (repo / "asv.conf.json").write_text(json.dumps(config, indent=1))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    with open(repo / "backends" / "max_shift.py", "a") as handle:
        handle.write(SLOWDOWN)
    _git(repo, "commit", "-q", "-am", "max-shift: ten times the work")
    return repo


@pytest.mark.slow
def test_asv_continuous_flags_a_backend_made_ten_times_slower(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = make_repo(tmp_path)
    env = {**os.environ, "HOME": str(tmp_path), "SOFTMAX_BENCH_FULL": "0"}
    env.pop("PYTHONPATH", None)
    asv = [sys.executable, "-m", "asv"]
    subprocess.run([*asv, "machine", "--yes", "--machine", "e2e"], cwd=repo, env=env, check=True, capture_output=True, timeout=60)
    started = time.monotonic()
    # One benchmark, one size: the point is the machinery, not the survey.
    proc = subprocess.run(
        [*asv, "continuous", "--machine", "e2e", "--show-stderr", "--factor", "3",
         "--bench", r"time_softmax\('max-shift', 'cpu', 'float32', '8x32000'\)", "HEAD~1", "HEAD"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=280,
    )
    output = proc.stdout + proc.stderr
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, f"asv continuous exited {proc.returncode} after {elapsed:.0f} s:\n{output[-4000:]}"
    assert "PERFORMANCE DECREASED" in output, output[-4000:]
    # The comparison table: "| + | before | after | ratio | benchmark |" for each slower one.
    slower = [line for line in output.splitlines() if line.split("|")[1:2] and line.split("|")[1].strip() == "+"]
    assert len(slower) == 1 and "time_softmax('max-shift'" in slower[0], output[-4000:]

    # Every benchmark class, for a backend that runs here and for one that cannot (CuPy without
    # a GPU): what cannot run is n/a, nothing "failed", and
    # `asv continuous --quick` exits 0 or 1 (the planted slowdown), never 2.
    # Kept small for CI: one unit of each class that runs here, and CuPy's (n/a) everywhere.
    every_class = r"benchmarks\.\w+\.\w+\('(cupy', 'cuda'|max-shift', 'cpu', '(float32|softmax\.bwd)')"
    proc = subprocess.run(
        [*asv, "continuous", "--machine", "e2e", "--show-stderr", "--quick", "--factor", "3",
         "--bench", every_class, "HEAD~1", "HEAD"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=400,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), f"asv continuous --quick exited {proc.returncode}:\n{output[-4000:]}"
    ran = {name for name in ("TimeSoftmax", "TimeOps", "TrackError", "TrackCrossEntropyError") if f"benchmarks.{name}." in output}
    assert ran == {"TimeSoftmax", "TimeOps", "TrackError", "TrackCrossEntropyError"}, output[-4000:]
    assert "failed" not in output.lower(), output[-6000:]
    assert "n/a" in output  # CuPy without a GPU: skipped, with its reason


def _suites():
    import importlib

    sys.path.insert(0, str(ROOT / "suites"))
    try:
        return importlib.import_module("benchmarks")
    finally:
        sys.path.pop(0)


def test_time_ops_teardown_after_a_skipped_setup_is_a_skip_not_a_failure():
    """asv runs teardown after setup raised NotImplementedError (n/a); reading what setup never made
    failed 54 of 72 TimeOps units on a CPU-only machine and made `asv continuous` exit 2."""
    suite = _suites().TimeOps()
    with pytest.raises(NotImplementedError):
        suite.setup("cupy", "cuda", "softmax.bwd", "8x32000")
    suite.teardown("cupy", "cuda", "softmax.bwd", "8x32000")  # raised AttributeError before


def test_time_ops_teardown_still_checks_a_unit_that_ran():
    suite = _suites().TimeOps()
    suite.setup("max-shift", "cpu", "softmax.bwd", "8x1024")
    suite.time_op("max-shift", "cpu", "softmax.bwd", "8x1024")
    suite.teardown("max-shift", "cpu", "softmax.bwd", "8x1024")
    suite.out = suite.out * 2  # a wrong output must still fail the unit
    with pytest.raises(AssertionError, match="wrong"):
        suite.teardown("max-shift", "cpu", "softmax.bwd", "8x1024")


def _asv_conf() -> dict:
    """The committed asv.conf.json (asv allows // comment lines; JSON does not)."""
    text = "\n".join(line for line in (ROOT / "asv.conf.json").read_text().splitlines()
                     if not line.lstrip().startswith("//"))
    return json.loads(text)


def _inside(path: str, folder: str) -> bool:
    from pathlib import PurePosixPath

    return PurePosixPath(folder) in PurePosixPath(path).parents or path == folder


def test_asv_html_dir_is_outside_results_dir():
    """asv publish reads every JSON under results_dir; its own site there is read back as results."""
    conf = _asv_conf()
    assert not _inside(conf["html_dir"], conf["results_dir"]), conf
    assert _inside("results/asv/html", "results/asv")  # the control: the old layout is caught
