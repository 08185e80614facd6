"""The correctness suite's own machinery: figures, classes, negative controls, the CLI.

Every check must be shown to fail on a wrong implementation: the planted
plugins in tests/plugins are each subtly wrong in one way, and each must fail
the case built to catch it while a correct plugin passes everything.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from softmax_bench.measure import cases
from softmax_bench import load_backends
from softmax_bench.measure.checks import plan
from softmax_bench.measure.figures import classify, spacing, tolerance
from softmax_bench.core.isolation import InProcessExecutor
from softmax_bench.core.results import ResultsFile
from softmax_bench.core.selection import Target
from softmax_bench.measure.suite import execute

from helpers import plugin, run_console


def run_all(name: str, plugin_file: str, dtype: str = "float32", tmp_path=None) -> dict[str, dict]:
    """Every case for one backend, in-process; records by (case, op)."""
    executor = InProcessExecutor()
    results = ResultsFile(tmp_path / f"{name}.json", env={})
    execute(plan([Target(name, "cpu", dtype)], cases.CASES, (plugin_file,)), results, executor)
    return {(r["case"], r["op"]): r for r in results.records}


@pytest.mark.parametrize(
    "name, must_fail",
    [
        ("fp16-accumulator", ["uniform_4096", "uniform_65536", "vocab_256000"]),  # stalls at 2048, overflows, drops small terms
        ("no-shift", ["overflow_threshold", "offset_1e4", "underflow_threshold"]),
        ("online-unguarded", ["masked_prefix", "masked_long"]),  # exp(-inf - (-inf)) = NaN
        ("not-normalised", ["randn_scale_1", "masked_prefix", "uniform_512"]),  # rows sum to more than 1
    ],
)
def test_subtly_wrong_plugins_fail_the_cases_built_for_them(name, must_fail, tmp_path):
    file = plugin(name.replace("-", "_"))
    records = run_all(name, file, tmp_path=tmp_path)
    for case in must_fail:
        record = records[(case, "softmax")]
        assert record["passed"] is False, f"{name} passed {case}: {record}"
        assert record["reason"]


@pytest.mark.parametrize("name, case, op", [
    ("ce-no-onehot", "randn_scale_1", "ce_grad"),
    ("ce-log-of-softmax", "ce_large_margin", "cross_entropy"),
    ("ce-no-ignore", "ce_ignore_index", "cross_entropy"),
])
def test_flawed_cross_entropies_make_check_exit_1_naming_the_case(name, case, op, tmp_path):
    proc = run_console("check", "--plugin", plugin("ce_flawed"), "--backend", name, "--dtype", "float32",
                       "--out", tmp_path / "ce.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert any(f"{name} cpu float32 {case} {op}:" in line for line in fails), fails
    # The correct parts of the same plugin pass: only the flaw is caught.
    assert not any(" softmax:" in line for line in fails)


def test_a_correct_plugin_passes_every_judged_case(tmp_path):
    for dtype in ("float32", "float64"):
        records = run_all("plugin-good", plugin("good_numpy"), dtype, tmp_path)
        failed = {k: r["reason"] for k, r in records.items() if r["passed"] is False}
        assert not failed
        assert sum(r["passed"] is True for r in records.values()) >= 30


def test_ulp_spacing_is_floored_at_the_smallest_normal():
    assert spacing(np.array([1.0]), "float32")[0] == 2.0**-23
    assert spacing(np.array([1.0]), "float64")[0] == 2.0**-52
    assert spacing(np.array([1.0]), "bfloat16")[0] == 2.0**-7
    assert spacing(np.array([1e-40, 0.0]), "float32").tolist() == [2.0**-126] * 2


def test_tolerance_grows_with_the_distance_from_the_max_and_with_n():
    x = np.array([[0.0, -10.0, -40.0]])
    hi = np.exp(x) / np.exp(x).sum()
    tol = tolerance("softmax", "value", "float32", x, hi, {"x": x}) / hi
    assert tol[0, 0] < tol[0, 1] < tol[0, 2]
    wide = np.zeros((1, 3000))
    assert (tolerance("softmax", "value", "float32", wide, np.full_like(wide, 1 / 3000), {})[0, 0] * 3000
            > tolerance("softmax", "value", "float32", x[:, :1], np.ones((1, 1)), {})[0, 0])


@pytest.mark.parametrize(
    "out, correct, expected",
    [
        ([[np.nan, np.nan]], False, "nan-row"),
        ([[np.nan, 0.5]], False, "some-nan"),
        ([[np.inf, 0.0]], False, "inf"),
        ([[0.0, 0.0]], False, "zeros"),
        ([[0.5, 0.5]], False, "uniform"),
        ([[0.0, 1.0]], False, "one-hot"),
        ([[0.2, 0.9]], False, "wrong"),
        ([[0.2, 0.8]], True, "correct"),
    ],
)
def test_behaviour_classes(out, correct, expected):
    assert classify(np.array(out), "softmax", correct) == expected


def test_every_anchor_case_is_in_the_catalog():
    anchors = {c.anchor for c in cases.CASES if c.anchor}
    assert anchors == set(range(1, 11))
    names = cases.names()
    for required in ("masked_prefix", "all_neg_inf", "pos_inf", "nan_entry", "uniform_4096", "uniform_512", "uniform_65536",
                     "vocab_256000", "shape_3d_axis1", "non_contiguous", "empty_rows", "temperature_1e-30", "temperature_1e30"):
        assert required in names


@pytest.mark.slow
def test_check_max_shift_exits_0_and_records_conventions(tmp_path):
    out = tmp_path / "c.json"
    proc = run_console("check", "--backend", "max-shift", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = json.loads(out.read_text())["records"]
    mine = [r for r in records if not r.get("reference")]
    assert len(mine) > 100 and not [r for r in mine if r["passed"] is False]
    refs = {(r["backend"], r["case"]): r["behaviour"] for r in records if r.get("reference")}
    # torch is a test dependency: its documented conventions (ANCHORS.md) are in the matrix.
    assert refs[("ref.torch", "all_neg_inf")] == "nan-row" and refs[("ref.torch", "pos_inf")] == "nan-row"
    assert "Overflow behaviour" in proc.stdout


def test_check_naive_exits_1_naming_the_overflow_cases(tmp_path):
    proc = run_console("check", "--backend", "naive", "--dtype", "float32", "--case", "overflow_threshold",
                       "--case", "underflow_threshold", "--case", "randn_scale_1", "--out", tmp_path / "n.json")
    assert proc.returncode == 1
    fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert any("overflow_threshold softmax" in line for line in fails)
    assert any("underflow_threshold softmax" in line for line in fails)
    assert not any("randn_scale_1" in line for line in fails)


def test_check_plugin_end_to_end(tmp_path):
    proc = run_console("check", "--plugin", plugin("online_unguarded"), "--backend", "online-unguarded",
                       "--dtype", "float32", "--case", "masked_prefix", "--case", "randn_scale_1", "--out", tmp_path / "p.json")
    assert proc.returncode == 1
    assert "FAIL online-unguarded cpu float32 masked_prefix softmax" in proc.stdout


@pytest.mark.parametrize("argv, message", [
    (["check", "--case", "nosuch"], "unknown case 'nosuch'; valid:"),
    (["check", "--dtype", "float8"], "unknown dtype 'float8'; valid: float64, float32, float16, bfloat16"),
    (["check", "--device", "tpu"], "unknown device 'tpu'; valid: cpu, cuda"),
    (["check", "--backend", "nosuch"], "unknown backend 'nosuch'"),
    (["check", "--timeout", "-1"], "must be a positive number"),
    (["check", "--jobs", "0"], "must be at least 1"),
])
def test_check_bad_usage(cli, argv, message):
    status, _, err = cli(*argv)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_backends_not_declaring_an_op_are_not_asked_for_it():
    registry = load_backends([plugin("good_numpy")])
    units = plan([Target("plugin-good", "cpu", "float32")], cases.CASES, (plugin("good_numpy"),))
    assert {u.identity.op for u in units} == {"softmax"}
    assert registry.get("plugin-good").log_softmax is None


def test_readme_documents_every_case():
    from helpers import ROOT

    readme = (ROOT / "docs" / "correctness.md").read_text()
    for name in cases.names():
        assert f"| `{name}` |" in readme, f"docs/correctness.md case catalog lacks {name}"


# --------------------------------------------------------------------------- loss options (issue 22)

@pytest.mark.parametrize("name, must_fail", [
    ("ce-mean-over-all-rows", [("opt_mean", "cross_entropy"), ("opt_mean", "ce_grad"), ("opt_class_weight_mean", "cross_entropy")]),
    ("ce-z-loss-grad-only", [("opt_z_loss", "cross_entropy"), ("opt_z_loss_lse_300", "cross_entropy")]),
    ("ce-softcap-after-shift", [("opt_softcap", "cross_entropy"), ("opt_softcap_huge", "cross_entropy")]),
])
def test_flawed_loss_options_make_check_exit_1_naming_the_case(name, must_fail, tmp_path):
    """Each planted flaw of issue 22 fails the case built for it, and only cases of its own option."""
    out = tmp_path / "opt.json"
    proc = run_console("check", "--plugin", plugin("loss_options_flawed"), "--backend", name, "--dtype", "float32",
                       "--op", "cross_entropy", "--out", out)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    for case, op in must_fail:
        assert any(line.startswith(f"FAIL {name} cpu float32 {case} {op}:") for line in fails), fails
    records = json.loads(out.read_text())["records"]
    # The flaw is in one option: the plain loss and the other options pass.
    own = {"ce-mean-over-all-rows": "reduction", "ce-z-loss-grad-only": "z_loss", "ce-softcap-after-shift": "softcap"}[name]
    wrongly = [(r["case"], r["op"]) for r in records if r["passed"] is False and own not in (r.get("options") or {})]
    assert not wrongly
    assert {r["op"] for r in records} == {"cross_entropy", "ce_grad"}  # --op cross_entropy: the loss alone


def test_the_correct_options_plugin_passes_every_case_and_records_name_the_options(tmp_path):
    out = tmp_path / "ok.json"
    proc = run_console("check", "--plugin", plugin("loss_options_flawed"), "--backend", "ce-options-numpy",
                       "--dtype", "float32", "--dtype", "float64", "--op", "cross_entropy", "--out", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    records = json.loads(out.read_text())["records"]
    by_case = {(r["case"], r["op"], r["dtype"]): r for r in records}
    option_cases = [c for c in cases.CASES if c.options is not None]
    for case in option_cases:
        for op in case.ops:
            record = by_case[(case.name, op, "float32")]
            assert record["options"] == case.options.to_record()
            assert record["passed"] is (True if case.judged else None), record
    assert by_case[("opt_all_ignored_mean", "cross_entropy", "float32")]["behaviour"] == "nan-row"
    assert "options" not in by_case[("randn_scale_1", "cross_entropy", "float32")]  # the plain loss: no field, as before


def test_loss_options_flag_runs_the_plain_cases_under_the_options_and_skips_who_lacks_them(tmp_path):
    out = tmp_path / "flag.json"
    proc = run_console("check", "--plugin", plugin("loss_options_flawed"), "--backend", "ce-mean-over-all-rows",
                       "--backend", "max-shift", "--dtype", "float32", "--case", "ce_ignore_index", "--case", "randn_scale_1",
                       "--loss-options", "reduction=mean", "--loss-options", "z_loss=1e-4", "--out", out)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "FAIL ce-mean-over-all-rows cpu float32 ce_ignore_index cross_entropy:" in proc.stdout
    assert "skipped max-shift: loss options" in proc.stderr or "skipped max-shift: loss option" in proc.stderr
    records = json.loads(out.read_text())["records"]
    assert {r["backend"] for r in records} == {"ce-mean-over-all-rows"}
    assert {json.dumps(r["options"]) for r in records} == {'{"reduction": "mean"}', '{"z_loss": 0.0001}'}
    assert all(r["passed"] for r in records if r["options"] == {"z_loss": 0.0001})


@pytest.mark.parametrize("spec, message", [
    ("zloss=1", "valid: NAME=VALUE with NAME one of reduction, label_smoothing"),
    ("reduction=avg", "reduction='avg'; valid: none, mean, sum"),
    ("softcap=x", "not a number"),
])
def test_bad_loss_options_are_one_line_and_exit_2(cli, spec, message):
    for command in ("check", "run"):
        status, _, err = cli(command, "--loss-options", spec)
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
