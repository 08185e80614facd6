"""The numba backends beyond the shared suite: their exponential, the planted
bug the suite must catch, cross-entropy, row shapes, and the lazy import.

The shared suite (test_correctness.py) judges softmax, log_softmax and the
gradients of every numba backend; this file tests what it does not reach.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from softmax_bench.measure import cases
from softmax_bench.measure.checks import run_case
from softmax_bench.core.isolation import InProcessExecutor
from softmax_bench.core.selection import Target

from helpers import run_console

TESTS = Path(__file__).parent
PLANTED = (str(TESTS / "plugins" / "numba_short_poly.py"),)
CORRECT = ("numba-3pass", "numba-3pass-reload", "numba-2pass", "numba-2pass-reload")

numba = pytest.importorskip("numba", reason="numba is not installed")

from softmax_bench.backends import _numba_common as kernels  # noqa: E402  (needs numba)
from softmax_bench.backends import numba_kernels  # noqa: E402

sys.path.insert(0, str(Path(__file__).with_name("plugins")))
from numba_short_poly import short_exp_params  # noqa: E402  (the planted exponential)

sys.path.pop(0)

BACKENDS = {b.name: b for b in numba_kernels.backends}


def exp_of(x: np.ndarray, shifted: bool = False, short: bool = False) -> np.ndarray:
    """The kernels' exponential on a 1-D array (``shifted``: the one for x <= 0; ``short``: the planted one)."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    params = (short_exp_params if short else kernels.exp_params)(x.dtype.name)
    (kernels.exp_shifted_array if shifted else kernels.exp_array)(x, out, *params)
    return out


def ulp_error(got: np.ndarray, exact: np.ndarray, dtype) -> np.ndarray:
    """|got - exact| in ULPs of exact in ``dtype`` (spacing floored at the smallest normal)."""
    spacing = np.spacing(np.maximum(np.abs(exact), np.finfo(dtype).tiny).astype(dtype)).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - exact) / spacing


# --------------------------------------------------------------------------- the exponential


def test_exp_float32_within_2_ulp_over_its_range():
    """Max error over a dense grid of the whole float32 range, against extended precision."""
    x = np.linspace(-87.0, 88.0, 2_000_001).astype(np.float32)
    exact = np.exp(x.astype(np.longdouble))
    worst = ulp_error(exp_of(x), exact, np.float32).max()
    assert worst < 2.0, worst


def test_exp_float64_within_2_ulp_over_its_range():
    """The float64 polynomial (a higher degree) over the float64 range."""
    x = np.linspace(-708.0, 709.0, 400_001)
    exact = np.exp(x.astype(np.longdouble))  # x87 extended precision: 11 more bits than float64
    worst = ulp_error(exp_of(x), exact, np.float64).max()
    assert worst < 2.0, worst


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_special_values(dtype):
    """-inf -> 0, +inf -> inf, NaN -> NaN, far out of range -> 0 or inf, exp(0) = 1 exactly."""
    x = np.array([-np.inf, np.inf, np.nan, -1e30, 1e30, -1e4, 1e4, 0.0, -0.0], dtype=dtype)
    y = exp_of(x)
    assert y[0] == 0 and y[1] == np.inf and np.isnan(y[2])
    assert y[3] == 0 and y[4] == np.inf and y[5] == 0 and y[6] == np.inf
    assert y[7] == 1 and y[8] == 1


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("dtype, lo, hi", [("float32", -104.0, -87.4), ("float64", -746.0, -708.5)])
def test_exp_subnormal_results_are_rounded_not_flushed(dtype, lo, hi, shifted):
    """Below the smallest normal the result is the correctly scaled subnormal
    (within one subnormal spacing of the rounded exact value), then 0."""
    x = np.linspace(lo, hi, 100_001).astype(dtype)
    exact = np.exp(x.astype(np.longdouble)).astype(dtype)
    y = exp_of(x, shifted)
    step = np.finfo(dtype).smallest_subnormal
    assert (np.abs(y.astype(np.longdouble) - exact.astype(np.longdouble)) <= step).all()
    assert (y[exact > 0] > 0).mean() > 0.999 and (y >= 0).all()
    assert exp_of(np.array([lo - 1], dtype=dtype), shifted)[0] == 0


