"""Vocabulary-parallel softmax and cross-entropy on torch.distributed (gloo, CPU processes).

The two built-in vocab-parallel backends must give what the single-process
max-shift backend gives, within a few ULP, on inputs built to break a
sharded softmax (a masked shard, the max in the last shard, +inf or NaN in
one shard only, ties across ranks, a target in another rank's shard,
ignored rows, 50257 columns over 4 ranks); Megatron-LM's own unit test is
reproduced; a planted flawed plugin must be caught; ranks that hang, die or
raise must become ``BackendFailure``s with no process of the group left
behind. Groups are started once per module and world size and reused.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

from softmax_bench.distributed import sharded as d  # noqa: E402
from softmax_bench.core import dtypes as dt  # noqa: E402
from softmax_bench.backends import max_shift as ms  # noqa: E402
from softmax_bench.backends._numpy_common import log_softmax_vjp as ms_log_softmax_vjp  # noqa: E402
from softmax_bench.backends._numpy_common import softmax_vjp as ms_softmax_vjp  # noqa: E402
from softmax_bench.core.isolation import BackendFailure  # noqa: E402
from softmax_bench.core.registry import import_plugin_file  # noqa: E402
from softmax_bench.measure.clock import QUICK_BUDGET, Budget  # noqa: E402

from helpers import plugin  # noqa: E402

BACKENDS = ("vocab-parallel-megatron", "vocab-parallel-fused")
FLAWED = (plugin("vocab_parallel_flawed"),)
FAULTS = (plugin("vocab_parallel_faults"),)
SLACK_ULP = 4
MEGATRON_LOSSES = np.tile([10.2309, 8.2309, 6.2309, 4.2309], 4)


# --------------------------------------------------------------------------- processes


def _children() -> dict[int, str]:
    """Live child processes of this process, {pid: command line} (from /proc; zombies excluded)."""
    me, found = os.getpid(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == me and fields[0] != "Z":
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue  # it ended while we looked
    return found


def _leftover(before: dict[int, str]) -> dict[int, str]:
    """Children started since ``before`` and still alive, but for multiprocessing's resource tracker."""
    return {pid: cmd for pid, cmd in _children().items() if pid not in before and "resource_tracker" not in cmd}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@pytest.fixture(scope="module")
def groups():
    """One gloo group of 2 ranks and one of 4, started on first use and shared by the module's tests."""
    started: dict[int, d.RankGroup] = {}

    def get(world_size: int) -> d.RankGroup:
        if world_size not in started:
            started[world_size] = d.RankGroup(world_size, "cpu", timeout=60)
        return started[world_size]

    yield get
    before = {pid for group in started.values() for pid in group.pids}
    for group in started.values():
        group.close()
    assert not [pid for pid in before if _alive(pid)]


# --------------------------------------------------------------------------- comparison


def ulp_error(got: np.ndarray, exact: np.ndarray, dtype: str) -> np.ndarray:
    """|got - exact| in units of the last place of ``dtype`` at ``exact`` (floored at the smallest normal).

    Equal special values (the same inf, both NaN) count 0; a special value
    where the other is not counts inf.
    """
    fi = dt.info(dtype)
    digits = -round(math.log2(fi.eps))
    with np.errstate(all="ignore"):
        magnitude = np.where(np.isfinite(exact), np.abs(exact), 0.0)
        _, exponent = np.frexp(magnitude)
        ulp = np.maximum(np.where(magnitude > 0, np.ldexp(1.0, exponent - 1 - digits), 0.0), fi.tiny)
        same = (got == exact) | (np.isnan(got) & np.isnan(exact))
        err = np.where(same, 0.0, np.abs(got - exact) / ulp)
    return np.where(np.isnan(err), np.inf, err)


def _specials(got: np.ndarray, single: np.ndarray, what: str) -> tuple[np.ndarray, Optional[str]]:
    """Where max-shift gives NaN or +-inf, and the first place the sharded output puts a special value elsewhere."""
    special = ~np.isfinite(single)
    mismatch = special & ~((got == single) | (np.isnan(got) & np.isnan(single)))
    mismatch |= ~special & ~np.isfinite(got)
    if mismatch.any():
        r, c = np.argwhere(mismatch)[0]
        return special, f"{what}: got {float(got[r, c])!r} at row {r}, column {c} where max-shift gives {float(single[r, c])!r}"
    return special, None


