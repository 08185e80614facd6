"""The "Fastest" summary names who a winner beat when some backends ran apart (issue 24).

results/two-pass-study/threads2/report.md said "threads 1: max-shift fastest at
every size" while the numba kernels, timed with 2 threads, never faced it.
"""

from __future__ import annotations

from softmax_bench.report.outline import fastest
from softmax_bench.report.runs import load_runs, merge

from helpers import ROOT


def _fastest_lines(name: str) -> list[str]:
    records = merge(load_runs([ROOT / name]), warn=lambda message: None)
    return fastest(records).lines


def test_a_winner_among_a_thread_group_says_whom_it_beat_and_who_ran_apart():
    (threads1,) = [line for line in _fastest_lines("results/two-pass-study-threads2-a.json") if line.startswith("threads 1:")]
    assert "among max-shift and online only" in threads1
    assert "numba-2pass" in threads1 and "another thread count" in threads1


def test_one_group_of_every_backend_has_no_such_note():  # the control: every backend, one thread count
    lines = _fastest_lines("tests/data/results-small.json")
    assert lines and not any("among" in line for line in lines)


# ---------------------------------------------------------------- the headline's numbers (issue 24)

from softmax_bench.report import headline  # noqa: E402


def _records(*names: str) -> list[dict]:
    return merge(load_runs([ROOT / n for n in names]), warn=lambda message: None)


def test_the_headline_gives_the_winner_with_its_gbps_share_of_copy_and_speedup_over_torch():
    records = _records("results/timing-cpu-default-c.json")
    at = {r["backend"]: r for r in records if r["kind"] == "timing" and r.get("mode") == "cold"
          and (r["rows"], r["vocab"]) == (64, 256000)}
    winner = min((r for r in at.values() if not r.get("suspect")), key=lambda r: r["median_s"])
    speedup = at["torch-fused"]["median_s"] / winner["median_s"]
    (line,) = [line for line in headline.fastest_lines(records) if line.startswith("cold, 64×256000:")]
    assert line.endswith(f"64×256000: {winner['backend']} (2 threads) {winner['gbps']:.1f} GB/s, "
                         f"{100 * winner['device_copy_fraction']:.0f}% of copy, {speedup:.2f}× torch-fused.")
    table = headline.fastest_table(records)
    assert table.headers[-4:] == ["fastest", "GB/s", "% of copy", "vs torch-fused"]
    assert ["64×256000", f"{winner['backend']} (2 threads)"] in [row[table.group:table.group + 2] for row in table.rows]


def test_without_torch_there_is_no_speedup_column_or_words():  # the control: the same file without torch-fused
    records = [r for r in _records("results/timing-cpu-default-c.json") if r["backend"] != "torch-fused"]
    assert not any("torch-fused" in line for line in headline.fastest_lines(records))
    assert "vs torch-fused" not in headline.fastest_table(records).headers


def test_the_worst_accuracy_finding_names_jax_bfloat16():
    """The issue: 'JAX bfloat16 at 73 ULP is not in the summary'."""
    lines = headline.worst_accuracy_lines(_records("results/check-cpu.json"))
    (bf16,) = [line for line in lines if line.startswith("bfloat16")]
    assert "worst that passed: jax 73.4 ULP (randn_scale_30 on cpu)" in bf16
    assert [line.split(",")[0] for line in lines] == ["float64", "float32", "float16", "bfloat16"]
    # A failed check's ULP can be small (a row of zeros): the line says how it failed, and how many did.
    (f16,) = [line for line in lines if line.startswith("float16")]
    assert "failed, the largest error jax 0.250 ULP (uniform_65536 on cpu, zeros)" in f16


def test_the_memory_winner_is_named_where_two_backends_were_measured():
    from golden import OPS

    lines = headline.memory_lines(merge(load_runs([OPS]), warn=lambda message: None))
    # fused-ce failed at 256000, so the largest size where two backends compare is 128256.
    assert lines == ["bfloat16, 8×128256: fused-ce ≥ 2.0 MiB (most: torch-fused ≥ 11.7 MiB)."]