@pytest.mark.parametrize("dtype, lo", [("float32", -104.0), ("float64", -746.0)])
def test_shifted_exp_equals_the_general_one_where_it_applies(dtype, lo):
    """_exp_shifted (the hot loops' exponential, x <= 0) is _exp bit for bit,
    subnormals included, and keeps -inf -> 0, NaN -> NaN, exp(0) = 1."""
    x = np.concatenate([np.linspace(lo, 0.0, 1_000_001), -np.logspace(-30, 2, 10_001)]).astype(dtype)
    np.testing.assert_array_equal(exp_of(x, shifted=True), exp_of(x))
    y = exp_of(np.array([-np.inf, np.nan, 0.0, -0.0, -1e30], dtype=dtype), shifted=True)
    assert y[0] == 0 and np.isnan(y[1]) and y[2] == 1 and y[3] == 1 and y[4] == 0


def test_shifted_exp_one_degree_short_is_visibly_worse():
    """The planted bug reaches the shifted exponential too (it shares the polynomial)."""
    x = np.linspace(-87.0, 0.0, 200_001).astype(np.float32)
    exact = np.exp(x.astype(np.longdouble))
    assert ulp_error(exp_of(x, shifted=True, short=True), exact, np.float32).max() > 10


def test_exp_one_degree_short_is_visibly_worse():
    """The planted bug, measured on the exponential alone."""
    x = np.linspace(-87.0, 0.0, 200_001).astype(np.float32)
    exact = np.exp(x.astype(np.longdouble))
    assert ulp_error(exp_of(x, short=True), exact, np.float32).max() > 10


# --------------------------------------------------------------------------- negative control


# Where a 40-ULP exp shows against the suite's tolerances: rows of a few elements,
# whose bound has no n u_acc slack to hide it in.
PLANTED_CASES = [("overflow_threshold", "softmax"), ("masked_prefix", "softmax")]


@pytest.mark.parametrize("algorithm", ["3pass", "3pass-reload", "2pass", "2pass-reload"])
def test_suite_catches_an_exp_one_degree_short_in_float32(algorithm):
    """The same kernels with the polynomial's top term dropped fail the suite,
    and the shipped ones pass the same cases."""
    planted = InProcessExecutor()
    shipped = InProcessExecutor()
    for case, op in PLANTED_CASES:
        bad = run_case(planted, Target(f"short-poly-numba-{algorithm}", "cpu", "float32"), cases.get(case), op, PLANTED)
        assert bad["passed"] is False and bad["error_ratio"] > 1, (case, op, bad["reason"])
        good = run_case(shipped, Target(f"numba-{algorithm}", "cpu", "float32"), cases.get(case), op)
        assert good["passed"] is True, (case, op, good["reason"])


def test_check_command_fails_the_planted_exp(tmp_path):
    """The same through the command line: softmax-bench check exits 1 and names the case."""
    proc = run_console("check", "--plugin", PLANTED[0], "--backend", "short-poly-numba-2pass", "--dtype", "float32",
                       "--case", "overflow_threshold", "--case", "masked_prefix", "--out", tmp_path / "p.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL short-poly-numba-2pass cpu float32 overflow_threshold softmax" in proc.stdout


# --------------------------------------------------------------------------- rows of every shape


def reference_softmax(x: np.ndarray) -> np.ndarray:
    """Max-shifted softmax over the last axis (float64 in, float64 out)."""
    with np.errstate(invalid="ignore"):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 1023, 1024, 1025, 3000, 4095, 4096, 4097, 10_000])