def _as_2d(*arrays: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64).reshape(len(a), -1) if np.ndim(a) > 1
            else np.asarray(a, dtype=np.float64).reshape(-1, 1) for a in arrays]


def disagreement(got: np.ndarray, single: np.ndarray, exact: np.ndarray, dtype: str, what: str,
                 bound: Optional[np.ndarray] = None) -> Optional[str]:
    """Why the sharded output ``got`` is not as good as max-shift's ``single`` (None when it is).

    Special values (NaN, +-inf) must be where max-shift puts them. Values
    (softmax, log_softmax, the loss): each row's worst error against
    ``exact`` (float64) may exceed max-shift's worst on that row by at most
    ``SLACK_ULP`` units in the last place. Gradients (``bound`` given): their
    entries cancel, and the error is the sum's over the vocabulary, whose
    rounding depends on the summation order (torch's blocked sums and NumPy's
    pairwise ones differ by luck), so each error must lie within the
    Blanchard-Higham-Higham bound ``bound``, as the suite's tolerance has it.
    """
    got, single, exact = _as_2d(got, single, exact)
    special, reason = _specials(got, single, what)
    if reason:
        return reason
    if bound is not None:
        bound = _as_2d(bound)[0]
        with np.errstate(all="ignore"):
            ratio = np.where(special, 0.0, np.abs(got - exact) / bound)
            single_ratio = np.where(special, 0.0, np.abs(single - exact) / bound)
        ratio[np.isnan(ratio)] = np.inf  # a NaN must fail, never slip past the comparison
        r, c = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        if ratio[r, c] > 1:
            return (f"{what}: error {abs(got[r, c] - exact[r, c]):.3g} is {ratio[r, c]:.3g}x the BHH bound at row {r}, "
                    f"column {c} (max-shift's worst: {single_ratio.max():.3g}x): got {got[r, c]:.6g}, exact {exact[r, c]:.6g}")
        return None
    e_got, e_single = ulp_error(got, exact, dtype), ulp_error(single, exact, dtype)
    e_got[special], e_single[special] = 0.0, 0.0
    worst_got, worst_single = e_got.max(axis=1), e_single.max(axis=1)
    bad = worst_got > worst_single + SLACK_ULP
    if bad.any():
        r = int(np.argmax(np.where(bad, worst_got - worst_single, -np.inf)))
        c = int(np.argmax(e_got[r]))
        return (f"{what}: error {worst_got[r]:.3g} ULP at row {r}, column {c} (max-shift's worst on that row: "
                f"{worst_single[r]:.3g} ULP): got {got[r, c]:.6g}, exact {exact[r, c]:.6g}")
    return None


