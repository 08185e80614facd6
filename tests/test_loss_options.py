"""The loss options record and its exact reference (issue 22), checked against torch in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softmax_bench.loss_options import (
    OPTION_NAMES,
    CrossEntropyOptions,
    OptionsError,
    parse,
    reference,
    unsupported,
)

# float64 torch against a reference rounded once: a few ulps of the loss's scale.
RTOL = 1e-12


def _inputs(rows=5, vocab=7, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, vocab)) * scale
    target = rng.integers(0, vocab, rows)
    target[1] = -100
    return x, target


def _torch(x, target, o: CrossEntropyOptions):
    """torch's loss and gradient, with the options torch lacks composed in float64."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xt = torch.tensor(x, requires_grad=True)
    z = xt if o.softcap is None else o.softcap * torch.tanh(xt / o.softcap)
    z = z / o.temperature
    weight = None if o.class_weight is None else torch.tensor(o.class_weight, dtype=torch.float64)
    t = torch.tensor(target)
    loss = F.cross_entropy(z, t, weight=weight, label_smoothing=o.label_smoothing, reduction="none")
    if o.z_loss:
        lse = torch.logsumexp(z, -1)
        loss = loss + torch.where(t != -100, o.z_loss * lse * lse, 0.0)
    if o.reduction == "sum":
        loss = loss.sum()
    elif o.reduction == "mean":
        w = torch.ones(x.shape[1], dtype=torch.float64) if weight is None else weight
        keep = t != -100
        loss = loss.sum() / w[t.clamp(min=0)][keep].sum()
    loss.backward(torch.ones_like(loss))
    return loss.detach().numpy(), xt.grad.numpy()


CASES = {
    "plain": CrossEntropyOptions(),
    "mean": CrossEntropyOptions(reduction="mean"),
    "sum": CrossEntropyOptions(reduction="sum"),
    "smoothing": CrossEntropyOptions(label_smoothing=0.1),
    "smoothing-1": CrossEntropyOptions(label_smoothing=1.0),
    "z_loss": CrossEntropyOptions(z_loss=1e-4),
    "softcap": CrossEntropyOptions(softcap=2.0),
    "temperature-small": CrossEntropyOptions(temperature=1e-3),
    "temperature-huge": CrossEntropyOptions(temperature=1e6),
    "weights-mean": CrossEntropyOptions(reduction="mean", class_weight=(1, 0, 2, 0.5, 1, 3, 0)),
    "all": CrossEntropyOptions(reduction="mean", label_smoothing=0.2, z_loss=1e-3, softcap=5.0,
                               temperature=0.7, class_weight=(1, 0, 2, 0.5, 1, 3, 0.25)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reference_matches_torch_float64(name):
    o = CASES[name]
    x, target = _inputs()
    loss, grad = reference(x, target, o)
    t_loss, t_grad = _torch(x, target, o)
    np.testing.assert_allclose(loss, t_loss, rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(t_grad).max()))


def test_softcap_bounds_huge_logits():
    x = np.array([[1e300, -1e300, 0.0]])
    loss, grad = reference(x, np.array([1]), CrossEntropyOptions(softcap=30.0))
    assert math.isclose(float(loss[0]), 60.0 + math.log1p(math.exp(-30.0) + math.exp(-60.0)), rel_tol=1e-15)
    assert np.all(np.isfinite(grad))


def test_all_rows_ignored_mean_is_nan_like_torch():
    x, _ = _inputs()
    target = np.full(x.shape[0], -100)
    loss, grad = reference(x, target, CrossEntropyOptions(reduction="mean"))
    assert math.isnan(float(loss)) and not grad.any()
    t_loss, t_grad = _torch(x, target, CrossEntropyOptions(reduction="mean"))
    assert math.isnan(float(t_loss)) and not t_grad.any()  # torch: a NaN loss, a zero gradient


def test_z_loss_at_lse_300_is_finite_in_float64_reference():
    # lse² = 9e4 > float16's 65504: the reference stays exact; a float16 squaring overflows.
    x = np.full((1, 4), 300.0)
    loss, _ = reference(x, np.array([0]), CrossEntropyOptions(z_loss=1e-4))
    lse = 300.0 + math.log(4.0)
    assert math.isclose(float(loss[0]), math.log(4.0) + 1e-4 * lse * lse, rel_tol=1e-14)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.float16(lse) * np.float16(lse))


