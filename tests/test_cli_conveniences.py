"""The conveniences peers have (issue 24): --version, report --format csv, -b/--bench and --skip."""

from __future__ import annotations

import csv
import importlib.metadata
import io

import pytest

from softmax_bench.cli import build_parser, main
from softmax_bench.commands import options
from softmax_bench.errors import UsageError
from softmax_bench.core.selection import filter_names, load_registry

from helpers import ROOT

NAMES = ["max-shift", "numba-3pass", "numba-2pass", "numba-2pass-reload", "numba-naive", "torch-fused"]


def test_version_prints_the_installed_distribution_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"softmax-bench {importlib.metadata.version('softmax-bench')}"


# ------------------------------------------------------------ selection

def test_bench_regex_with_skip_selects_the_numba_kernels_but_the_negative_control():
    assert filter_names(NAMES, bench=["numba-.*"], skip=["numba-naive"]) == \
        ["numba-3pass", "numba-2pass", "numba-2pass-reload"]


def test_without_skip_the_negative_control_is_in():  # the control of the test above
    assert "numba-naive" in filter_names(NAMES, bench=["numba-.*"])


def test_skip_matches_whole_names_and_alone_starts_from_every_backend():
    assert filter_names(NAMES, skip=["numba-2pass"]) == [n for n in NAMES if n != "numba-2pass"]


def test_backend_names_and_bench_regexes_add_up():
    assert filter_names(NAMES, named=["torch-fused"], bench=["^max"]) == ["torch-fused", "max-shift"]


@pytest.mark.parametrize("kwargs, message", [
    ({"bench": ["("]}, "-b/--bench '(': not a regular expression"),
    ({"skip": ["[a-"]}, "--skip '[a-': not a regular expression"),
    ({"bench": ["nosuch"]}, "-b nosuch: selects no backend; valid: max-shift"),
    ({"bench": ["numba"], "skip": ["numba.*"]}, "selects no backend"),
    ({"named": ["nosuch"], "bench": ["numba"]}, "unknown backend 'nosuch'"),
])
def test_bad_selections_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
        filter_names(NAMES, **kwargs)


def test_run_parses_b_and_skip_into_its_selection():
    args = build_parser().parse_args(["run", "-b", "numba-.*", "--skip", "numba-naive", "--device", "cpu"])
    chosen = options.selection(args, load_registry(()))
    names = {t.backend for t in chosen.targets} | {name for name, _, _ in chosen.skipped}
    assert names == {"numba-3pass", "numba-3pass-reload", "numba-2pass", "numba-2pass-reload"}


@pytest.mark.parametrize("argv", [["check", "-b", "("], ["run", "--skip", "("], ["check", "-b", "nosuch"]])
def test_a_bad_regex_or_empty_selection_is_one_line_and_exit_2(cli, argv):
    status, out, err = cli(*argv)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ------------------------------------------------------------ csv

def test_report_csv_has_one_row_per_record_readable_as_csv(cli, tmp_path):
    source = ROOT / "results" / "timing-cpu-default-c.json"
    status, out, _ = cli("report", source, "--format", "csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    import json

    records = json.loads(source.read_text())["records"]
    assert len(rows) == len(records)
    assert list(rows[0])[:4] == ["machine", "kind", "backend", "device"]
    timed = [r for r in rows if r["kind"] == "timing" and r["median_s"]]
    assert timed and all(float(r["median_s"]) > 0 for r in timed)
    status, out, _ = cli("report", source, "--format", "csv", "--out", tmp_path)
    assert status == 0 and (tmp_path / "report.csv").read_text().count("\n") == len(records) + 1


def test_report_csv_refuses_readme(cli, tmp_path):
    status, _, err = cli("report", ROOT / "results" / "check-cpu.json", "--format", "csv", "--out", tmp_path,
                         "--readme", tmp_path / "R.md")
    assert status == 2 and "--format csv" in err