def gradient_bound(op: str, dtype: str, x64: np.ndarray, given: dict, exact: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The BHH bound (times 2) on each gradient entry, as the suite's tolerance: the rounding of the
    shift (2 + |x_i - max| + log s units, gradients at x), of the given output (3 units, explicit VJPs),
    and n units of the accumulation precision for the sum over the vocabulary."""
    fi, acc = dt.info(dtype), dt.accumulation_info(dtype)
    u, n = fi.u, x64.shape[1]
    with np.errstate(all="ignore"):
        if op in ("softmax_vjp", "log_softmax_vjp"):
            y = np.asarray(given["y"], np.float64)
            rel = 3 * u + n * acc.u
            if op == "softmax_vjp":
                g = np.abs(np.sum(dy * y, axis=1, keepdims=True))
                weight = np.sum(np.abs(dy) * y * rel, axis=1, keepdims=True)
                return 2 * (rel * y * (np.abs(dy) + g) + y * weight + u * np.abs(exact)) + fi.tiny * (1 + np.abs(dy))
            p = np.exp(y)
        else:
            finite = np.isfinite(x64)
            m = np.max(np.where(finite, x64, -np.inf), axis=1, keepdims=True)
            m = np.where(np.isfinite(m), m, 0.0)
            shift = np.where(finite, np.abs(x64 - m), 0.0)
            log_s = np.abs(np.log(np.sum(np.where(finite, np.exp(-shift), 0.0), axis=1, keepdims=True)))
            rel = (2 + shift + np.where(np.isfinite(log_s), log_s, 0.0)) * u + n * acc.u
            p = np.nan_to_num(ms.softmax(x64), nan=0.0)  # rows without an answer (all -inf) are judged by pattern
        total = np.sum(np.abs(dy), axis=1, keepdims=True)
        return 2 * (rel * p * total + u * (np.abs(dy) + np.abs(exact))) + fi.tiny * (1 + np.abs(dy))


# --------------------------------------------------------------------------- inputs and single-process answers


def hostile(vocab: int, world_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, target, dloss): rows built to break a sharded softmax, for ``world_size`` shards of ``vocab``."""
    rng = np.random.default_rng(seed)
    bounds = d.split(vocab, world_size)
    (a0, b0), (a1, b1), (al, bl) = bounds[0], bounds[1], bounds[-1]
    x = rng.standard_normal((10, vocab)) * 3
    x[1, a0:b0] = -np.inf  # rank 0's whole shard masked
    x[2, bl - 1] = 40.0  # the row max in the last column of the last shard
    x[3, a1 + 3] = np.inf  # +inf in rank 1's shard only
    x[4, a1 + 5] = np.nan  # NaN in rank 1's shard only
    x[5, :] = -30.0  # BHH's tail: one 0 in the last shard, the rest tiny (s ~ n e^-30)
    x[5, al] = 0.0
    x[6, a0 + 2] = x[6, a1 + 7] = 25.0  # a tie across ranks 0 and 1: the lowest index owns the max
    x[7, :] = -np.inf  # fully masked: NaN, as max-shift
    x[8, : al] = -np.inf  # every shard but the last masked
    x[9] = 1e4 + rng.standard_normal(vocab)  # large offset
    target = np.array([bl - 1, a0 + 1, bl - 1, a0, a1, -100, a1 + 7, -100, al + 1, a1 + 2], dtype=np.int64)
    dloss = rng.uniform(0.5, 2.0, 10)
    return x, target, dloss


def _rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(a, np.float64).astype(dt.np_dtype(dtype))


def single_and_exact(op: str, dtype: str, x: np.ndarray, target: np.ndarray, dloss: np.ndarray, dy: np.ndarray):
    """(inputs for run_sharded, max-shift's answer in ``dtype``, the float64 answer) for ``op``."""
    xd = _rounded(x, dtype)
    x64 = xd.astype(np.float64)
    dld = _rounded(dloss, dtype)
    dyd = _rounded(dy, dtype)
    with np.errstate(all="ignore"):
        if op in ("softmax", "log_softmax"):
            return {"x": x}, getattr(ms, op)(xd), getattr(ms, op)(x64)
        if op in ("softmax_vjp", "log_softmax_vjp"):
            forward = "softmax" if op == "softmax_vjp" else "log_softmax"
            y = getattr(ms, forward)(xd)
            vjp = ms_softmax_vjp if op == "softmax_vjp" else ms_log_softmax_vjp
            return ({"y": y.astype(np.float64), "dy": dy}, vjp(y, dyd),
                    vjp(y.astype(np.float64), dyd.astype(np.float64)))
        rows = np.arange(len(target))
        keep = target != -100
        t = np.where(keep, target, 0)
        onehot = np.zeros_like(x64)
        onehot[rows[keep], t[keep]] = 1.0
        if op == "ce_grad":  # the suite's p - onehot, dy = -onehot
            minus = -onehot
            return ({"x": x, "dy": minus}, ms_log_softmax_vjp(ms.log_softmax(xd), minus.astype(xd.dtype)),
                    ms_log_softmax_vjp(ms.log_softmax(x64), minus))
        if op == "cross_entropy":
            def loss(ls):
                return np.where(keep, -ls[rows, t], 0).astype(ls.dtype)

            return {"x": x, "target": target}, loss(ms.log_softmax(xd)), loss(ms.log_softmax(x64))

        def grad(p, dl):
            return np.where(keep[:, None], (p - onehot.astype(p.dtype)) * dl.reshape(-1, 1), 0).astype(p.dtype)

        return ({"x": x, "target": target, "dloss": dloss}, grad(ms.softmax(xd), dld),
                grad(ms.softmax(x64), dld.astype(np.float64)))


GRADIENTS = ("softmax_vjp", "log_softmax_vjp", "ce_grad", "cross_entropy_grad")
ALL_OPS = ("softmax", "log_softmax", "softmax_vjp", "log_softmax_vjp", "ce_grad", "cross_entropy", "cross_entropy_grad")


def check_op(group: d.RankGroup, backend: str, op: str, dtype: str, x, target, dloss, plugin_files=()) -> Optional[str]:
    """Run ``op`` sharded over ``group`` and compare it with max-shift; the disagreement, or None."""
    dy = np.random.default_rng(1).standard_normal(x.shape)
    given, single, exact = single_and_exact(op, dtype, x, target, dloss, dy)
    got = d.run_sharded(backend, plugin_files, "cpu", dtype, op, given, group.world_size, 60, group=group)
    assert got.dtype == dt.np_dtype(dtype) and got.shape == np.shape(single)
    bound = None
    if op in GRADIENTS:
        x64 = _rounded(x, dtype).astype(np.float64)
        if op in ("softmax_vjp", "log_softmax_vjp"):
            cot = _rounded(given["dy"], dtype).astype(np.float64)
        elif op == "ce_grad":
            cot = np.asarray(given["dy"], np.float64)
        else:  # dlogits = (p - onehot) * dloss: the log_softmax VJP with dy = -onehot * dloss
            keep = target != -100
            cot = np.zeros_like(x64)
            cot[np.flatnonzero(keep), target[keep]] = -_rounded(dloss, dtype).astype(np.float64)[keep]
        bound = gradient_bound(op, dtype, x64, given, np.asarray(exact, np.float64), cot)
    return disagreement(got, single, exact, dtype, f"{backend} {op} {dtype} on {group.world_size} ranks", bound)


# --------------------------------------------------------------------------- shards


def test_split_is_contiguous_and_even_like_array_split():
    bounds = d.split(50257, 4)
    assert [b - a for a, b in bounds] == [len(p) for p in np.array_split(np.arange(50257), 4)] == [12565, 12564, 12564, 12564]
    assert bounds[0][0] == 0 and bounds[-1][1] == 50257
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(3))
    assert d.split(3, 4) == [(0, 1), (1, 2), (2, 3), (3, 3)]  # a rank may hold no column
    shard = d.Shard.of(50257, 1, 4)
    assert (shard.start, shard.stop, shard.size, shard.vocab) == (12565, 25129, 12564, 50257)
    with pytest.raises(ValueError, match="world_size"):
        d.split(10, 0)