def test_defaults_are_the_plain_loss_and_records_round_trip():
    assert CrossEntropyOptions().active() == () and CrossEntropyOptions().label() == "plain"
    o = CASES["all"]
    assert CrossEntropyOptions.from_record(o.to_record()) == o
    assert CrossEntropyOptions.from_record(None) == CrossEntropyOptions()  # old records: no options field


def test_parse_and_one_line_errors():
    assert parse("z_loss=1e-4,softcap=30") == CrossEntropyOptions(z_loss=1e-4, softcap=30.0)
    assert parse("") == CrossEntropyOptions()
    for bad in ("zloss=1", "reduction=avg", "label_smoothing=2", "temperature=0", "softcap=x"):
        with pytest.raises(OptionsError) as info:
            parse(bad)
        assert "\n" not in str(info.value) and ("valid" in str(info.value) or "number" in str(info.value))


def test_unsupported_names_the_missing_options():
    assert unsupported(CrossEntropyOptions(), ()) is None  # old plugins: defaults only
    reason = unsupported(CrossEntropyOptions(z_loss=1e-4, reduction="mean"), ("reduction",))
    assert reason == "loss option z_loss not supported by this backend"


def _planted_mean_over_all_rows(x, target):
    loss, _ = reference(x, target, CrossEntropyOptions())
    return loss.sum() / len(target)


def _planted_smoothing_with_sum(x, target, eps):
    lse = np.logaddexp.reduce(x, axis=1)
    nll = lse - x[np.arange(len(x)), np.maximum(target, 0)]
    return np.where(target != -100, (1 - eps) * nll + eps * (lse * x.shape[1] - x.sum(1)), 0.0)


def test_negative_controls_differ_from_the_reference():
    """Flaws the issue names are far outside the tolerance (a check built on RTOL catches them)."""
    x, target = _inputs()
    exact_mean, _ = reference(x, target, CrossEntropyOptions(reduction="mean"))
    assert not np.isclose(_planted_mean_over_all_rows(x, target), exact_mean, rtol=1e-6)
    exact_smooth, _ = reference(x, target, CrossEntropyOptions(label_smoothing=0.1))
    assert not np.allclose(_planted_smoothing_with_sum(x, target, 0.1), exact_smooth, rtol=1e-6)
    # z-loss in the gradient but not the loss (the OLMo bug's mirror): the loss differs by z·lse².
    plain, _ = reference(x, target, CrossEntropyOptions())
    with_z, _ = reference(x, target, CrossEntropyOptions(z_loss=1e-4))
    assert not np.allclose(plain, with_z, rtol=1e-9)


# --- the engine's guard and the torch-fused backend -------------------------------------------


def _plain_numpy_backend(**extra):
    from softmax_bench import Backend

    def ce(logits, target, ignore_index=-100):  # an old plugin: knows nothing of options
        lse = np.logaddexp.reduce(logits, axis=1)
        return np.where(target != ignore_index, lse - logits[np.arange(len(logits)), np.maximum(target, 0)], 0.0)

    return Backend(name="old-plugin", library="numpy", devices=("cpu",), dtypes=("float64",),
                   softmax=lambda x, axis=-1: x, cross_entropy=ce, **extra)


def test_old_plugin_runs_plain_and_is_not_available_with_options():
    from softmax_bench.core import adapters
    from softmax_bench.errors import NotAvailable
    from softmax_bench.measure.calls import cross_entropy_call

    backend = _plain_numpy_backend()
    adapter = adapters.get("numpy") if hasattr(adapters, "get") else None
    x, target = _inputs()
    exact, _ = reference(x, target, CrossEntropyOptions())
    loss = cross_entropy_call(backend, adapter, "cross_entropy", "explicit", x, target, None,
                              options=CrossEntropyOptions())
    np.testing.assert_allclose(loss, exact, rtol=RTOL)
    with pytest.raises(NotAvailable, match="z_loss not supported"):
        cross_entropy_call(backend, adapter, "cross_entropy", "explicit", x, target, None,
                           options=CrossEntropyOptions(z_loss=1e-4))


