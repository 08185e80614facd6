"""softmax-bench compare: ratios, the threshold, exit codes, unmatched benchmarks."""

from __future__ import annotations

import pytest

from softmax_bench.compare import compare

from golden import GPU, SMALL, check_golden, edited, timing


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
                   "(timing records are matched on backend, device, dtype, rows, vocab, op, mode)\n")


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