def test_launch_env_reads_torchrun_variables():
    assert d.launch_env({}) is None and d.writes_results({}) and d.results_suffix({}) == ""
    env = {"RANK": "5", "WORLD_SIZE": "8", "MASTER_ADDR": "node0", "MASTER_PORT": "29400", "LOCAL_RANK": "1",
           "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "1"}
    launch = d.launch_env(env)
    assert (launch.rank, launch.world_size, launch.local_rank, launch.node_rank) == (5, 8, 1, 1)
    assert not d.writes_results(env) and d.writes_results({**env, "LOCAL_RANK": "0"})
    assert d.results_suffix(env) == "-node1"


# --------------------------------------------------------------------------- Megatron's unit test


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("backend", BACKENDS)
def test_megatron_unit_test_losses(groups, backend, world_size):
    """tests/unit_tests/tensor_parallel/test_cross_entropy.py: each of 4 ranks holds torch.range(0, 7)
    repeated (16, 4), i.e. global logits[i, j] = j % 8 over 128 columns; targets arange(0, 32, 2).
    Loss = log(16 * sum_k e^k) - target logit: 10.2309, 8.2309, 6.2309, 4.2309, four times."""
    x = np.tile(np.arange(8.0), (16, 16))
    target = np.arange(0, 32, 2)
    loss = d.run_sharded(backend, (), "cpu", "float32", "cross_entropy", {"x": x, "target": target},
                         world_size, 60, group=groups(world_size))
    closed = math.log(16 * sum(math.exp(k) for k in range(8))) - (target % 8)
    np.testing.assert_allclose(loss, closed, rtol=2e-7, atol=0)
    np.testing.assert_allclose(loss, MEGATRON_LOSSES, rtol=0, atol=5e-5)  # Megatron's table, to its 4 decimals
    # Megatron's backward: softmax minus the one-hot at the target, here for dloss = 1.
    grad = d.run_sharded(backend, (), "cpu", "float32", "cross_entropy_grad",
                         {"x": x, "target": target, "dloss": np.ones(16)}, world_size, 60, group=groups(world_size))
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    torch.nn.functional.cross_entropy(xt, torch.from_numpy(target), reduction="sum").backward()
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=0, atol=1e-7)