def test_backend_rejects_unknown_loss_option_name():
    from softmax_bench.backend import BackendError

    with pytest.raises(BackendError, match="loss_options has 'zloss'"):
        _plain_numpy_backend(loss_options=("zloss",))


@pytest.mark.parametrize("name", list(CASES))
def test_torch_fused_matches_reference_float64(name):
    torch = pytest.importorskip("torch")
    from softmax_bench.backends.torch_fused import backend

    o = CASES[name]
    x, target = _inputs()
    exact, exact_grad = reference(x, target, o)
    xt = torch.tensor(x, requires_grad=True)
    loss = backend.cross_entropy(xt, torch.tensor(target), options=o)
    loss.backward(torch.ones_like(loss))
    np.testing.assert_allclose(loss.detach().numpy(), exact, rtol=RTOL)
    np.testing.assert_allclose(xt.grad.numpy(), exact_grad, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(exact_grad).max()))


def test_torch_fused_z_loss_at_lse_300_in_float16_stays_finite():
    torch = pytest.importorskip("torch")
    from softmax_bench.backends.torch_fused import backend

    x = np.full((1, 4), 300.0)
    o = CrossEntropyOptions(z_loss=1e-4)
    exact, _ = reference(x, np.array([0]), o)
    got = backend.cross_entropy(torch.tensor(x, dtype=torch.float16), torch.tensor([0]), options=o)
    # float16's spacing near 10.4 is 2**-7: one rounding of the exact value.
    assert abs(float(got[0]) - float(exact[0])) <= 2.0**-7


_NUMBA_CALLS = """
import sys
import numpy as np
from softmax_bench.backends.numba_kernels import backends
from softmax_bench.loss_options import float64_rows, parse
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 5000)).astype(np.float32)
t = np.array([7, 4000, -100])
o = parse("label_smoothing=0.1,z_loss=1e-4")
for b in backends:
    if b.loss_options:
        if "plain" in sys.argv:
            b.cross_entropy_fwd_bwd(x, t, np.ones(3, np.float32))
        if "options" in sys.argv:
            got = b.cross_entropy(x, t, options=o)
            want = float64_rows(x, t, o, np.ones(3))[0]
            assert np.allclose(got, want, rtol=1e-5), (b.name, got, want)
print("ok")
"""


def test_numba_options_are_right_with_both_drivers_from_the_disk_cache(tmp_path):
    """The options driver cached by one process, the plain one by another, both loaded by a third (plain
    first): with the closure sums of _lane_sum_of in both, symbols compiled under one name in the two
    processes linked to each other's code, and the options' Σz became an exp sum (the loss 1.3% off)."""
    pytest.importorskip("numba")
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    for args in (["options"], ["plain"], ["plain", "options"]):
        done = subprocess.run([sys.executable, "-c", _NUMBA_CALLS, *args], capture_output=True, text=True,
                              timeout=600, env=env)
        assert done.returncode == 0 and "ok" in done.stdout, (args, done.stderr[-2000:])


def test_online_and_numba_declare_the_options_they_compute():
    from softmax_bench.backends.numba_kernels import backends as numba_backends
    from softmax_bench.backends.online import backend as online

    assert set(online.loss_options) == set(OPTION_NAMES)
    declared = {b.name: set(b.loss_options) for b in numba_backends}
    assert declared["numba-2pass"] == declared["numba-3pass"] == set(OPTION_NAMES)
    assert not declared["numba-naive"] and not declared["numba-2pass-reload"]


def test_report_merges_records_with_loss_options():
    """A results file with options records goes through the report's merge: the record's own
    options dict and an in-memory Workpoint's label both give the label (the report once raised
    TypeError, handed the label)."""
    from softmax_bench.core.records import Workpoint, options_label

    assert options_label({"softcap": 30.0}) == options_label("softcap=30") == "softcap=30"
    record = {"backend": "numba-2pass", "device": "cpu", "dtype": "float32", "rows": 2, "vocab": 8,
              "op": "cross_entropy", "pass": "full", "mode": "warm", "kind": "timing", "median_s": 1e-3,
              "options": {"temperature": 0.7}}
    assert Workpoint.of(record).options == "temperature=0.7"
