"""``softmax-bench publish`` (issue 24): stages kept as they finish, the page rebuilt only from complete files."""

from __future__ import annotations

import json

import pytest

from softmax_bench.commands import publish
from softmax_bench.core.results import load

# Two backends that cover every op and pass on CPU, one NumPy and one torch: enough to prove the stages.
BACKENDS = ("--backend", "max-shift", "--backend", "torch-fused")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One end-to-end ``publish --quick`` into a temporary folder: (status, stderr, results dir, page dir)."""
    from softmax_bench.cli import main

    root = tmp_path_factory.mktemp("publish")
    results_dir, page_dir = root / "results", root / "published"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["publish", "--quick", "--mode", "warm", *BACKENDS,
                           "--results-dir", str(results_dir), "--out", str(page_dir)])
    return status, err.getvalue(), results_dir, page_dir


def measured(records):
    """(op, pass, dtype) of every timing with a median."""
    return {(r["op"], r["pass"], r["dtype"]) for r in records if r["kind"] == "timing" and r.get("median_s") is not None}


def test_publish_quick_writes_every_stage_file_and_the_page(published):
    status, err, results_dir, page_dir = published
    assert status == 0, err
    wanted = {(op, pass_, dtype) for op, pass_ in publish.PAIRS for dtype in publish.DTYPES}
    for stage in publish.STAGES:
        records = load(stage.path(results_dir))["records"]
        if stage.verb == "check":
            assert {r["dtype"] for r in records if r["kind"] == "check"} >= set(publish.DTYPES)
        else:
            assert measured(records) == wanted, stage.name
            assert {r["backend"] for r in records} == {"max-shift", "torch-fused"}
    page = (page_dir / "report.html").read_text()
    for op, pass_ in publish.PAIRS:  # every op and pass has its headline figure on the page
        assert f"headline-{op.replace('_', '-')}-{pass_}.svg" in page
    for stage in publish.STAGES:  # and every stage file is among its sources
        assert stage.file_name in page


def test_page_only_rebuilds_the_page_from_the_files_without_measuring(published, tmp_path, cli):
    _, _, results_dir, _ = published
    before = {s.name: s.path(results_dir).read_bytes() for s in publish.STAGES}
    status, out, err = cli("publish", "--page-only", "--results-dir", results_dir, "--out", tmp_path / "page")
    assert status == 0, err
    assert (tmp_path / "page" / "report.html").exists()
    assert "stage check" not in err and "stage page" in err
    assert {s.name: s.path(results_dir).read_bytes() for s in publish.STAGES} == before


def test_a_timing_file_without_its_bwd_records_is_reported_and_not_published(published, tmp_path, cli):
    # The negative control of the completeness check: the same files, the backward passes taken out.
    _, _, results_dir, _ = published
    cut = tmp_path / "results"
    cut.mkdir()
    for stage in publish.STAGES:
        document = json.loads(stage.path(results_dir).read_text())
        if stage.name == "lmhead":
            document["records"] = [r for r in document["records"] if r.get("pass") != "bwd"]
        (cut / stage.file_name).write_text(json.dumps(document))
    status, out, err = cli("publish", "--page-only", "--results-dir", cut, "--out", tmp_path / "page")
    assert status == 1
    lacking = [line for line in err.splitlines() if "no measured" in line]
    assert lacking == [f"publish: {cut / 'publish-cpu-lmhead.json'}: no measured {op} bwd {dtype}"
                       for op in ("softmax", "log_softmax") for dtype in publish.DTYPES]
    assert "not publishing" in err
    assert not (tmp_path / "page").exists()


def test_timing_gaps_count_only_measured_timings():
    def timing(op, pass_, dtype, median_s=1e-3):
        return {"kind": "timing", "op": op, "pass": pass_, "dtype": dtype, "median_s": median_s}

    pairs = (("softmax", "fwd"), ("cross_entropy", "full"))
    complete = [timing("softmax", "fwd", "float32"), timing("cross_entropy", "full", "float32")]
    assert publish.timing_gaps(complete, pairs, ["float32"]) == []
    failed = [timing("softmax", "fwd", "float32"), timing("cross_entropy", "full", "float32", median_s=None)]
    assert publish.timing_gaps(failed, pairs, ["float32"]) == ["cross_entropy full float32"]
    # A file from before the op and pass fields holds softmax forwards.
    assert publish.timing_gaps([{"kind": "timing", "dtype": "float32", "median_s": 1e-3}], pairs[:1], ["float32"]) == []


def test_check_gaps_name_each_dtype_without_a_judged_check():
    records = [{"kind": "check", "dtype": "float32", "passed": False}, {"kind": "check", "dtype": "bfloat16", "passed": None}]
    assert publish.check_gaps(records, ["float32", "bfloat16"]) == ["check bfloat16"]


def test_each_stage_is_the_verb_a_user_would_type_writing_its_own_file(tmp_path):
    from softmax_bench.cli import build_parser

    args = build_parser().parse_args(["publish", "--skip", "numba-naive", "--results-dir", str(tmp_path)])
    lmhead = publish.stage_argv(publish.STAGES[2], args, publish.STAGES[2].path(tmp_path))
    assert lmhead[:2] == ["run", "--device"] and ["--skip", "numba-naive"] == lmhead[3:5]
    assert lmhead[lmhead.index("--sizes") + 1] == publish.LMHEAD_SIZES
    assert lmhead[lmhead.index("--out") + 1] == str(tmp_path / "publish-cpu-lmhead.json")
    build_parser().parse_args(lmhead)  # a valid command line of that verb
    # --resume continues a file that exists, and only then.
    args = build_parser().parse_args(["publish", "--resume", "--results-dir", str(tmp_path)])
    (tmp_path / "publish-cpu-check.json").write_text("{}")
    assert "--resume" in publish.stage_argv(publish.STAGES[0], args, publish.STAGES[0].path(tmp_path))
    assert "--resume" not in publish.stage_argv(publish.STAGES[1], args, publish.STAGES[1].path(tmp_path))


@pytest.mark.parametrize("argv, message", [
    (["--page-only", "--resume"], "--page-only measures nothing"),
    (["--page-only", "--results-dir", "nowhere"], "--page-only needs the stage files; missing: nowhere/publish-cpu-check.json"),
    (["--dtype", "float8"], "unknown dtype 'float8'; valid:"),
    (["-b", "nosuch"], "-b nosuch: selects no backend; valid:"),
])
def test_bad_usage_is_one_line_and_exit_2(cli, tmp_path, argv, message):
    status, out, err = cli("publish", *argv)
    assert status == 2
    assert err.count("\n") == 1 and message in err
