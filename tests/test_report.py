"""softmax-bench report: golden output per format, merged machines, the newer timing fields, escaping,
bad files, the written report. Plots: test_plots.py; the page in a browser: test_page_browser.py."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from softmax_bench.report import documents, plots
from softmax_bench.report.documents import README_BEGIN, README_END
from softmax_bench.core.formatting import format_percent, format_relative, format_seconds, format_ulp
from softmax_bench.report.outline import build_report
from softmax_bench.report.render import render_table
from softmax_bench.report.runs import complete_timings, load_runs, merge
from softmax_bench.report.tables import (accuracy_table, bandwidth_table, overflow_table, peak_table, sources_table,
                                  time_table)
from softmax_bench.core.results import ResultsError, load

from helpers import ROOT, run_console
from golden import GPU, OPS, SMALL, check_golden, edited, timing


@pytest.fixture(autouse=True)
def fixed_report_date(monkeypatch):
    """The report's "Made on" date from SOURCE_DATE_EPOCH, so the golden files do not age."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796428800")  # 2026-12-05

# ---------------------------------------------------------------- golden output


@pytest.mark.parametrize("fmt, name", [
    ("markdown", "report-markdown.md"), ("github", "report-github.md"),
    ("html", "report-html.html"), ("latex", "report-latex.tex"),
])
def test_each_format_matches_its_golden_file(cli, fmt, name):
    status, out, err = cli("report", SMALL, "--format", fmt)
    assert (status, err) == (0, "")
    check_golden(name, out)


def test_the_newer_timing_fields_match_their_golden_file(cli):
    status, out, err = cli("report", OPS, "--format", "github")
    assert (status, err) == (0, "")
    check_golden("report-ops-github.md", out)


def test_markdown_tables_keep_numbers_right_aligned(cli):
    status, out, _ = cli("report", SMALL)
    speed = out.split("### Time per call")[1].split("### Bandwidth")[0]
    separator = next(line for line in speed.splitlines() if line.startswith("|:"))
    cells = separator.split("|")[1:-1]
    # dtype, mode, backend left; the three size columns right.
    assert [c.startswith(":") and not c.endswith(":") for c in cells] == [True] * 3 + [False] * 3
    assert [c.endswith(":") for c in cells] == [False] * 3 + [True] * 3


