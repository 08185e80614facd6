"""softmax-bench compare: ratios, the threshold, exit codes, unmatched benchmarks."""

from __future__ import annotations

import pytest

from softmax_bench.report.comparison import compare

from golden import GPU, OPS, SMALL, check_golden, edited, timing


def _scaled(tmp_path, name, factor, backend="lse", **fields):
    """SMALL with one benchmark's median multiplied by ``factor``."""
    return edited(tmp_path, name, lambda d: timing(d, backend).update(
        median_s=timing(d, backend)["median_s"] * factor, **fields))


def test_identical_files_exit_0(cli):
    status, out, err = cli("compare", SMALL, SMALL)
    assert (status, err) == (0, "")
    assert out.splitlines()[-1].startswith("0 slower, 0 faster, 46 within the threshold")


def test_a_planted_2x_slowdown_exits_1_and_comes_first(tmp_path, cli):
    status, out, _ = cli("compare", SMALL, _scaled(tmp_path, "b.json", 2.0))
    assert status == 1
    first = next(line for line in out.splitlines() if line.startswith("| lse"))
    assert [cell.strip() for cell in first.split("|")[1:-1]] == [
        "lse", "float32", "warm", "16×32768", "728 µs", "1.46 ms", "2.00", "slower"]
    assert out.splitlines()[-1].startswith("1 slower, 0 faster, 45 within")


def test_a_2x_speedup_exits_0(tmp_path, cli):
    status, out, _ = cli("compare", SMALL, _scaled(tmp_path, "b.json", 0.5))
    assert status == 0
    assert "|  0.50 | faster" in out
    assert out.splitlines()[-1].startswith("0 slower, 1 faster")


@pytest.mark.parametrize("threshold, status", [("0.10", 0), ("0.04", 1), ("0", 1)])
def test_the_threshold_decides_what_counts(tmp_path, cli, threshold, status):
    assert cli("compare", SMALL, _scaled(tmp_path, "b.json", 1.05), "--threshold", threshold)[0] == status


def test_the_threshold_is_symmetric():
    a = [{"kind": "timing", "backend": "x", "device": "cpu", "dtype": "float32", "rows": 1, "vocab": 1,
          "op": "softmax", "mode": "warm", "median_s": 1.0}]
    b_slow = [{**a[0], "median_s": 1.15}]
    b_fast = [{**a[0], "median_s": 1 / 1.15}]
    assert compare(a, b_slow, 0.10).changes[0].verdict == "slower"
    assert compare(a, b_fast, 0.10).changes[0].verdict == "faster"
    assert compare(a, [{**a[0], "median_s": 0.92}], 0.10).changes[0].verdict == ""  # above 1/1.1


def test_a_benchmark_that_now_fails_counts_as_slower(tmp_path, cli):
    broken = edited(tmp_path, "b.json", lambda d: timing(d, "lse").update(median_s=None, failure="crashed"))
    status, out, _ = cli("compare", SMALL, broken)
    assert status == 1
    assert "| failed in B" in out and "1 failed in B" in out.splitlines()[-1]


def test_benchmarks_in_one_file_only_are_listed(tmp_path, cli):
    def drop(document):
        document["records"].remove(timing(document, "online"))

    status, out, _ = cli("compare", SMALL, edited(tmp_path, "b.json", drop))
    assert status == 0
    only = out.split("**Only in A.**")[1]
    assert "| online    | float32 | warm   | 16×32768 |   828 µs |" in only
    assert "**Only in B.**" not in out
    assert out.splitlines()[-1].endswith("1 only in A, 0 only in B")


def test_different_machines_are_named(cli):
    status, out, _ = cli("compare", SMALL, GPU)
    assert status == 0
    assert "the ratios compare machines as well as code" in out


def test_files_with_no_benchmark_in_common_are_exit_2(tmp_path, cli):
    renamed = edited(tmp_path, "b.json", lambda d: [r.update(backend="other") for r in d["records"]])
    status, out, err = cli("compare", SMALL, renamed)
    assert (status, out) == (2, "")
    assert err == (f"softmax-bench: error: {SMALL} and {renamed} share no benchmark "
                   "(timing records are matched on backend, device, dtype, rows, vocab, op, pass, options, mode, world_size)\n")