@pytest.mark.parametrize("name", CORRECT)
def test_rows_across_lane_block_and_chunk_edges(name, n):
    """Lengths around LANES, the online BLOCK and CHUNK, with masked entries
    in some lanes and whole masked blocks before and after the max, against a
    float64 reference."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((4, n)) * 4
    x[0, : n // 2] = -np.inf  # a masked prefix
    x[1, rng.random(n) < 0.3] = -np.inf  # masks scattered across lanes
    x[1, 0] = 1.0
    x[3] -= 500.0  # every shift far below 0: a rescale from a masked block must not overflow
    x[3, : min(n - 1, 2 * kernels.BLOCK)] = -np.inf
    x[3, -1] += 10.0  # the row's max in its last block
    b = BACKENDS[name]
    for dtype, rtol in (("float64", 1e-12), ("float32", 2e-5)):
        xd = x.astype(dtype)
        want = reference_softmax(xd.astype(np.float64))
        np.testing.assert_allclose(b.softmax(xd), want, rtol=rtol, atol=1e-30)
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(b.log_softmax(xd), np.log(want), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", CORRECT)
def test_all_masked_row_is_nan_and_other_rows_unharmed(name):
    """A fully masked row gives NaN (as torch does) without touching the next row."""
    x = np.array([[-np.inf] * 600, list(range(600))], dtype=np.float32)
    y = BACKENDS[name].softmax(x)
    assert np.isnan(y[0]).all()
    np.testing.assert_allclose(y[1], reference_softmax(x[1:].astype(np.float64))[0], rtol=2e-5, atol=1e-38)


# --------------------------------------------------------------------------- the driver


def each_op(params=None) -> list[np.ndarray]:
    """Every op of every algorithm through ``kernels.drive`` on rows of 1000
    (one thread) and 8 x 5000 (all threads), with ``params`` (None: the
    exponential compiled into the driver)."""
    rng = np.random.default_rng(1)
    outs = []
    for rows, n in ((3, 1000), (8, 5000)):
        x = rng.standard_normal((rows, n)).astype(np.float32) * 6
        dy = rng.standard_normal((rows, n)).astype(np.float32)
        target, dloss = rng.integers(0, n, rows), np.ones(rows, np.float32)
        for algo in range(5):
            outs.append(kernels.drive(kernels.SOFTMAX, algo, x, params=params))
            outs.append(kernels.drive(kernels.LOG_SOFTMAX, algo, x, params=params))
            outs.append(kernels.drive(kernels.SOFTMAX_VJP, algo, outs[-2], b=dy, params=params))
            outs.extend(kernels.drive(kernels.CROSS_ENTROPY_GRAD, algo, x, target=target, dloss=dloss, params=params))
    return outs


def test_compiled_in_exponential_is_the_shipped_one():
    """The driver every backend call goes through has the exponential's
    constants compiled in (_drive_shipped); its results are bit for bit
    those of the driver given exp_params() at run time. The same comparison
    tells a polynomial one degree short apart (the negative control)."""
    shipped = each_op()
    given = each_op(kernels.exp_params("float32"))
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(shipped, given, strict=True))
    short = each_op(short_exp_params("float32"))
    assert not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(shipped, short, strict=True))


def test_one_thread_and_all_threads_agree(monkeypatch):
    """Small inputs run on the calling thread (_drive_serial), larger ones on
    all threads (_drive_threads): the same rows give the same bits either way."""
    monkeypatch.setattr(kernels, "PARALLEL_MIN_ELEMENTS", 0)
    threaded = each_op()
    monkeypatch.setattr(kernels, "PARALLEL_MIN_ELEMENTS", 2**62)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(threaded, each_op(), strict=True))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_start_half_a_page_from_their_inputs(dtype):
    """From ALIGN_MIN_BYTES up, an output's data starts 2048 bytes from its
    input's, modulo 4096 (no 4K aliasing between the two streams), whatever
    the input's own offset, and it is an ordinary writable array."""
    raw = np.zeros(kernels.ALIGN_MIN_BYTES * 2 + 64, np.uint8)
    itemsize = np.dtype(dtype).itemsize
    for offset in (0, itemsize, 64, 2048, 4096 - itemsize):
        a = raw[offset:offset + kernels.ALIGN_MIN_BYTES].view(dtype).reshape(8, -1)
        out = kernels.output_like(a)
        assert (out.ctypes.data - a.ctypes.data) % 4096 == 2048, offset
        assert out.shape == a.shape and out.dtype == a.dtype and out.flags.c_contiguous and out.flags.writeable
        out[:] = 1.0


# --------------------------------------------------------------------------- cross-entropy


def reference_cross_entropy(x, target, dloss, ignore_index=-100):
    """loss = logsumexp(x) - x[t], grad = dloss * (softmax - onehot), in float64."""
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]
    rows = np.arange(len(x))
    keep = target != ignore_index
    loss = np.where(keep, lse - x[rows, np.where(keep, target, 0)], 0.0)
    grad = reference_softmax(x)
    grad[rows[keep], target[keep]] -= 1
    return loss, np.where(keep[:, None], grad * dloss[:, None], 0.0)