@pytest.mark.parametrize("seconds, text", [
    (1.234e-3, "1.23 ms"), (4.06e-5, "40.6 µs"), (5e-7, "500 ns"), (12.0, "12.0 s"),
    (9.9996e-4, "1.00 ms"),  # rounds up into the next unit, not "1000 µs"
    (None, "—"),
])
def test_times_are_in_human_units(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("format_, values, texts", [
    # One format per column: ULP plain decimal (never scientific, large counts exact) ...
    (format_ulp, [0.493, 64.3, 507, 8388608.0, 99.96, None], ["0.493", "64.3", "507", "8388608", "100", "—"]),
    # ... relative errors always scientific, 1 included (the old table printed a bare "1") ...
    (format_relative, [4.78e-3, 1.0, 0.0], ["4.78e-03", "1.00e+00", "0"]),
    # ... shares as percentages, one decimal only below 1%.
    (format_percent, [0.624, 0.0041, 0.0], ["62%", "0.4%", "0%"]),
])
def test_each_kind_of_number_has_one_format(format_, values, texts):
    assert [format_(v) for v in values] == texts


def _rec(backend: str, median: float, **extra) -> dict:
    return {"kind": "timing", "backend": backend, "device": "cpu", "dtype": "float32", "rows": 1, "vocab": 1024,
            "op": "softmax", "mode": "warm", "median_s": median, "iqr_s": median / 50, "gbps": 1.0,
            "copy_gbps": 2.0, "peak_bytes": 4096, **extra}


def test_fastest_is_bold_within_its_group_only():
    table = time_table(complete_timings([_rec("a", 2e-6), _rec("b", 1e-6), _rec("c", 5e-6, dtype="float64")]))
    cells = {row[1]: row[-1] for row in table.rows}  # dtype varies, so it is column 0
    assert cells["b"].strong and not cells["a"].strong
    assert not cells["c"].strong, "alone in its dtype: nothing to be fastest against"
    assert cells["b"] == "1.00 µs (IQR 2%)"
    assert "| **1.00 µs** (IQR 2%) |" in render_table(table, "markdown")
    assert "<strong>1.00 µs</strong>" in render_table(table, "html")
    assert "\\textbf{1.00 µs}" in render_table(table, "latex")


def test_a_suspect_timing_is_flagged_and_never_fastest():
    records = complete_timings([_rec("a", 2e-6), _rec("b", 1e-6, suspect="faster than the fastest copy by 3.0x")])
    for table in (time_table(records), bandwidth_table(records), peak_table(records)):
        cells = {row[0]: row[-1] for row in table.rows}
        assert not cells["b"].strong and cells["b"].flag == "suspect" and cells["b"].kind == "suspect"
        assert cells["a"].strong or table.title == "Peak memory", "the fastest trusted time"
        assert table.notes == ["suspect: faster than the fastest copy by 3.0x"] and cells["b"].endswith("suspect[1]")
        assert 'class="num k-suspect"' in render_table(table, "html")
    finding = {f.label: f for f in build_report([], records).findings}["Flagged"]
    assert "faster than the fastest copy by 3.0x" in finding.lines[0]


# ---------------------------------------------------------------- many machines


def test_two_machines_merge_into_one_table_keyed_by_machine(cli):
    status, out, err = cli("report", SMALL, GPU, "--format", "github")
    assert (status, err) == (0, "")
    runs = load_runs([SMALL, GPU])
    a, b = (run.machine for run in runs)
    assert b.endswith("+ Fixture GPU (hand-made)"), "the GPU model is part of the machine"
    table = time_table(merge(runs))
    assert table.headers[:2] == ["machine", "device"] and table.group == 4
    rows = {(row[0], row[1], row[2], row[3], row[4]): row[5:] for row in table.rows}
    # Each machine's fastest is judged against its own rows only.
    assert rows[(a, "cpu", "float32", "warm", "naive")][0].strong
    assert rows[(b, "cpu", "float32", "warm", "torch-fused")][0].strong
    assert not rows[(b, "cpu", "float32", "warm", "max-shift")][0].strong
    assert not rows[(b, "cuda", "float32", "warm", "torch-fused")][0].strong
    for machine in (a, b):
        assert machine in out


def test_a_rerun_on_the_same_machine_replaces_the_earlier_file_with_a_warning_shown_in_the_report(tmp_path, cli):
    rerun = edited(tmp_path, "rerun.json", lambda d: timing(d, "lse").update(median_s=1.0))
    status, out, err = cli("report", SMALL, rerun)
    assert status == 0
    assert err.count("\n") == 1 and err.startswith("warning: ") and "rerun.json repeats 131 record(s)" in err
    assert " 1.00 s (IQR 0.0%) |" in out.split("### Time per call")[1]
    summary = out.split("## Summary")[1].split("## Speed")[0]
    assert f"  - Warning: {err.removeprefix('warning: ').strip()}" in summary, "the reader of the report sees it too"
    status, page, _ = cli("report", SMALL, rerun, "--format", "html")
    assert '<li class="warning">Warning: ' in page and "rerun.json repeats 131 record(s)" in page


# ---------------------------------------------------------------- the newer timing fields, and files without them


def test_files_without_the_newer_fields_read_as_softmax_forward_against_the_fastest_copy_in_the_file():
    document = load(SMALL)
    completed = [r for r in complete_timings(document["records"]) if r["kind"] == "timing"]
    assert {(r["op"], r["pass"]) for r in completed} == {("softmax", "fwd")}
    r = next(r for r in completed if r["backend"] == "naive" and r["dtype"] == "float32" and r["mode"] == "warm"
             and r["vocab"] == 32768)
    same = [x["copy_gbps"] for x in document["records"] if x["kind"] == "timing" and x.get("copy_gbps") is not None
            and all(x[k] == r[k] for k in ("device", "dtype", "rows", "vocab", "mode"))]
    assert r["device_copy_gbps"] == max(same) and r["device_copy_fraction"] == pytest.approx(r["gbps"] / max(same))
    # A file that records the device copy keeps its own figure.
    kept = complete_timings([_rec("a", 1e-6, device_copy_gbps=9.0, device_copy_fraction=0.5)])[0]
    assert (kept["device_copy_gbps"], kept["device_copy_fraction"]) == (9.0, 0.5)


def test_the_speed_tables_key_on_op_and_pass_and_show_what_was_timed():
    records = merge(load_runs([OPS]), warn=pytest.fail)  # a backward pass is no rerun of the forward
    assert len(records) == len(load(OPS)["records"])
    table = time_table(records)
    assert table.headers[:5] == ["op", "pass", "world size", "backend", "route"] and table.group == 3
    labels = [tuple(row[:4]) for row in table.rows]
    assert ("softmax", "bwd", "1", "torch-fused") in labels and ("cross_entropy", "full", "1", "fused-ce") in labels
    assert ("cross_entropy", "fwd (incl. bwd)", "1", "fused-ce") in labels, "a fused forward says it includes the backward"
    assert ("softmax", "fwd", "2", "vocab-parallel") in labels
    rows = {tuple(row[:4]): row for row in table.rows}
    assert rows[("softmax", "bwd", "1", "torch-fused")][4] == "autodiff"
    assert rows[("softmax", "bwd", "1", "triton")][5].strong, "fastest among the backward passes"
    assert rows[("cross_entropy", "full", "1", "fused-ce")][7] == "failed (raised)[4]"
    # GPU records show no host threads (the fixture's say 16: files from before recorded the host's).
    assert "threads" not in table.caption and "world size 2: 2 collectives moving 128 B per call" in " ".join(table.notes)
    bandwidth = bandwidth_table(records)
    assert "softmax bwd: read y and dy, write dx" in bandwidth.caption
    peak = {tuple(row[:4]): row for row in peak_table(records).rows}
    assert peak[("cross_entropy", "full", "1", "torch-fused")][-1] == "≥ 23.4 MiB (allocator 23.4 MiB)"
    assert peak_table(complete_timings([_rec("a", 1e-6, peak_bytes=None)])) is None, "no peak figures, no table"


# ---------------------------------------------------------------- accuracy, sources


def _check(backend: str, passed, dtype="float32", case="randn_scale_3", **extra) -> dict:
    return {"kind": "check", "backend": backend, "device": "cpu", "dtype": dtype, "rows": 8, "vocab": 1000,
            "case": case, "op": "softmax", "passed": passed, "max_ulp": 2.0, "max_rel": 1e-7, **extra}


def test_a_flushed_subnormal_relative_error_is_explained_and_a_constant_column_folds():
    records = [_check("a", True, max_rel=1.0, subnormal="flushed"), _check("a", None, case="pos_inf"),
               _check("b", True), _check("b", None, case="pos_inf")]
    table = accuracy_table(records)
    assert "recorded" not in table.headers and "In every row: recorded 1." in table.caption
    rel = {row[0]: row[3] for row in table.rows}
    assert rel["a"] == "1.00e+00 FTZ[1]" and rel["b"] == "1.00e-07"
    assert "flushed to zero (FTZ" in table.notes[0] and "less than one ULP" in table.notes[0]
    varying = accuracy_table(records + [_check("b", None, case="all_neg_inf")])
    assert "recorded" in varying.headers, "kept where it differs between rows"


def test_the_overflow_matrix_is_coloured_by_verdict_with_the_text_kept():
    table = overflow_table([_special("a", "nan_entry", "nan-row", passed=True), _special("a", "pos_inf", "nan-row"),
                            _special("a", "overflow_threshold", "some-nan", passed=False)])
    row = table.rows[0]
    assert [c.kind for c in row[1:]] == ["failed", "recorded", "correct"]
    assert row[1:] == ["some-nan", "nan-row", "nan-row"]
    assert '<td class="k-failed" title="failed">some-nan</td>' in render_table(table, "html")


def test_sources_show_the_dirty_flag_versions_and_a_link_to_each_file(tmp_path):
    runs = load_runs([OPS, SMALL])
    table = sources_table(runs, base=tmp_path)
    rows = {row[0]: row[1:] for row in table.rows}
    assert rows["commit"][0] == "2222222222fi+dirty[1]" and rows["commit"][1] == "0000000000fi"
    assert rows["torch"] == ["2.13.0", "—"] and rows["cores"] == ["16", "2"] and rows["memory"] == ["128.0 GiB", "8.0 GiB"]
    assert rows["GPU"][0] == "Fixture GPU H (hand-made) (driver 0.0, 80 GiB)" and rows["GPU"][1] == "none"
    href = table.headers[1].href
    assert (tmp_path / href).resolve() == OPS.resolve()


# ---------------------------------------------------------------- escaping


def _hostile(tmp_path: Path) -> Path:
    def edit(document):
        for record in document["records"]:
            if record["backend"] == "lse":
                record["backend"] = "<script>alert(1)</script>"
    return edited(tmp_path, "hostile.json", edit)


def _inert(html_text: str) -> bool:
    return "<script" not in html_text.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text


def _page_without_its_own_script(page: str) -> str:
    return re.sub(r"<script>.*?</script>", "", page, flags=re.S)


def test_html_escapes_names_from_the_file(tmp_path, cli):
    status, out, _ = cli("report", _hostile(tmp_path), "--format", "html")
    assert status == 0
    assert out.count("<script>") == 1, "the page's own sorting script, nothing else"
    assert _inert(_page_without_its_own_script(out))


def test_html_escaping_check_catches_unescaped_names(tmp_path, cli, monkeypatch):
    """Negative control: with escaping switched off the same check fails."""
    monkeypatch.setattr(html, "escape", lambda text, quote=True: text)
    status, out, _ = cli("report", _hostile(tmp_path), "--format", "html")
    assert status == 0
    assert not _inert(_page_without_its_own_script(out))
    assert "<th scope=\"row\"><script>alert(1)</script>" in out


@pytest.mark.parametrize("fmt", ["markdown", "github"])
def test_markdown_passes_no_raw_html_or_cell_breaks(tmp_path, cli, fmt):
    hostile = edited(tmp_path, "pipe.json", lambda d: timing(d, "naive").update(backend="<b>x</b>|y"),
                     source=_hostile(tmp_path))
    status, out, _ = cli("report", hostile, "--format", fmt)
    assert status == 0
    assert "<script>" not in out and "<b>" not in out
    assert "&lt;b&gt;x&lt;/b&gt;\\|y" in out


def test_latex_escapes_specials(tmp_path, cli):
    path = edited(tmp_path, "tex.json", lambda d: timing(d, "naive").update(backend="a_b&c%d#e"))
    status, out, _ = cli("report", path, "--format", "latex")
    assert status == 0
    assert r"a\_b\&c\%d\#e" in out
    assert r"all\_neg\_inf" in out


# ---------------------------------------------------------------- overflow table


def _special(backend, case, behaviour, dtype="float32", **extra):
    return {"kind": "check", "backend": backend, "device": "cpu", "dtype": dtype, "rows": 1, "vocab": 4,
            "case": case, "op": "softmax", "passed": None, "behaviour": behaviour, **extra}


def test_overflow_table_has_reference_rows_after_backends_and_extra_special_cases():
    table = overflow_table([
        _special("ref.torch", "pos_inf", "nan-row", reference=True),
        _special("mine", "pos_inf", "one-hot"),
        _special("mine", "my_case", "zeros", special=True),
        _special("mine", "random_normal_s3", "correct"),  # not special: not in this table
        _special("mine", "pos_inf", "correct", dtype="float64"),  # float32 only by default
    ])
    assert table.headers == ["backend", "pos_inf", "my_case"]
    assert table.rows == [["mine", "one-hot", "zeros"], ["ref.torch (reference)", "nan-row", "—"]]


def test_overflow_table_shows_every_dtype_when_float32_has_none():
    table = overflow_table([_special("mine", "pos_inf", "nan-row", dtype="float64"),
                            _special("mine", "pos_inf", "nan-row", dtype="float16")])
    assert "every dtype" in table.caption
    assert table.headers == ["dtype", "backend", "pos_inf"]
    assert [row[0] for row in table.rows] == ["float64", "float16"]


def test_fixture_overflow_table_shows_the_three_reference_conventions(cli):
    _, out, _ = cli("report", SMALL)
    overflow = out.split("### Overflow behaviour")[1]
    for ref in ("ref.torch", "ref.jax", "ref.scipy"):
        assert f"| {ref} (reference)" in overflow
    assert "| expected " in overflow


# ---------------------------------------------------------------- bad files


def _truncated(tmp_path):
    path = tmp_path / "truncated.json"
    path.write_text(SMALL.read_text()[:5000])
    return path


def _nan_token(tmp_path):
    """json.loads reads NaN; the schema stores non-finite numbers as null."""
    path = tmp_path / "nan.json"
    path.write_text(re.sub(r'"gbps": [0-9.]+', '"gbps": NaN', SMALL.read_text(), count=1))
    return path


BAD = {
    "truncated": (_truncated, "truncated"),
    "newer schema": (lambda t: edited(t, "newer.json", lambda d: d.update(schema=2)), "schema 2 is newer"),
    "median is text": (lambda t: edited(t, "text.json", lambda d: timing(d, "lse").update(median_s="fast")),
                       "field 'median_s' is 'fast'"),
    "negative bandwidth": (lambda t: edited(t, "neg.json", lambda d: timing(d, "lse").update(gbps=-3)),
                           "field 'gbps' is -3, expected a number >= 0"),
    "behaviour a number": (lambda t: edited(t, "beh.json", lambda d: d["records"][0].update(behaviour=7)),
                           "field 'behaviour' is 7"),
    "boolean as seconds": (lambda t: edited(t, "bool.json", lambda d: timing(d, "lse").update(median_s=True)),
                           "field 'median_s' is True"),
    "NaN token": (_nan_token, "non-finite numbers are stored as null"),
    "records not a list": (lambda t: edited(t, "obj.json", lambda d: d.update(records={})), "'records' must be a list"),
    "missing file": (lambda t: t / "absent.json", "no such file"),
    "directory": (lambda t: t, "is a directory"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_is_one_line_naming_it_and_exit_2(tmp_path, cli, case):
    make, expected = BAD[case]
    path = make(tmp_path)
    status, out, err = cli("report", SMALL, path)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"softmax-bench: error: {path}")
    assert expected in err


def test_a_bad_file_gets_no_traceback_from_the_console_script(tmp_path):
    proc = run_console("report", _truncated(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "truncated" in proc.stderr and "Traceback" not in proc.stderr


def test_skip_bad_warns_once_per_bad_file_and_reports_the_rest(tmp_path, cli):
    truncated, missing = _truncated(tmp_path), tmp_path / "absent.json"
    status, out, err = cli("report", truncated, SMALL, missing, "--skip-bad")
    assert status == 0
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: ") and line.endswith("; skipped") for line in lines)
    assert str(truncated) in lines[0] and str(missing) in lines[1]
    assert "[results-small.json](" in out and "[truncated.json](" not in out, "a source, and not a source"
    assert f"  - Warning: {lines[0].removeprefix('warning: ')}" in out, "the report says what it left out"


def test_skip_bad_with_nothing_left_is_exit_2(tmp_path, cli):
    status, _, err = cli("report", _truncated(tmp_path), "--skip-bad")
    assert status == 2
    assert err.splitlines()[-1] == "softmax-bench: error: none of the 1 results file(s) could be read"


def test_load_rejects_what_hand_edits_produce(tmp_path):
    path = edited(tmp_path, "ulp.json", lambda d: d["records"][0].update(max_ulp=False))
    with pytest.raises(ResultsError, match="record 0 field 'max_ulp' is False, expected an integer or a number or null"):
        load(path)
    assert load(SMALL)["schema"] == 1  # the fixture itself is valid


# ---------------------------------------------------------------- files and plots


def test_out_writes_report_and_plots_linked_from_it(tmp_path, cli):
    out_dir = tmp_path / "published"
    out_dir.mkdir()
    (out_dir / "bandwidth-stale.png").write_bytes(b"old")  # from an earlier report: removed
    (out_dir / "notes.txt").write_text("mine")  # not ours: kept
    status, out, err = cli("report", GPU, "--out", out_dir)
    assert (status, err) == (0, "")
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["bandwidth-cpu-float32-warm.png", "bandwidth-cpu-float32-warm.svg",
                     "bandwidth-cuda-float32-warm.png", "bandwidth-cuda-float32-warm.svg",
                     "error-cuda-float32.png", "error-cuda-float32.svg",
                     "headline-softmax-fwd-narrow.png", "headline-softmax-fwd-narrow.svg",  # one panel a row, for phones
                     "headline-softmax-fwd.png", "headline-softmax-fwd.svg", "notes.txt", "report.md"]
    for png in out_dir.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    for svg in out_dir.glob("*.svg"):
        text = svg.read_text()
        assert "<svg" in text and "torch-fused" in text
    document = (out_dir / "report.md").read_text()
    for name in names:
        if name.endswith((".png", ".svg")) and "-narrow." not in name:  # the page's alone
            assert f"({name})" in document
    # The headline comes first: its figure, then the summary.
    assert document.index("## Headline") < document.index("(headline-softmax-fwd.png)") < document.index("## Summary")
    for heading in ("## Summary", "## Speed", "### Time per call", "### Bandwidth", "### Accuracy",
                    "### Overflow behaviour", "## Sources"):
        assert f"\n{heading}\n" in document
    assert out.split() == [str(out_dir / n) for n in ["report.md"] + [
        "headline-softmax-fwd.png", "headline-softmax-fwd.svg", "headline-softmax-fwd-narrow.png",
        "headline-softmax-fwd-narrow.svg", "bandwidth-cpu-float32-warm.png", "bandwidth-cpu-float32-warm.svg",
        "bandwidth-cuda-float32-warm.png", "bandwidth-cuda-float32-warm.svg",
        "error-cuda-float32.png", "error-cuda-float32.svg"]]


def test_html_and_latex_reports_are_written_beside_report_md(tmp_path, cli, monkeypatch):
    monkeypatch.setattr(documents, "write_plots", lambda records, out: [])  # tables only: keep it fast
    for fmt, name, heading in (("html", "report.html", '<h3 id="overflow-behaviour">Overflow behaviour</h3>'),
                               ("latex", "report.tex", "\\caption{Overflow behaviour.")):
        status, _, _ = cli("report", SMALL, "--out", tmp_path, "--format", fmt)
        assert status == 0
        assert (tmp_path / name).read_text().count(heading) == 1
    assert (tmp_path / "report.md").exists()


def test_without_out_nothing_is_written(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = cli("report", SMALL)
    assert status == 0 and "### Time per call" in out
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_the_tables_are_still_written(tmp_path, cli, monkeypatch):
    def no_matplotlib():
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(plots, "_pyplot", no_matplotlib)
    status, _, err = cli("report", GPU, "--out", tmp_path)
    assert status == 0
    assert err.startswith("warning: matplotlib is not installed") and err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
    assert "  - Warning: matplotlib is not installed" in (tmp_path / "report.md").read_text()


def test_out_that_is_a_file_is_exit_2(tmp_path, cli):
    target = tmp_path / "file"
    target.write_text("")
    status, _, err = cli("report", SMALL, "--out", target)
    assert status == 2 and err == f"softmax-bench: error: --out {target}: exists and is not a directory\n"


# ---------------------------------------------------------------- the published README


def test_readme_block_is_replaced_and_links_resolve(tmp_path, cli, monkeypatch):
    monkeypatch.setattr(plots, "error_figures", lambda records, styles=None: iter(()))  # one kind of plot is enough
    readme = tmp_path / "README.md"
    readme.write_text(f"# Results\n\nbefore\n\n{README_BEGIN}\nold tables\n{README_END}\n\nafter\n")
    status, _, err = cli("report", GPU, "--out", tmp_path / "published", "--readme", readme)
    assert (status, err) == (0, "")
    text = readme.read_text()
    assert text.startswith("# Results\n\nbefore\n\n" + README_BEGIN) and text.endswith(README_END + "\n\nafter\n")
    assert "old tables" not in text and "\n#### Time per call\n" in text and "\n### Summary\n" in text
    assert "(published/bandwidth-cuda-float32-warm.png)" in text
    assert (tmp_path / "published" / "bandwidth-cuda-float32-warm.png").exists()


def test_readme_without_markers_is_exit_2_before_anything_is_written(tmp_path, cli):
    readme = tmp_path / "README.md"
    readme.write_text("# Results\n")
    status, _, err = cli("report", GPU, "--out", tmp_path / "published", "--readme", readme)
    assert status == 2 and err.count("\n") == 1 and "needs the lines" in err
    assert not (tmp_path / "published").exists()


def test_readme_needs_out(cli):
    status, _, err = cli("report", SMALL, "--readme", "README.md")
    assert status == 2 and "--readme needs --out" in err


def test_published_results_readme_has_the_markers():
    text = (ROOT / "results" / "README.md").read_text()
    assert 0 <= text.index(README_BEGIN) < text.index(README_END)
    assert "softmax-bench report" in text