def test_a_bad_file_is_exit_2(tmp_path, cli):
    newer = edited(tmp_path, "b.json", lambda d: d.update(schema=99))
    status, _, err = cli("compare", SMALL, newer)
    assert status == 2 and err.count("\n") == 1 and "schema 99 is newer" in err


def test_bad_usage_is_exit_2(cli):
    status, _, err = cli("compare", SMALL)
    assert status == 2 and err.count("\n") == 1


def test_github_output_matches_its_golden_file(tmp_path, cli):
    def plant(document):
        timing(document, "lse")["median_s"] *= 2  # slower
        timing(document, "naive", vocab=1024)["median_s"] /= 2  # faster
        document["records"].remove(timing(document, "online", dtype="float64", vocab=262144))

    status, out, _ = cli("compare", SMALL, edited(tmp_path, "b.json", plant), "--format", "github")
    assert status == 1
    check_golden("compare-github.md", out)



# ---------------------------------------------------------------- the newer fields: pass, suspect


def _op(document, backend, op, pass_, vocab=32000):
    found = [r for r in document["records"] if r["kind"] == "timing" and r["backend"] == backend
             and r["op"] == op and r["pass"] == pass_ and r["vocab"] == vocab]
    assert len(found) == 1, found
    return found[0]


def test_an_old_file_matches_a_new_one_on_softmax_forward(tmp_path, cli):
    def new(document):  # the same benchmarks as a newer engine writes them, and a backward pass
        for r in document["records"]:
            if r["kind"] == "timing":
                r.update({"pass": "fwd", "threads": 2})
        document["records"].append({**timing(document, "lse"), "pass": "bwd"})

    status, out, _ = cli("compare", SMALL, edited(tmp_path, "new.json", new))
    assert status == 0
    assert out.splitlines()[-1].startswith("0 slower, 0 faster, 46 within the threshold")
    assert out.splitlines()[-1].endswith("0 only in A, 1 only in B"), "a backward pass is not the forward"


def test_a_forward_that_includes_the_backward_is_not_a_plain_forward():
    a = [{"kind": "timing", "backend": "x", "device": "cuda", "dtype": "float32", "rows": 1, "vocab": 1,
          "op": "cross_entropy", "pass": "fwd", "mode": "warm", "median_s": 1.0}]
    comparison = compare(a, [{**a[0], "includes_bwd": True}])
    assert (len(comparison.changes), len(comparison.only_a), len(comparison.only_b)) == (0, 1, 1)


def test_a_suspect_timing_in_b_is_never_a_win_and_counts_as_a_regression(tmp_path, cli):
    faster_but_suspect = edited(tmp_path, "b.json", lambda d: _op(d, "triton", "softmax", "fwd").update(
        median_s=_op(d, "triton", "softmax", "fwd")["median_s"] / 2, suspect="below the timer's resolution"),
        source=OPS)
    status, out, _ = cli("compare", OPS, faster_but_suspect)
    assert status == 1
    row = next(line for line in out.splitlines() if line.startswith("| triton") and "8×32000" in line)
    assert [cell.strip() for cell in row.split("|")[-3:-1]] == ["0.50", "suspect in B[1]"], row
    assert "1. B: below the timer's resolution" in out
    last = out.splitlines()[-1]
    assert last.startswith("0 slower, 0 faster,") and ", 1 suspect in B, 1 suspect in A or both," in last


def test_a_suspect_timing_in_a_only_is_neither_a_win_nor_a_regression(tmp_path, cli):
    trusted_now = edited(tmp_path, "b.json", lambda d: _op(d, "cupy-online", "softmax", "fwd").update(suspect=None),
                         source=OPS)
    status, out, _ = cli("compare", OPS, trusted_now)
    assert status == 0
    row = next(line for line in out.splitlines() if line.startswith("| cupy-online") and "8×32000" in line)
    assert row.split("|")[-2].strip() == "suspect in A[1]" and "1. A: 1.60x faster than the fastest copy" in out