# --------------------------------------------------------------------------- hostile inputs


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_inputs_match_max_shift_float32(groups, backend, world_size):
    x, target, dloss = hostile(50257, world_size)  # 50257 is not divisible by 2 or 4
    problems = [check_op(groups(world_size), backend, op, "float32", x, target, dloss) for op in ALL_OPS]
    assert [p for p in problems if p] == []


@pytest.mark.parametrize("dtype", ["float64", "bfloat16", "float16"])
def test_hostile_inputs_match_max_shift_other_dtypes(groups, dtype):
    x, target, dloss = hostile(1001, 4, seed=2)
    if dtype == "float16":
        x[9] -= 1e4 - 5  # 1e4 + randn has no room in float16; keep the row, not the offset
    problems = []
    for backend in BACKENDS:
        for op in ALL_OPS:
            problems.append(check_op(groups(4), backend, op, dtype, x, target, dloss))
    assert [p for p in problems if p] == []


def test_special_rows_behave_as_max_shift(groups):
    """Spelled out: what the hostile rows give, on 4 ranks."""
    x, target, _ = hostile(50257, 4)
    sm = d.run_sharded("vocab-parallel-fused", (), "cpu", "float32", "softmax", {"x": x}, 4, 60, group=groups(4))
    ls = d.run_sharded("vocab-parallel-fused", (), "cpu", "float32", "log_softmax", {"x": x}, 4, 60, group=groups(4))
    loss = d.run_sharded("vocab-parallel-megatron", (), "cpu", "float32", "cross_entropy",
                         {"x": x, "target": target}, 4, 60, group=groups(4))
    a1 = d.split(50257, 4)[1][0]
    assert not np.isnan(sm[[0, 1, 2, 5, 6, 8]]).any()  # a masked shard is no NaN
    assert np.all(sm[1, : d.split(50257, 4)[0][1]] == 0)
    assert sm[3, a1 + 3] == 1 and sm[3].sum() == 1  # one +inf: the one-hot limit
    assert np.isnan(sm[4]).all() and np.isnan(ls[4]).all() and np.isnan(loss[4])  # NaN in one shard: whole row
    assert np.isnan(sm[7]).all()  # fully masked row: NaN, like max-shift
    assert ls[5, d.split(50257, 4)[-1][0]] < 0  # log_softmax of the lone 0 is -n e^-30, not 0
    assert sm[6, 2] == sm[6, a1 + 7]  # the tie: both maxima get the same probability
    assert loss[1] == np.inf  # target at a -inf logit
    assert loss[5] == 0 and loss[7] == 0  # ignore_index rows


def test_fewer_columns_than_ranks_empty_and_other_axes(groups):
    g = groups(4)
    x = np.array([[1.0, 2.0, 3.0], [0.0, -np.inf, 5.0]])  # 3 columns over 4 ranks: rank 3 holds none
    for op in ("softmax", "log_softmax"):
        out = d.run_sharded("vocab-parallel-megatron", (), "cpu", "float32", op, {"x": x}, 4, 60, group=g)
        np.testing.assert_allclose(out, getattr(ms, op)(x.astype(np.float32)), rtol=2.5e-7, atol=0)  # exp differs by 1 ULP
    loss = d.run_sharded("vocab-parallel-fused", (), "cpu", "float32", "cross_entropy",
                         {"x": x, "target": np.array([2, 1])}, 4, 60, group=g)
    assert loss[1] == np.inf and abs(loss[0] - (np.log(np.exp(x[0]).sum()) - 3)) < 1e-6
    empty = d.run_sharded("vocab-parallel-fused", (), "cpu", "float32", "softmax", {"x": np.zeros((2, 0))}, 4, 60, group=g)
    assert empty.shape == (2, 0)
    x3 = np.random.default_rng(3).standard_normal((2, 500, 3)) * 5  # softmax over axis 1 of a 3-D input
    out = d.run_sharded("vocab-parallel-megatron", (), "cpu", "float32", "softmax", {"x": x3}, 4, 60, axis=1, group=g)
    np.testing.assert_allclose(out, ms.softmax(x3.astype(np.float32), axis=1), rtol=2e-6, atol=1e-30)


def test_out_of_range_target_is_refused(groups):
    with pytest.raises(BackendFailure, match="rank 0: IndexError: target 7 is out of range for a vocabulary of 4"):
        d.run_sharded("vocab-parallel-megatron", (), "cpu", "float32", "cross_entropy",
                      {"x": np.zeros((1, 4)), "target": np.array([7])}, 2, 60, group=groups(2))


