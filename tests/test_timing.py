"""The timing engine: planted backends with known costs, buffers, records, failures.

Every timing here uses tiny sizes and a short budget; the only timing figures
asserted are the large-margin ones (a 20 ms sleep is at least 20 ms; a no-op
costs far less than 50 µs), so the shared, noisy machine cannot flake them.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from helpers import ROOT, plugin
from softmax_bench.measure import memory, clock, timing, planning
from softmax_bench.report import speed
from softmax_bench.errors import UsageError
from softmax_bench.core.formatting import format_seconds
from softmax_bench.core.results import load as load_results
from softmax_bench.core.sizes import PRESETS, VOCABULARIES, Size, parse, working_set

TINY = clock.Budget(warmup_s=0.0, warmup_calls=1, min_sample_s=0.001, repeats=5, min_repeats=3, max_s=0.05)
SLEEP = plugin("timing_sleep")
NOOP = plugin("timing_noop")
FAULTY = plugin("timing_faulty")


@pytest.fixture
def short_runs(monkeypatch):
    """--quick with the tiny budget and a 64 KiB "cache", so cold mode needs few buffers."""
    monkeypatch.setattr(clock, "QUICK_BUDGET", TINY)
    monkeypatch.setenv(memory.LLC_ENV, str(64 * 1024))


def readme_timing_fields() -> list[str]:
    """The field names of the "timing record field" table in docs/reports.md."""
    text = (ROOT / "docs" / "reports.md").read_text()
    table = text.split("| timing record field |", 1)[1].split("\n\n", 1)[0]
    fields = []
    for line in table.splitlines()[2:]:
        first_cell = line.split("|")[1]
        fields += re.findall(r"`([a-z_]+)`", first_cell)
    return fields


# ------------------------------------------------------------ the timer itself

def test_a_20ms_sleep_is_reported_as_at_least_20ms():
    result = timing.measure("sleep-20ms", "cpu", "float32", 1, 64, "warm", budget=TINY, with_copy=False, plugin_files=(SLEEP,))
    assert result["median_s"] >= 0.020
    assert result["inner"] == 1  # one call already outlasts the minimum sample


def test_a_noop_backend_costs_the_engine_little_per_call():
    # The README quotes the measured overhead (tens of ns); this only guards
    # against the loop growing something expensive, with a wide margin.
    result = timing.measure("noop", "cpu", "float32", 1, 16, "warm", budget=TINY, with_copy=False, plugin_files=(NOOP,))
    assert 0 < result["median_s"] < 50e-6
    assert result["inner"] > 10  # calibration packed many calls into each sample


def test_time_calls_takes_the_requested_repeats_and_median_of_samples():
    calls = []
    budget = clock.Budget(warmup_s=0.0, warmup_calls=2, min_sample_s=0.0005, repeats=6, min_repeats=6, max_s=10)
    result = clock.time_calls(lambda x: calls.append(x), [(1,)], lambda y: y, budget)
    assert result.repeats == len(result.samples_s) == 6
    assert result.median_s == pytest.approx(float(np.median(result.samples_s)))
    q1, q3 = np.percentile(result.samples_s, [25, 75])
    assert result.iqr_s == pytest.approx(q3 - q1)
    assert len(calls) >= 1 + 2 + 6 * result.inner  # first, warm-up, samples


def test_unordered_libraries_wait_on_every_output_of_a_sample():
    waited = []
    budget = clock.Budget(warmup_s=0.0, warmup_calls=1, min_sample_s=0.0, repeats=3, min_repeats=3)
    clock.time_calls(lambda x: x, [(7,)], waited.append, budget, ordered=False)
    assert len(waited) >= 1 + 1 + 3 and all(isinstance(w, list) and w and set(w) == {7} for w in waited)


class FakeSampler:
    """A sampler whose calls each cost ``cost`` seconds on a clock that moves only as they are made."""

    def __init__(self, cost: float):
        self.cost, self.now, self.taken = cost, 0.0, []

    def __call__(self, n: int, warm_up: bool = False) -> float:
        self.taken.append((n, warm_up))
        self.now += self.cost * n
        return self.cost * n

    def clock(self) -> float:
        return self.now


def test_a_given_sampler_takes_the_first_call_warm_up_calibration_and_samples():
    u = 2.0**-10  # exact in binary: the clock comparisons below are exact
    fake = FakeSampler(u)
    budget = clock.Budget(warmup_s=8 * u, warmup_calls=2, min_sample_s=4 * u, repeats=5, min_repeats=3, max_s=1e6)
    result = clock.time_calls(budget=budget, sampler=fake)
    # The first call, then singles until the sampler's clock (not the wall clock) passes the warm-up:
    # 8 of them; inner = 4 makes a sample of the minimum length, which is kept, and 4 more follow.
    assert fake.taken == [(1, True)] * 9 + [(4, False)] * 5
    assert (result.median_s, result.iqr_s, result.repeats, result.inner, result.first_call_s) == (u, 0.0, 5, 4, u)
    assert result.samples_s == [u] * 5


def test_the_stopping_rule_reads_the_samplers_clock():
    u = 2.0**-10
    fake = FakeSampler(u)
    budget = clock.Budget(warmup_s=0.0, warmup_calls=1, min_sample_s=4 * u, repeats=15, min_repeats=3, max_s=10 * u)
    result = clock.time_calls(budget=budget, first=0.5, sampler=fake)
    # Samples of 4u: after the third, 12u of the sampler's clock have passed max_s (10u): stop at min_repeats.
    # (On the wall clock these microseconds would never reach it: all 15 would be taken.)
    assert result.repeats == 3 and result.first_call_s == 0.5
    assert fake.taken == [(1, True)] + [(4, False)] * 3


def test_refresh_and_inspect_see_the_samples_only_not_the_first_call_or_warm_up():
    refreshed, inspected = [], []
    budget = clock.Budget(warmup_s=0.0, warmup_calls=3, min_sample_s=0.0, repeats=4, min_repeats=4)
    result = clock.time_calls(lambda x: x, [(1,)], lambda y: y, budget, refresh=refreshed.append,
                              inspect=lambda k, args, out: inspected.append((k, args, out)))
    assert result.repeats == 4 and refreshed == [0, 1, 2, 3]
    assert inspected == [(k, (1,), 1) for k in range(4)]


def test_time_calls_takes_a_local_call_or_a_sampler_not_both():
    with pytest.raises(TypeError, match="or a sampler"):
        clock.time_calls(lambda: None, [()], lambda y: y, sampler=FakeSampler(1.0))
    with pytest.raises(TypeError, match="or a sampler"):
        clock.time_calls(lambda: None, [()])


def test_quartiles_are_numpys_percentiles():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    assert clock.quartiles(values) == tuple(float(q) for q in np.percentile(values, [25, 50, 75]))
    assert clock.median(values) == float(np.median(values))


# --------------------------------------------------------------- cold and warm

def test_buffer_counts_exceed_the_cache_in_cold_mode_only():
    llc = 1 << 20
    assert memory.buffer_count(4096, "warm", llc) == 1
    cold = memory.buffer_count(4096, "cold", llc)
    assert cold * 4096 >= memory.COLD_FACTOR * llc and (cold - 1) * 4096 < memory.COLD_FACTOR * llc
    assert memory.buffer_count(llc + 1, "cold", llc) == 1  # one input already outgrows the cache


def test_cold_mode_rotates_through_distinct_buffers_and_warm_reuses_one():
    size, llc = Size(1, 1024), 64 * 1024
    for mode in timing.MODES:
        n = memory.buffer_count(size.nbytes("float32"), mode, llc)
        case = timing.prepare("max-shift", "cpu", "float32", size, buffers=n)
        seen = set()
        clock.time_calls(lambda x: seen.add(x.ctypes.data), case.inputs.args, case.wait, TINY)
        expected = 1 if mode == "warm" else memory.COLD_FACTOR * llc // size.nbytes("float32")
        assert len(case.inputs.args) == n == expected
        assert len(seen) == expected  # every buffer was used, each at its own address


def test_cpu_cache_size_is_read_from_sysfs_with_a_default(tmp_path, monkeypatch):
    for index, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "64K"), (2, "Unified", "2048K"), (3, "Unified", "30M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(f"{level}\n")
        (folder / "type").write_text(f"{kind}\n")
        (folder / "size").write_text(f"{size}\n")
    assert memory.cpu_llc_bytes(str(tmp_path)) == 30 * 2**20
    assert memory.cpu_llc_bytes(str(tmp_path / "missing")) is None
    monkeypatch.setattr(memory, "cpu_llc_bytes", lambda: None)
    monkeypatch.delenv(memory.LLC_ENV, raising=False)
    assert memory.llc_bytes("cpu") == memory.DEFAULT_LLC_BYTES


# ------------------------------------------------------------------- sizes

def test_sizes_accept_numbers_model_names_and_presets():
    assert parse("8x128256,1x256000") == [Size(8, 128256), Size(1, 256000)]
    assert parse(" 8xllama3 , 1xGEMMA ") == [Size(8, 128256), Size(1, 256000)]
    assert parse("quick") == PRESETS["quick"]
    assert parse("qwen2") == [Size(r, 151936) for r in (1, 8, 64, 512)]
    assert parse("1x1024,1x1024") == [Size(1, 1024)]
    assert {s.vocab for s in PRESETS["full"]} == {1024, *VOCABULARIES.values()}
    assert {s.rows for s in PRESETS["full"]} == {1, 8, 64, 512, 4096}


@pytest.mark.parametrize("spec", ["8y100", "8x", "x100", "0x1024", "8x0", "-1x5", "8x128256,,1x5", "8xllama9", "huge", ""])
def test_malformed_sizes_are_one_line_usage_errors(spec, cli):
    with pytest.raises(UsageError, match="valid forms|at least 1"):
        parse(spec)
    status, out, err = cli("run", "--sizes", spec, "--no-isolate")
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unknown_backend_is_a_usage_error(cli):
    status, _, err = cli("run", "--backend", "nope", "--sizes", "1x8")
    assert status == 2 and "unknown backend 'nope'; valid:" in err


def test_a_size_over_the_memory_budget_is_skipped_with_its_reason(cli, tmp_path, short_runs):
    out = tmp_path / "r.json"
    status, text, _ = cli("run", "--backend", "max-shift", "--sizes", "1x512,64x32000", "--mode", "warm",
                          "--max-bytes", "1M", "--quick", "--no-isolate", "--out", out)
    assert status == 0
    records = {r["rows"]: r for r in load_results(out)["records"]}
    assert records[1]["median_s"] > 0 and records[1]["skipped"] is False
    big = records[64]
    assert big["median_s"] is None and big["skipped"] is True and big["failure"] is None
    assert "exceeds --max-bytes 1.0 MiB" in big["reason"] and "exceeds --max-bytes" in text
    assert working_set(Size(64, 32000), "float32", 1) > 2**20


# ------------------------------------------------------- the run and its records

def test_run_writes_records_with_every_readme_field_and_the_copy_ceiling(cli, tmp_path, short_runs, monkeypatch):
    copies = []
    real = timing.measure

    def counting(*args, **kwargs):
        result = real(*args, **kwargs)
        copies.append(result["copy_gbps"] is not None)
        return result

    monkeypatch.setattr(planning, "measure", counting)
    out = tmp_path / "r.json"
    status, text, _ = cli("run", "--backend", "max-shift", "--backend", "naive", "--sizes", "1x1024,2x512",
                          "--quick", "--no-isolate", "--out", out)
    assert status == 0
    everything = load_results(out)["records"]
    timings = [r for r in everything if r["kind"] == "timing"]
    records = [r for r in timings if (r["op"], r["pass"]) == ("softmax", "fwd")]
    assert len(records) == 2 * 2 * 2  # backends x sizes x modes
    # --quick adds one backward and one cross-entropy training step per backend, at the first size.
    extra = sorted((r["backend"], r["op"], r["pass"], r["rows"], r["vocab"]) for r in timings if r not in records)
    assert extra == [(b, op, p, 1, 1024) for b in ("max-shift", "naive") for op, p in (("cross_entropy", "full"), ("softmax", "bwd"))]
    # The short correctness summary ran first, softmax only, for both backends.
    summary = [r for r in everything if r["kind"] == "check"]
    assert {r["backend"] for r in summary} == {"max-shift", "naive"} and {r["op"] for r in summary} == {"softmax"}
    assert "correctness naive cpu float32: 3/6 pass" in text
    # Every unit times its own copy: no unit's ceiling depends on which ran first.
    assert sum(copies) == len(copies) == 12
    fields = readme_timing_fields()
    assert {"op", "mode", "median_s", "iqr_s", "copy_gbps", "copy_fraction", "peak_bytes", "first_call_s"} <= set(fields)
    for r in records:
        missing = [f for f in fields + ["library", "kind", "backend", "device", "dtype", "rows", "vocab"] if f not in r]
        assert not missing, missing
        assert r["kind"] == "timing" and r["library"] == "numpy" and r["op"] == "softmax"
        assert r["median_s"] > 0 and r["iqr_s"] >= 0 and r["repeats"] >= TINY.min_repeats and r["inner"] >= 1
        assert r["gbps"] == pytest.approx(2 * r["rows"] * r["vocab"] * 4 / r["median_s"] / 1e9)
        assert r["copy_gbps"] > 0 and r["copy_fraction"] == pytest.approx(r["gbps"] / r["copy_gbps"])
        same = [t["copy_gbps"] for t in timings if (t["rows"], t["vocab"], t["mode"]) == (r["rows"], r["vocab"], r["mode"])]
        assert r["device_copy_gbps"] == max(same) and r["device_copy_fraction"] == pytest.approx(r["gbps"] / max(same))
        assert r["bytes"] == 2 * r["rows"] * r["vocab"] * 4 and r["route"] == "explicit" and r["threads"] == 1
        # The output at least, by NumPy's own count; the resident set's rise (a lower bound: a
        # few KiB come from heap pages already resident) is measured beside it.
        assert r["peak_library_bytes"] >= r["rows"] * r["vocab"] * 4 and r["peak_library_method"] == "tracemalloc"
        assert r["peak_method"] == "rss" and r["peak_bytes"] is not None
        assert r["first_call_s"] > 0
        assert r["buffers"] == (1 if r["mode"] == "warm" else memory.buffer_count(r["rows"] * r["vocab"] * 4, "cold", 64 * 1024))
    assert "vs max-shift" in text and "1.00x" in text and "% copy" in text


def test_speed_relative_to_max_shift_matches_on_device_dtype_size_and_mode():
    base = {"device": "cpu", "dtype": "float32", "rows": 1, "vocab": 8, "mode": "warm"}
    records = [
        {**base, "backend": "max-shift", "median_s": 2.0},
        {**base, "backend": "fast", "median_s": 1.0},
        {**base, "backend": "cold-one", "median_s": 1.0, "mode": "cold"},  # no cold baseline
        {**base, "backend": "failed", "median_s": None},
    ]
    assert speed.relative_to_baseline(records) == {0: 1.0, 1: 2.0, 2: None, 3: None}
    text = speed.table([{**r, "iqr_s": None, "gbps": None, "copy_fraction": None, "peak_bytes": None} for r in records])
    assert "2.00x" in text.splitlines()[3]


@pytest.mark.slow
def test_failing_and_hanging_backends_become_recorded_failures_and_others_keep_their_timings(cli, tmp_path, short_runs):
    out = tmp_path / "r.json"
    status, text, err = cli(
        "run", "--plugin", FAULTY, "--backend", "raises", "--backend", "hangs", "--backend", "crashes",
        "--backend", "wrong-shape", "--backend", "max-shift", "--sizes", "1x256", "--mode", "warm",
        "--quick", "--timeout", "5", "--out", out,
    )
    assert status == 0
    by_name = {r["backend"]: r for r in load_results(out)["records"]}
    assert by_name["max-shift"]["median_s"] > 0
    expected = {"raises": ("raised", "planted failure"), "hangs": ("timeout", "timed out"),
                "crashes": ("crashed", "SIGSEGV"), "wrong-shape": ("invalid", "shape")}
    for name, (kind, words) in expected.items():
        r = by_name[name]
        assert r["median_s"] is None and r["failure"] == kind and words in r["reason"], r
        assert name in text
    assert "4 timing(s) failed" in err


def test_peak_memory_is_measured_the_same_way_for_numpy_and_torch():
    size = Size(64, 32000)  # 8 MB: fresh pages, which the resident set must show
    case = timing.prepare("max-shift", "cpu", "float32", size)
    numpy_peak = memory.peak_memory(case.adapter, "cpu", case.call)
    # One method for every library (the resident set), NumPy's tracemalloc figure beside it.
    assert numpy_peak["peak_method"] == "rss" and numpy_peak["peak_library_method"] == "tracemalloc"
    assert numpy_peak["peak_bytes"] >= size.nbytes("float32") and numpy_peak["peak_library_bytes"] >= size.nbytes("float32")
    torch_case = timing.prepare("torch-fused", "cpu", "float32", Size(64, 32000))
    torch_peak = memory.peak_memory(torch_case.adapter, "cpu", torch_case.call)
    assert torch_peak["peak_method"] == "rss" and torch_peak["peak_library_bytes"] is None
    assert torch_peak["peak_bytes"] >= Size(64, 32000).nbytes("float32")  # its output is resident too


def test_run_table_and_file_survive_json_round_trip(tmp_path, short_runs, cli):
    out = tmp_path / "r.json"
    status, text, _ = cli("run", "--backend", "naive", "--sizes", "1x64", "--mode", "cold", "--op", "softmax", "--quick", "--no-check", "--no-isolate", "--out", out)
    assert status == 0
    document = json.loads(out.read_text())
    (record,) = document["records"]
    assert document["schema"] == 1 and record["mode"] == "cold" and record["median_s"] > 0
    # The file's figures are the table's: what was printed can be recomputed from the file.
    row = next(line for line in text.splitlines() if line.startswith("naive"))
    assert format_seconds(record["median_s"], "-") in row and f"{record['gbps']:.2f}" in row


# ------------------------------------------------------- timings that cannot be fooled

CHEATS = plugin("timing_cheats")


def test_backends_that_cheat_while_timed_get_suspect_records_and_no_win(cli, tmp_path, short_runs):
    out = tmp_path / "r.json"
    status, text, _ = cli("run", "--plugin", CHEATS, "--backend", "cache-by-id", "--backend", "mutates-input",
                          "--backend", "right-once", "--backend", "max-shift", "--sizes", "8x4096", "--op", "softmax",
                          "--quick", "--no-check", "--out", out)
    assert status == 0
    records = {(r["backend"], r["mode"]): r for r in load_results(out)["records"]}
    reasons = {"cache-by-id": "outputs are wrong", "mutates-input": "mutates its input", "right-once": "outputs are wrong"}
    for (backend, mode), r in records.items():
        if backend == "max-shift":
            assert r["suspect"] is None and r["median_s"] > 0
            continue
        assert reasons[backend] in r["suspect"], r
    rows = [line for line in text.splitlines() if line.split()[:1] and line.split()[0] in reasons]
    assert len(rows) == 6 and all(" suspect " in line and "SUSPECT" in line for line in rows)
    # No ratio for a suspect timing, so it can never read as a win over the baseline.
    assert speed.relative_to_baseline(list(records.values())) == {
        i: (1.0 if r["backend"] == "max-shift" else None) for i, r in enumerate(records.values())}


def test_a_timing_faster_than_the_fastest_copy_is_flagged_and_a_plausible_one_is_not():
    base = {"kind": "timing", "device": "cpu", "dtype": "float32", "rows": 8, "vocab": 4096, "mode": "warm",
            "op": "softmax", "pass": "fwd", "median_s": 1e-5}
    records = [
        {**base, "backend": "copy-fast", "gbps": 10.0, "copy_gbps": 40.0},
        {**base, "backend": "honest", "gbps": 45.0, "copy_gbps": 20.0},  # within 1.25x of the fastest copy
        {**base, "backend": "impossible", "gbps": 51.0, "copy_gbps": 20.0},  # beyond it
        {**base, "backend": "loss", "op": "cross_entropy", "gbps": 90.0, "copy_gbps": 20.0},  # read-only: 2.5x
    ]
    planning.finalize(records)
    suspect = {r["backend"]: r["suspect"] for r in records}
    assert suspect["copy-fast"] is None and suspect["honest"] is None and suspect["loss"] is None
    assert "faster than a copy" in suspect["impossible"]
    assert all(r["device_copy_gbps"] == 40.0 for r in records)


def test_inputs_change_between_samples_and_stay_in_place():
    prepared = timing.prepare("max-shift", "cpu", "float32", Size(4, 512))
    x = prepared.inputs.arrays[0]["x"]
    first = x.copy()
    prepared.inputs.refill(0)
    assert prepared.inputs.arrays[0]["x"] is x  # the same buffer: warm stays warm
    assert not np.array_equal(first, x)  # new values: nothing keyed on the old ones can answer
    prepared.inputs.refill(1)
    assert prepared.verify(prepared.call(), sample=1) is None  # the honest output passes the check
    assert "wrong" in prepared.verify(np.zeros_like(x), sample=1)  # and a stale or wrong one does not
