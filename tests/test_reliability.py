"""Misbehaving backends, killed runs and bad input: nothing lost, nothing crashes.

The planted plugins in tests/plugins segfault, hang, eat memory and raise;
each must become a recorded failure with its reason while a correct
neighbour's results are all kept. A run killed with SIGKILL must leave valid
JSON that --resume completes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softmax_bench.measure import cases
from softmax_bench import cli
from softmax_bench.core import results
from softmax_bench.measure.checks import plan
from softmax_bench.core.records import Workpoint
from softmax_bench.core.results import ResultsError
from softmax_bench.core.selection import Target

from helpers import plugin, run_console

MAX_SHIFT_F32 = len(plan([Target("max-shift", "cpu", "float32")], cases.CASES))


def _records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["records"]


@pytest.mark.slow
def test_crashing_hanging_hogging_raising_plugins_are_recorded_and_the_neighbour_kept(tmp_path):
    out = tmp_path / "r.json"
    names = ["segfault", "hang", "memory_hog", "raises"]
    argv = ["check", "--timeout", "5", "--memory-limit", "1G", "--dtype", "float32", "--out", out]
    for name in names:
        argv += ["--plugin", plugin(name), "--backend", name.replace("_", "-")]
    start = time.monotonic()
    proc = run_console(*argv, "--backend", "max-shift")
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert elapsed < 120  # a hanging plugin costs two timeouts, not one per case
    records = _records(out)
    reasons = {r["backend"]: r["reason"] for r in records if r["case"] == "randn_scale_1"}
    assert reasons["segfault"] == "worker died on SIGSEGV"
    assert reasons["hang"] == "timed out after 5 s"
    assert reasons["memory-hog"].startswith("out of memory")
    assert reasons["raises"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    kept = [r for r in records if r["backend"] == "max-shift"]
    assert len(kept) == MAX_SHIFT_F32 and all(r["passed"] is not False for r in kept)
    assert "FAIL segfault cpu float32 randn_scale_1 softmax: worker died on SIGSEGV" in proc.stdout


def _start_check(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "softmax_bench.cli", "check", "--backend", "max-shift", "--dtype", "float32", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_records(out: Path, proc: subprocess.Popen, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len(_records(out)) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"the run wrote fewer than {at_least} records before it ended or {timeout} s passed")


@pytest.mark.slow
def test_sigkill_leaves_valid_json_and_resume_finishes_it(tmp_path):
    out = tmp_path / "killed.json"
    proc = _start_check(out)
    _wait_for_records(out, proc, 10)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    before = _records(out)  # valid JSON, whatever instant the kill came
    assert 10 <= len([r for r in before if r["backend"] == "max-shift"]) < MAX_SHIFT_F32
    resumed = run_console("check", "--backend", "max-shift", "--dtype", "float32", "--resume", out)
    assert resumed.returncode == 0, resumed.stderr
    after = _records(out)
    assert len(after) == len({Workpoint.of(r) for r in after})  # nothing measured twice
    assert len([r for r in after if r["backend"] == "max-shift"]) == MAX_SHIFT_F32
    assert after[: len(before)] == before


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_was_measured(tmp_path):
    out = tmp_path / "interrupted.json"
    proc = _start_check(out)
    _wait_for_records(out, proc, 5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and "records kept" in err
    assert len(_records(out)) >= 5


def test_resume_refuses_a_file_from_another_environment(tmp_path, cli):
    out = tmp_path / "other.json"
    env = {**results.environment(), "python": "2.7.18"}
    results.write_atomic(out, {"schema": 1, "environment": env, "records": []})
    status, _, err = cli("check", "--backend", "max-shift", "--resume", out)
    assert status == 2 and "cannot resume, the environment differs (python:" in err


def test_resume_of_a_missing_file_is_bad_usage(tmp_path, cli):
    status, _, err = cli("check", "--resume", tmp_path / "nope.json")
    assert status == 2 and "no such file" in err


# Property-based: random argument lists never produce a traceback.
TOKENS = [
    "list", "check", "run", "report", "compare", "--backend", "max-shift", "nosuch", "--dtype", "float32", "float8",
    "--device", "cpu", "tpu", "--sizes", "8x1024", "0x5", "axb", "llama3", "--timeout", "0", "-3", "nan", "1e9",
    "--memory-limit", "2G", "lots", "--max-bytes", "--case", "masked_prefix", "--format", "json", "xml", "--out",
    "--resume", "/nonexistent/file.json", "--plugin", "/no/plugin.py", "--threshold", "--quick", "--mode", "warm",
    "--jobs", "-j", "0", "2", "--", "-", "", "\x00", "é",
]


class _Reached(Exception):
    """Arguments were accepted and real work was about to start."""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=8), max_size=8))
def test_random_arguments_never_raise(monkeypatch, argv):
    def reached(*args, **kwargs):
        raise _Reached

    import softmax_bench.measure.suite as suite

    monkeypatch.setattr(suite, "execute", reached)
    try:
        status = cli.main(argv)
    except _Reached:
        return
    except SystemExit as exc:  # --help
        assert exc.code == 0
        return
    assert status in (0, 1, 2)


def _valid_document() -> str:
    record = {"kind": "check", "backend": "b", "device": "cpu", "dtype": "float32", "rows": 1, "vocab": 2,
              "case": "c", "op": "softmax", "passed": True}
    return json.dumps({"schema": 1, "environment": {"cpu": "x"}, "records": [record] * 3})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=len(_valid_document())))
def test_truncated_results_files_give_one_clear_error(tmp_path, cut):
    path = tmp_path / "cut.json"
    whole = _valid_document()
    path.write_text(whole[:cut])
    if cut == len(whole):
        assert len(results.load(path)["records"]) == 3
        return
    with pytest.raises(ResultsError) as caught:  # every proper prefix of the file is refused
        results.load(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.fixed_dictionaries({"schema": st.sampled_from([1, 2, 0, "1", None]), "environment": JSON,
                           "records": st.lists(st.dictionaries(st.sampled_from(
                               ["kind", "backend", "device", "dtype", "rows", "vocab", "case", "passed", "median_s",
                                "iqr_s", "op", "mode", "gbps", "max_ulp"]), JSON, max_size=12), max_size=3)})
    | JSON
)
def test_nonsense_results_files_give_one_clear_error(tmp_path, document):
    path = tmp_path / "nonsense.json"
    path.write_text(json.dumps(document))
    try:
        loaded = results.load(path)
    except ResultsError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    assert loaded["schema"] == 1  # accepted only if it really is a results file


def test_report_on_a_nonsense_file_exits_2_without_traceback(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"schema": 1, "environment": {}, "records": [{"kind": "timing"}]}')
    proc = run_console("report", path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
