"""Provenance (issue 24): the CPU's flags and caches, thread settings, numba/llvmlite versions, the report's date and command."""

from __future__ import annotations

import json
import sys

from softmax_bench.core import results
from softmax_bench.report.runs import load_runs
from softmax_bench.report.tables import sources_table

from helpers import ROOT


def _row(table, label):
    return next(row for row in table.rows if row[0] == label)


def test_environment_records_cpu_details_threads_and_versions(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    env = results.environment()
    info = env["cpu_info"]
    assert info["source"] in ("py-cpuinfo", "proc") and isinstance(info["simd_flags"], list)
    assert set(info["simd_flags"]) <= set(results.SIMD_FLAGS)
    assert env["threads"]["OMP_NUM_THREADS"] == "3"
    import importlib.util

    if importlib.util.find_spec("numba"):
        assert {"numba", "llvmlite"} <= set(env["packages"])


def test_without_py_cpuinfo_the_cpu_details_come_from_proc(monkeypatch):
    monkeypatch.setitem(sys.modules, "cpuinfo", None)  # import cpuinfo raises ImportError
    info = results.cpu_details()
    assert info["source"] == "proc" and info["brand_raw"]


def test_a_file_with_cpu_details_shows_flags_caches_and_threads(tmp_path):
    document = json.loads((ROOT / "tests" / "data" / "results-small.json").read_text())
    document["environment"]["cpu_info"] = {"simd_flags": ["avx2", "avx512f"], "l2_cache_size": 1 << 20,
                                           "l3_cache_size": 32 << 20, "source": "py-cpuinfo"}
    document["environment"]["threads"] = {"OMP_NUM_THREADS": "1", "affinity_cpus": 2}
    path = tmp_path / "new.json"
    path.write_text(json.dumps(document))
    table = sources_table(load_runs([path]))
    assert _row(table, "CPU flags")[1] == "avx2 avx512f"
    assert "L3 32" in _row(table, "caches")[1]
    assert _row(table, "threads")[1] == "OMP_NUM_THREADS=1, affinity_cpus=2"


def test_old_files_without_them_still_load_and_say_missing():
    table = sources_table(load_runs([ROOT / "results" / "timing-cpu-default-a.json"]))
    assert _row(table, "CPU flags")[1] == "—" and _row(table, "threads")[1] == "—"


def test_the_report_says_when_and_by_which_command_it_was_made(cli, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796428800")
    monkeypatch.chdir(ROOT)
    status, out, _ = cli("report", "results/check-cpu.json")
    assert status == 0
    assert "Made on 2026-12-05 (UTC) by: softmax-bench report results/check-cpu.json" in out