@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-12, 1e-15), ("float32", 1e-5, 1e-7)])
@pytest.mark.parametrize("name", CORRECT)
def test_cross_entropy_matches_float64_reference(name, dtype, rtol, atol):
    """Loss and fused gradient on random 8 x 1000 logits, with two ignored rows."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 1000)) * 3).astype(dtype)
    target = rng.integers(0, 1000, 8)
    target[[2, 5]] = -100  # ignored rows: loss 0, gradient 0
    dloss = rng.standard_normal(8).astype(dtype)
    want_loss, want_grad = reference_cross_entropy(x, target, dloss.astype(np.float64))
    b = BACKENDS[name]
    loss = b.cross_entropy(x, target)
    assert loss.shape == (8,) and loss.dtype == x.dtype
    np.testing.assert_allclose(loss, want_loss, rtol=rtol, atol=atol)
    loss2, grad = b.cross_entropy_fwd_bwd(x, target, dloss)
    assert grad.shape == x.shape and grad.dtype == x.dtype
    np.testing.assert_array_equal(loss2, loss)
    np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=atol)
    assert (loss[[2, 5]] == 0).all() and (grad[[2, 5]] == 0).all()


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("name", CORRECT)
def test_cross_entropy_large_margin_and_masked_target(name, dtype):
    """[0, 200] with target 0: loss exactly 200 and a finite gradient; a target at -inf: loss inf."""
    from softmax_bench.core.dtypes import np_dtype

    b = BACKENDS[name]
    x = np.array([[0.0, 200.0], [-np.inf, 1.0]]).astype(np_dtype(dtype))
    loss, grad = b.cross_entropy_fwd_bwd(x, np.array([0, 0]), np.ones(2, np_dtype(dtype)))
    assert float(loss[0]) == 200.0  # log(1 + e^-200) - (0 - 200): exactly 200, never inf
    assert np.isfinite(grad[0].astype(np.float64)).all() and float(grad[0, 0]) == -1.0 and float(grad[0, 1]) == 1.0
    assert float(loss[1]) == np.inf  # the target's logit is -inf
    assert float(b.cross_entropy(x, np.array([0, 0]))[0]) == 200.0


def test_naive_cross_entropy_overflows_where_the_others_do_not():
    """The negative control's unshifted sum overflows on the large-margin row."""
    x = np.array([[0.0, 200.0]], dtype=np.float32)
    assert not np.isfinite(BACKENDS["numba-naive"].cross_entropy(x, np.array([0]))[0])


@pytest.mark.parametrize("name", CORRECT)
def test_cross_entropy_rejects_targets_out_of_range(name):
    """A target outside [0, n) that is not ignore_index is an error, not a stray read."""
    with pytest.raises(ValueError, match="out of range"):
        BACKENDS[name].cross_entropy(np.zeros((2, 5), np.float32), np.array([0, 5]))


# --------------------------------------------------------------------------- import and availability


# --------------------------------------------------------------------------- the output pool


def outputs_survive(pool: "kernels.OutputPool") -> list[str]:
    """What goes wrong when outputs of 1 MiB come from ``pool`` and the caller
    holds some of them (whole or a view) across later calls: [] when nothing."""
    name = BACKENDS["numba-2pass-reload"]
    x = np.random.default_rng(0).standard_normal((4, 65536)).astype(np.float32)
    problems = []
    kept = name.softmax(x)
    row = name.softmax(x)[2]  # only a view of the second output is held
    expected_kept, expected_row = kept.copy(), row.copy()
    for _ in range(4):
        name.softmax(-x)  # outputs dropped at once: their memory may be reused
    if not np.array_equal(kept, expected_kept):
        problems.append("a held output was overwritten")
    if not np.array_equal(row, expected_row):
        problems.append("a held view's memory was overwritten")
    return problems


def test_pooled_outputs_are_reused_only_when_nothing_refers_to_them(monkeypatch):
    """The pool reuses a dropped output's memory, never one the caller still
    holds (through a view either); a pool that ignores the references fails
    the same check (the negative control)."""
    monkeypatch.setattr(kernels, "POOL_MIN_BYTES", 0)
    pool = kernels.OutputPool()
    monkeypatch.setattr(kernels, "OUTPUTS", pool)
    assert outputs_survive(pool) == []
    BACKENDS["numba-2pass-reload"].release()
    assert pool._free == []
    x = np.ones((4, 65536), np.float32)
    first = BACKENDS["numba-2pass-reload"].softmax(x).ctypes.data
    assert BACKENDS["numba-2pass-reload"].softmax(x).ctypes.data == first  # dropped, then reused

    class ReusesAlways(kernels.OutputPool):
        """A pool that hands out one buffer whatever refers to it."""

        def empty_like(self, a):
            if not self._free:
                self._free.append(kernels.output_like(a))
            return self._free[0]

    careless = ReusesAlways()
    monkeypatch.setattr(kernels, "OUTPUTS", careless)
    assert outputs_survive(careless) == ["a held output was overwritten", "a held view's memory was overwritten"]


def test_peak_memory_counts_a_pooled_output(monkeypatch):
    """The engine empties the pool (Backend.release) before it measures peak
    memory: the figure includes the output, as for a backend that allocates
    each time. Without the release, the output's reused memory goes
    uncounted (the negative control)."""
    from softmax_bench.measure import clock, timing

    monkeypatch.setattr(kernels, "POOL_MIN_BYTES", 0)
    budget = clock.Budget(warmup_s=0.0, warmup_calls=1, min_sample_s=0.001, repeats=3, min_repeats=3, max_s=0.05)
    nbytes = 64 * 8192 * 4

    def peak():
        result = timing.measure("numba-2pass-reload", "cpu", "float32", 64, 8192, "warm", budget=budget, with_copy=False)
        return result["peak_library_bytes"]

    assert peak() >= nbytes
    monkeypatch.setattr(kernels.OutputPool, "release", lambda self: None)
    assert peak() < nbytes / 2