# --------------------------------------------------------------------------- planted flaws


def test_flawed_local_shift_is_caught(groups):
    x, target, dloss = hostile(50257, 2)
    for op in ("softmax", "log_softmax"):
        # All hostile rows: the masked shard's local max is -inf, and -inf - -inf is NaN.
        reason = check_op(groups(2), "vocab-parallel-flawed", op, "float32", x, target, dloss, FLAWED)
        assert reason is not None and reason.startswith(
            f"vocab-parallel-flawed {op} float32 on 2 ranks: got nan at row 1, column 0 where max-shift gives "), reason
        # A plain random row: the shards' maxima differ, and the unscaled sums are wrong by orders of magnitude.
        reason = check_op(groups(2), "vocab-parallel-flawed", op, "float32", x[:1], target[:1], dloss[:1], FLAWED)
        assert reason is not None and reason.startswith(f"vocab-parallel-flawed {op} float32 on 2 ranks: error "), reason
        assert " ULP at row 0, column " in reason and "(max-shift's worst on that row: " in reason, reason
        print(reason)
    # On one process the flaw vanishes (there is only one local max): the check is about sharding.
    flawed = import_plugin_file(FLAWED[0])
    single = flawed.softmax(torch.tensor(x[[0]], dtype=torch.float32)).numpy()
    np.testing.assert_allclose(single, ms.softmax(x[[0]].astype(np.float32)), rtol=1e-5)


def test_wrong_shape_and_disagreeing_loss_are_invalid(groups):
    g = groups(2)
    g.start()
    pids = g.pids
    with pytest.raises(BackendFailure, match=r"rank 1: softmax on rank 1: returned shape \(2, 4\), expected \(2, 5\)") as info:
        d.run_sharded("vocab-parallel-wrong-shape", FAULTS, "cpu", "float32", "softmax", {"x": np.ones((2, 10))}, 2, 30,
                      group=g)
    # Every rank answered, so every collective completed: the group stays up for the next task.
    assert info.value.kind == "invalid" and g.pids == pids
    with pytest.raises(BackendFailure, match="rank 1's loss differs from rank 0's at row 0") as info:
        d.run_sharded("vocab-parallel-disagree", FAULTS, "cpu", "float32", "cross_entropy",
                      {"x": np.ones((2, 10)), "target": np.array([1, 2])}, 2, 30, group=g)
    assert info.value.kind == "invalid" and g.pids == pids


def test_not_vocab_parallel_is_refused_before_starting_anything():
    before = _children()
    with pytest.raises(ValueError, match="'max-shift' is not vocabulary-parallel"):
        d.run_sharded("max-shift", (), "cpu", "float32", "softmax", {"x": np.ones((1, 4))}, 2, 30)
    assert d.unavailable("max-shift", (), "cpu", 2) == "not vocabulary-parallel (parallel=None)"
    assert d.unavailable("vocab-parallel-fused", (), "cpu", 2) is None
    assert _leftover(before) == {}


# --------------------------------------------------------------------------- failures of ranks


@pytest.mark.parametrize("name, kind, reason", [
    ("vocab-parallel-hang", "timeout",
     "timed out after 3 s: rank 1 did not finish the task (waiting for it: rank 0 in all_reduce)"),
    ("vocab-parallel-killed", "crashed", "rank 1 died on SIGKILL"),
    ("vocab-parallel-exits", "crashed", "rank 1 exited with status 3"),
    ("vocab-parallel-raises", "raised", "rank 1: RuntimeError: NCCL error: unhandled system error (planted)"),
])
def test_a_failing_rank_fails_the_group_and_leaves_no_process(name, kind, reason):
    before = _children()
    group = d.RankGroup(2, "cpu", timeout=3)
    group.start()
    pids = group.pids
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    start = time.monotonic()
    with pytest.raises(BackendFailure) as info:
        d.run_sharded(name, FAULTS, "cpu", "float32", "softmax", {"x": np.ones((2, 8))}, 2, 3, group=group)
    elapsed = time.monotonic() - start
    assert info.value.kind == kind and info.value.reason.startswith(reason), info.value.reason
    assert elapsed < 3 + d.GRACE_S + 10  # within the timeout (plus the grace for the others' reasons, and the kill)
    assert not [pid for pid in pids if _alive(pid)] and group.pids == []
    assert _leftover(before) == {}
    group.close()


