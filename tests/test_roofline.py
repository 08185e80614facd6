"""The roofline beside the copy (issue 23): the exp count table, the ceiling that binds,
and the fields finalize adds (and leaves null where the exp count is unknown)."""

from __future__ import annotations

import pytest

from softmax_bench.measure.timing import roofline
from softmax_bench.measure.planning import finalize
from softmax_bench.core.registry import load


def test_exp_counts_known_for_our_kernels_and_unknown_for_libraries():
    registry = load()
    counts = {name: registry.get(name).exps_per_element for name in
              ("numba-3pass", "numba-3pass-reload", "numba-2pass", "numba-2pass-reload", "torch-fused")}
    assert counts["numba-3pass"] == {("softmax", "fwd"): 2}
    assert counts["numba-3pass-reload"] == {("softmax", "fwd"): 1}
    assert counts["numba-2pass"] == {("softmax", "fwd"): 2}
    assert counts["numba-2pass-reload"] == {("softmax", "fwd"): 1}
    assert counts["torch-fused"] == {}  # a library's softmax: unknown, not guessed


def test_a_bad_exp_count_is_a_contract_error():
    from softmax_bench import Backend, BackendError

    with pytest.raises(BackendError, match="exps_per_element has key 'softmax'"):
        Backend(name="b", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=lambda x, axis=-1: x,
                exps_per_element={"softmax": 2})


def test_roofline_is_the_slower_ceiling():
    # 1 GB at 10 GB/s is 0.1 s; 1e9 exps at 1e9/s is 1 s: the exp binds.
    assert roofline(1e9, 10.0, 1e9, 1e9) == (1.0, "exp")
    assert roofline(1e9, 10.0, 1e8, 1e10) == (0.1, "copy")
    assert roofline(1e9, 10.0, None, 1e9) == (None, None)


def timing(backend, median_s, exps=None, exp_rate=None):
    return {"kind": "timing", "backend": backend, "device": "cpu", "dtype": "float32", "rows": 64,
            "vocab": 256000, "mode": "cold", "median_s": median_s, "gbps": 1.0, "bytes": 2 * 64 * 256000 * 4,
            "copy_gbps": 20.0, "exps": exps, "exp_rate": exp_rate}


def test_finalize_sets_the_roofline_fraction_and_which_ceiling_binds():
    n = 2 * 64 * 256000
    kernel = timing("numba-3pass", 0.02, exps=n, exp_rate=n / 0.01)  # exp ceiling 0.01 s, copy 0.0066 s
    library = timing("torch", 0.02)
    finalize([kernel, library])
    assert kernel["roofline_binds"] == "exp"
    assert abs(kernel["roofline_s"] - 0.01) < 1e-12 and abs(kernel["roofline_fraction"] - 0.5) < 1e-9
    assert library["roofline_s"] is None and library["roofline_fraction"] is None


def test_the_exp_rate_is_measured_for_numpy_and_for_the_numba_kernels_own_exp():
    # The numba branch once passed one half of the polynomial pair and raised a TypingError in
    # every numba timing of `run --quick`; only a real measurement shows that.
    pytest.importorskip("numba")
    from softmax_bench.core import adapters
    from softmax_bench.measure import clock
    from softmax_bench.measure.timing import exp_rate

    budget = clock.Budget(warmup_s=0.0, warmup_calls=1, min_sample_s=0.001, repeats=3, min_repeats=3, max_s=0.05)
    numpy = adapters.get("numpy")
    for own_exp in (None, load().get("numba-3pass").exp):
        rate = exp_rate(numpy, "cpu", "float32", 1, budget, lambda out: out, own_exp)
        assert rate is not None and 1e6 < rate < 1e12, (own_exp, rate)