def test_listing_does_not_import_numba():
    """Loading the registry (softmax-bench list) registers the backends without importing numba."""
    code = ("import sys; from softmax_bench import load_backends; r = load_backends(); "
            "assert 'numba-2pass' in r.names(), r.names(); assert 'numba' not in sys.modules; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


def test_unavailable_without_numba_with_the_reason():
    """Without numba the backends are listed as unavailable, with the install hint."""
    code = ("import sys; sys.modules['numba'] = None; "  # as if numba were not installed
            "from softmax_bench import load_backends; r = load_backends(); print(r.unavailable('numba-3pass', 'cpu'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.stdout.strip() == "numba is not installed (pip install 'softmax-bench[numba]')", proc.stdout + proc.stderr


# --------------------------------------------------------------------------- one row split across threads

SPLIT_PLANTED = (str(TESTS / "plugins" / "numba_split_merge.py"),)
needs_threads = pytest.mark.skipif(numba.get_num_threads() < 2, reason="a row splits only with 2+ numba threads")


def split_rows(kind: str, dtype, n: int = 100_000) -> np.ndarray:
    """One row of n elements whose segments have different maxima, with the suite's edge contents."""
    x = (3 * np.random.default_rng(7).standard_normal((1, n))).astype(dtype)
    x[0, : n // 2] -= 40  # the first segment's max well below the row's: the merge must rescale it
    if kind == "masked_prefix":
        x[0, : n // 2 + 5] = -np.inf  # a whole segment masked, and a little of the next
    elif kind == "all_masked":
        x[:] = -np.inf
    elif kind == "inf":
        x[0, 10] = np.inf
    elif kind == "nan":
        x[0, n - 3] = np.nan
    return x


@needs_threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["randn", "masked_prefix", "all_masked", "inf", "nan"])
@pytest.mark.parametrize("algorithm", ["THREE_PASS", "TWO_PASS"])
def test_split_row_matches_the_unsplit_kernel(algorithm, kind, dtype):
    """A row split across threads gives the unsplit kernel's softmax (to rounding), edge cases included."""
    x = split_rows(kind, dtype)
    algo = getattr(kernels, algorithm)
    split = kernels.drive(kernels.SOFTMAX, algo, x)
    params = kernels.exp_params(x.dtype.name)
    whole = np.empty_like(x)
    no_target, no_values, no_limits = kernels._placeholders(x.dtype)
    kernels._drive_serial(kernels.SOFTMAX, algo, x, x, no_target, no_values, -100, whole, no_values, no_limits,
                          params.constants, *params.poly)
    np.testing.assert_allclose(split, whole, rtol=20 * np.finfo(dtype).eps, atol=0, equal_nan=True)


@needs_threads
def test_suite_catches_a_flawed_segment_merge():
    """The two-pass kernel with a merge that forgets to rescale segments fails the suite's
    long-row case (split across threads), and the shipped kernel passes it. (The three-pass
    merge takes sums all at the one row max: there is no rescale to forget.)"""
    planted, shipped = InProcessExecutor(), InProcessExecutor()
    case = cases.get("vocab_128256")
    bad = run_case(planted, Target("split-merge-numba-2pass", "cpu", "float32"), case, "softmax", SPLIT_PLANTED)
    assert bad["passed"] is False, bad
    good = run_case(shipped, Target("numba-2pass", "cpu", "float32"), case, "softmax")
    assert good["passed"] is True, good["reason"]


def test_factory_made_kernel_helpers_have_names_of_their_own():
    """numba names a compiled function after its qualname plus a per-process counter: helpers a
    factory makes under one shared qualname can be linked in place of each other across entry
    points cached by different processes (_numba_common._jit_named). Each must have its own."""
    pytest.importorskip("numba")
    from softmax_bench.backends import _numba_common as k

    made = [k._sum_exp, k._sum_exp_plain, k._sum_values, k._sum_values_plain, k._sum_naive_exp, k._sum_products,
            k._sum_plain, k._online, k._online_plain, k._online_store, k._online_store_plain, k.SPLIT_SOFTMAX]
    names = [f.py_func.__qualname__ for f in made]
    assert len(set(names)) == len(names), names
    assert "<locals>" not in "".join(names)
