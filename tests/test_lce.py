"""The linear cross-entropy op (issue 21): exact reference, built-in backends, planted flaws, a tiny timing."""

import importlib.util
import pathlib

import numpy as np
import pytest

from softmax_bench.core import registry
from softmax_bench.measure import lce

PLUGINS = pathlib.Path(__file__).parent / "plugins"


def _backend(name, plugins=()):
    return registry.cached([str(p) for p in plugins]).get(name)


def test_reference_matches_float64_closed_form():
    """The 200-bit reference agrees with a float64 log-sum-exp and matmuls to float64 rounding."""
    inputs = lce.case_inputs(lce.CASES[0], "float64")
    h, w, t, d = inputs["hidden"], inputs["weight"], inputs["target"], inputs["dloss"]
    ref = lce.exact(h, w, t, d)
    z = h @ w.T
    m = z.max(1, keepdims=True)
    p = np.exp(z - m) / np.exp(z - m).sum(1, keepdims=True)
    loss = (m[:, 0] + np.log(np.exp(z - m).sum(1))) - z[np.arange(len(t)), t]
    g = (p - np.eye(w.shape[0])[t]) * d[:, None]
    assert np.allclose(ref.loss, loss, rtol=1e-12)
    assert np.allclose(ref.dhidden, g @ w, rtol=1e-10, atol=1e-14)
    assert np.allclose(ref.dweight, g.T @ h, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["numpy-lce-blocked", "torch-lce-eager", "torch-lce", "torch-lce-chunked", "cce-compile"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_builtin_passes_every_case(name, dtype):
    if name.startswith("torch") and importlib.util.find_spec("torch") is None:
        pytest.skip("torch not installed")
    backend = _backend(name)
    if dtype not in backend.dtypes:
        pytest.skip(f"{name} declares no {dtype}")
    why = backend.available("cpu") if backend.available else None
    if why:
        pytest.skip(why)
    for case in lce.CASES:
        result = lce.check_case(backend, case, dtype)
        if result.passed is None:  # a bias the backend does not take: recorded with its reason
            assert not backend.linear_cross_entropy_bias and "declares no bias" in result.error
            continue
        assert result.passed, (case.name, result.error, result.worst)


@pytest.mark.parametrize("name, fails, dtype", [
    ("lce-drops-last-chunk", "odd_vocab", "float32"),
    ("lce-mean-over-n", "ignored_rows", "float32"),
    ("lce-ignores-nothing", "ignored_rows", "float32"),
    ("lce-dweight-bf16-accumulator", "long_batch", "bfloat16"),
])
def test_planted_flaw_fails_named_case(name, fails, dtype):
    backend = _backend(name, [PLUGINS / "lce_flawed.py"])
    results = {case.name: lce.check_case(backend, case, dtype) for case in lce.CASES}
    assert not results[fails].passed, results[fails]
    assert results["plain"].passed, results["plain"].error  # the flaw is specific, not a broken plugin


def test_raising_backend_is_a_recorded_failure():
    from softmax_bench import Backend

    def boom(*a, **k):
        raise RuntimeError("planted")
    backend = Backend(name="lce-raises", library="numpy", devices=("cpu",), dtypes=("float32",),
                      softmax=boom, linear_cross_entropy_fwd_bwd=boom)
    result = lce.check_case(backend, lce.CASES[0], "float32")
    assert not result.passed and "planted" in result.error


def test_tiny_timing_records_flops_and_peak():
    rec = lce.time_backend(_backend("numpy-lce-blocked"), 256, 32, 1000, "full", repeats=2)
    assert rec["flops"] == 6 * 256 * 32 * 1000 and rec["median_s"] > 0
    assert rec["logits_bytes"] == 256 * 1000 * 4 and rec["matmul_fraction"] > 0
    assert rec["route"] == "explicit"


def test_cli_check_names_failing_case_and_exits_1(tmp_path, capsys):
    from softmax_bench.cli import main

    rc = main(["check", "--op", "linear_cross_entropy", "--plugin", str(PLUGINS / "lce_flawed.py"),
               "--backend", "lce-drops-last-chunk", "--dtype", "float32", "--out", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL linear_cross_entropy lce-drops-last-chunk cpu float32 odd_vocab" in out


def test_cli_run_rejects_two_part_sizes(tmp_path, capsys):
    from softmax_bench.cli import main

    rc = main(["run", "--op", "linear_cross_entropy", "--sizes", "12x3", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "NxHxV" in err and len(err.strip().splitlines()) == 1


def test_cli_run_rejects_bwd_pass(tmp_path, capsys):
    # A fused call's gradient recomputes the logits: a "bwd" timing would be the
    # full call recorded with the backward's FLOPs (the bug this test guards).
    from softmax_bench.cli import main

    rc = main(["run", "--op", "linear_cross_entropy", "--sizes", "8x4x16", "--pass", "bwd",
               "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "no pass bwd" in err and "fwd, full" in err and len(err.strip().splitlines()) == 1


def test_derived_route_through_a_cross_entropy_backend():
    """A backend without the op gets it as a matmul plus its own cross-entropy, and is checked the same way."""
    backend = _backend("max-shift")
    assert lce.route(backend, "fwd") == "derived" and lce.route(backend, "full") == "derived"
    for case in lce.CASES[:5]:
        result = lce.check_case(backend, case, "float64")
        assert result.passed and result.route == "derived", (case.name, result.error)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_autodiff_route_from_a_loss_alone():
    """A torch backend with only the loss gets its gradients from autograd; a loss whose graph is cut fails the check."""
    import torch

    from softmax_bench import Backend

    plain = _backend("torch-lce-eager")
    assert lce.route(plain, "fwd") == "explicit" and lce.route(plain, "full") == "autodiff"

    def detached_weight(hidden, weight, target, ignore_index=-100):
        # Negative control: the weight leaves the graph, so autograd's dweight is zero.
        logits = hidden @ weight.detach().T
        return torch.nn.functional.cross_entropy(logits, target, reduction="none", ignore_index=ignore_index)

    cut = Backend(name="lce-cut-graph", library="torch", devices=("cpu",), dtypes=("float32", "float64"),
                  softmax=lambda x, axis=-1: torch.softmax(x, dim=axis), linear_cross_entropy=detached_weight)
    result = lce.check_case(cut, lce.CASES[0], "float64")
    assert result.route == "autodiff" and not result.passed and "dweight" in result.error


def test_bias_case_is_unavailable_with_reason_on_a_backend_without_bias():
    """A backend that declares no bias is never called with one: the case is recorded n/a, not dropped or passed."""
    backend = _backend("lce-drops-last-chunk", [PLUGINS / "lce_flawed.py"])
    case = next(c for c in lce.CASES if c.name == "with_bias")
    result = lce.check_case(backend, case, "float32")
    assert result.passed is None and "declares no bias" in result.error
    assert result.record()["failure"] == "unavailable" and result.record()["reason"]


def test_bias_gradient_is_checked():
    """Negative control for dbias: a backend whose dbias is off by one row's g fails with_bias naming dbias."""
    from softmax_bench import Backend

    good = _backend("numpy-lce-blocked")

    def wrong_dbias(hidden, weight, target, dloss, ignore_index=-100, bias=None):
        loss, dh, dw, db = good.linear_cross_entropy_fwd_bwd(hidden, weight, target, dloss, ignore_index, bias)
        return loss, dh, dw, db * (len(hidden) - 1) / len(hidden)

    bad = Backend(name="lce-wrong-dbias", library="numpy", devices=("cpu",), dtypes=("float32",),
                  softmax=good.softmax, linear_cross_entropy_fwd_bwd=wrong_dbias, linear_cross_entropy_bias=True)
    case = next(c for c in lce.CASES if c.name == "with_bias")
    result = lce.check_case(bad, case, "float32")
    assert result.passed is False and "dbias" in result.error