def test_an_owned_group_is_torn_down_on_failure_too():
    before = _children()
    with pytest.raises(BackendFailure, match="rank 1 died on SIGKILL"):
        d.run_sharded("vocab-parallel-killed", FAULTS, "cpu", "float32", "softmax", {"x": np.ones((2, 8))}, 2, 20)
    assert _leftover(before) == {}


# --------------------------------------------------------------------------- timing


def test_time_sharded_counts_collectives_and_bytes(groups):
    g = groups(2)
    rows, vocab = 8, 4096
    results = {}
    for backend in BACKENDS:
        for pass_ in ("fwd", "full"):
            results[backend, pass_] = d.time_sharded(backend, (), "cpu", "float32", "cross_entropy", pass_, rows,
                                                     vocab, 2, QUICK_BUDGET, group=g)
    mega, fused = results[BACKENDS[0], "fwd"], results[BACKENDS[1], "fwd"]
    for r in results.values():
        assert r["median_s"] > 0 and r["world_size"] == 2 and r["shards"] == [2048, 2048]
        assert r["repeats"] >= 3 and len(r["rank_median_s"]) == 2 and r["first_call_s"] > 0
        assert r["comm_median_s"] is not None and 0 < r["comm_share"]
    # Megatron: max, target logit, then [sum, count] of the max holders; fused: max, then [target logit, sum, count].
    assert mega["collectives"] == 3 and fused["collectives"] == 2
    assert mega["comm_bytes"] == fused["comm_bytes"] == rows * 4 * 4  # 4 float32 per row either way
    # The backward of the fused forward-backward needs no collective.
    assert results[BACKENDS[0], "full"]["collectives"] == 3 and results[BACKENDS[1], "full"]["collectives"] == 2
    bwd = d.time_sharded(BACKENDS[0], (), "cpu", "float32", "softmax", "bwd", rows, vocab, 2, QUICK_BUDGET, group=g)
    assert bwd["collectives"] == 1 and bwd["comm_bytes"] == rows * 4  # sum(dy * y)
    sm = d.time_sharded(BACKENDS[0], (), "cpu", "bfloat16", "softmax", "fwd", rows, vocab, 2, QUICK_BUDGET, group=g)
    assert sm["collectives"] == 2 and sm["comm_bytes"] == rows * 4 * 3  # half precision reduces in float32


