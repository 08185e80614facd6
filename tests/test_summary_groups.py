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