def test_sharded_and_single_process_timings_go_through_the_one_timer(monkeypatch, tmp_path):
    """Both paths call ``clock.time_calls``: one process with its local loop, the ranks with an ``InStepSampler``.

    The sharded timing runs in this process (a group of one, joined in place as
    under torchrun), so the spy sees the ranks' calls too.
    """
    from softmax_bench.measure import clock, timing

    if dist.is_initialized():
        pytest.skip("this process already belongs to a torch.distributed group")
    assert timing.time_calls is clock.time_calls  # timing.py's name for the one timer
    real, samplers = clock.time_calls, []

    def spy(*args, **kwargs):
        samplers.append(type(kwargs.get("sampler")).__name__)
        return real(*args, **kwargs)

    monkeypatch.setattr(clock, "time_calls", spy)
    monkeypatch.setattr(timing, "time_calls", spy)
    # The group's meter wraps torch.distributed's collectives: put the originals back afterwards.
    for name in d.COLLECTIVES:
        if hasattr(dist, name):
            monkeypatch.setattr(dist, name, getattr(dist, name))
    monkeypatch.setattr(d, "_METER", None)
    budget = Budget(warmup_s=0.0, warmup_calls=1, min_sample_s=0.001, repeats=5, min_repeats=3, max_s=0.05)

    single = timing.measure("vocab-parallel-fused", "cpu", "float32", 4, 64, "warm", budget=budget, with_copy=False)
    assert samplers == ["NoneType"] and single["repeats"] >= 3

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        here = d.RankGroup(environ={"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "localhost"})
        sharded = d.time_sharded("vocab-parallel-fused", (), "cpu", "float32", "softmax", "fwd", 4, 64, 1, budget,
                                 group=here)
    finally:
        dist.destroy_process_group()
    # The op, then its collectives alone (comm_median_s): each by the one timer, with the in-step sampler.
    assert samplers == ["NoneType", "InStepSampler", "InStepSampler"]
    assert sharded["repeats"] >= 3 and sharded["median_s"] > 0 and sharded["collectives"] == 2
    assert sharded["comm_median_s"] > 0 and sharded["rank_median_s"][0] > 0 and sharded["mode"] == "warm"


def test_cold_mode_rotates_through_copies_of_each_ranks_inputs(groups, monkeypatch):
    monkeypatch.setenv("SOFTMAX_BENCH_LLC_BYTES", str(64 * 1024))
    rows, vocab = 8, 1024  # 16 KiB per rank's shard: 8 copies exceed twice the 64 KiB "cache"
    cold = d.time_sharded(BACKENDS[1], (), "cpu", "float32", "softmax", "fwd", rows, vocab, 2, QUICK_BUDGET,
                          group=groups(2), mode="cold", measure_comm=False)
    assert cold["mode"] == "cold" and cold["buffers"] == 8 and cold["llc_bytes"] == 64 * 1024
    assert cold["median_s"] > 0 and cold["collectives"] == 2
    assert d.cold_buffers(rows, vocab, 2, "float32", "warm", 64 * 1024) == 1
    with pytest.raises(ValueError, match="unknown mode 'lukewarm'"):
        d.time_sharded(BACKENDS[1], (), "cpu", "float32", "softmax", "fwd", rows, vocab, 2, mode="lukewarm")


def test_run_plans_both_modes_for_every_world_size_and_skips_what_cannot_be_cold(monkeypatch):
    """``run`` used to plan a distributed backend warm only and drop cold without a word."""
    from softmax_bench.distributed.plan import Groups, timing_units
    from softmax_bench.core.selection import Target
    from softmax_bench.core.sizes import Size

    target = Target(BACKENDS[1], "cpu", "float32")
    items = [(Size(8, 32000), mode, "softmax", "fwd") for mode in ("warm", "cold")]
    with Groups(timeout=30) as groups:
        units = timing_units([target], items, (), [2, 4], groups, QUICK_BUDGET)
        planned = sorted((u.identity.world_size, u.identity.mode) for u in units)
        assert planned == [(2, "cold"), (2, "warm"), (4, "cold"), (4, "warm")]
        # Two columns over 2 ranks need millions of copies to be cold: recorded as skipped, with the reason.
        monkeypatch.setenv("SOFTMAX_BENCH_LLC_BYTES", str(2**30))
        tiny = timing_units([target], [(Size(1, 2), "cold", "softmax", "fwd")], (), [2], groups, QUICK_BUDGET)
        assert len(tiny) == 1
        (record,) = tiny[0].run(None)  # a skipped unit starts no rank
        assert record["skipped"] is True and record["mode"] == "cold" and record["world_size"] == 2
        assert record["reason"].startswith("skipped: a cold cache needs")


# --------------------------------------------------------------------------- torchrun


TORCHRUN_SCRIPT = """
import json, sys
import numpy as np
from softmax_bench.distributed import sharded as d
from softmax_bench.measure.clock import QUICK_BUDGET

x = np.tile(np.arange(8.0), (16, 16))
loss = d.run_sharded("vocab-parallel-fused", (), "cpu", "float32", "cross_entropy",
                     {"x": x, "target": np.arange(0, 32, 2)}, 2, 60)
timing = d.time_sharded("vocab-parallel-megatron", (), "cpu", "float32", "cross_entropy", "fwd", 4, 1024, 2,
                        QUICK_BUDGET, measure_comm=False)
if d.writes_results():
    with open(sys.argv[1] + d.results_suffix() + ".json", "w") as f:
        json.dump({"loss": loss.tolist(), "collectives": timing["collectives"], "world_size": timing["world_size"],
                   "env": d.launch_env().__dict__}, f)
"""


def test_under_torchrun_each_process_is_a_rank(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(TORCHRUN_SCRIPT)
    out = tmp_path / "result"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2", "--standalone",
         str(script), str(out)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(tmp_path.glob("result*.json"))
    assert [p.name for p in written] == ["result-node0.json"]  # one writer per node: local rank 0
    result = json.loads(written[0].read_text())
    np.testing.assert_allclose(result["loss"], MEGATRON_LOSSES, rtol=0, atol=5e-5)
    assert result["collectives"] == 3 and result["world_size"] == 2
    assert result["env"]["local_rank"] == 0 and result["env"]["world_size"] == 2
