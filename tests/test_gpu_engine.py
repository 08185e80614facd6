"""What the first GPU runs needed from the engine, tested on the CPU.

Declared in-place backends, forward-only kernels, the time budget, inputs
drawn on all cores, exact references primed on all cores, and device memory
handed back after every timed unit. Each test says what fails it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import plugin
from softmax_bench.core import adapters
from softmax_bench.measure import cases, figures, clock, timing, workloads
from softmax_bench.measure.checks import prime_references
from softmax_bench.core.isolation import BackendFailure, InProcessExecutor
from softmax_bench.core.records import CheckRecord
from softmax_bench.core.results import ResultsFile
from softmax_bench.core.selection import Target
from softmax_bench.measure.suite import Unit, execute

TINY = clock.Budget(warmup_s=0.0, warmup_calls=1, min_sample_s=0.001, repeats=5, min_repeats=3, max_s=0.05)
IN_PLACE = plugin("in_place")
FORWARD_ONLY = plugin("forward_only")


# ------------------------------------------------------------ declared in-place backends

def test_a_declared_in_place_backend_is_timed_on_fresh_inputs_and_trusted():
    result = timing.measure("in-place-declared", "cpu", "float32", 4, 256, "warm", budget=TINY, with_copy=False,
                            plugin_files=(IN_PLACE,))
    # Without the refill before every call, calls 2.. would see zeros: verify would
    # find the output wrong (uniform rows) or the input mutated.
    assert result["suspect"] is None
    assert result["in_place"] is True and result["inner"] == 1


def test_an_undeclared_mutation_stays_suspect():
    result = timing.measure("in-place-undeclared", "cpu", "float32", 4, 256, "warm", budget=TINY, with_copy=False,
                            plugin_files=(IN_PLACE,))
    assert result["suspect"] and "mutates its input" in result["suspect"]
    assert result["in_place"] is None


def test_overwrites_input_names_timed_ops_only():
    from softmax_bench import Backend
    from softmax_bench.backend import BackendError

    with pytest.raises(BackendError, match="overwrites_input has 'ce_grad'"):
        Backend(name="x", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=np.exp,
                overwrites_input=("ce_grad",))


# ------------------------------------------------------------ forward-only kernels

def test_a_forward_only_torch_kernel_passes_check_with_its_gradient_not_available(cli, tmp_path):
    out = tmp_path / "c.json"
    status, _, err = cli("check", "--plugin", FORWARD_ONLY, "--backend", "forward-only", "--dtype", "float32",
                         "--case", "randn_scale_3", "--case", "masked_prefix", "--out", out)
    records = json.loads(out.read_text())["records"]
    gradients = [r for r in records if r["backend"] == "forward-only" and r["op"] in ("softmax_vjp", "log_softmax_vjp", "ce_grad")]
    # Before: exit 1, each gradient a FAIL with "element 0 of tensors does not require grad".
    assert status == 0, err
    assert gradients and all(r["passed"] is None and r["behaviour"] == "unavailable" for r in gradients)
    assert all("no autograd graph" in r["reason"] for r in gradients)
    assert all(r["passed"] for r in records if r["backend"] == "forward-only" and r["op"] == "softmax")


def test_a_forward_only_kernel_gradient_timing_is_skipped_with_the_reason(cli, tmp_path):
    out = tmp_path / "t.json"
    status, _, _ = cli("run", "--plugin", FORWARD_ONLY, "--backend", "forward-only", "--sizes", "4x512", "--mode", "warm",
                       "--op", "softmax", "--pass", "bwd", "--no-check", "--out", out)
    (record,) = [r for r in json.loads(out.read_text())["records"] if r["backend"] == "forward-only"]
    assert status == 0
    assert record["skipped"] and "no autograd graph" in record["reason"] and not record.get("failure")


def test_autodiff_of_a_real_graph_is_still_taken():
    torch = pytest.importorskip("torch")
    adapter = adapters.get("torch")
    x = torch.randn(3, 7, dtype=torch.float64)
    dx = adapter.vjp(lambda a, axis=-1: torch.softmax(a, dim=axis), x, torch.ones_like(x), -1)
    assert torch.allclose(dx, torch.zeros_like(x), atol=1e-12)  # softmax's rows sum to 1: a constant dy has no effect


# ------------------------------------------------------------ the time budget

def _units(n, ran):
    def record(i):
        return CheckRecord(backend="b", device="cpu", dtype="float32", rows=1, vocab=1, shape=[1], axis=-1, case=str(i),
                           op="softmax", special=False, expected="correct", judged=True, passed=True)

    return [Unit(identity=record(i).workpoint, run=lambda ex, i=i: ran.append(i) or [record(i).as_dict()], on_failure=lambda f: [],
                 label=str(i)) for i in range(n)]


def test_no_unit_starts_after_the_deadline_and_resume_runs_the_rest(tmp_path, capsys):
    path = tmp_path / "r.json"
    ran: list[int] = []
    results = ResultsFile(path)
    execute(_units(1, ran), results, InProcessExecutor(), desc="check")
    execute(_units(3, ran), ResultsFile(path, resume=True), InProcessExecutor(), desc="check", deadline=0.0)  # long past
    assert ran == [0] and "the budget is spent; 2 units not run" in capsys.readouterr().err
    execute(_units(3, ran), ResultsFile(path, resume=True), InProcessExecutor(), desc="check")
    assert ran == [0, 1, 2]


def test_budget_option_is_validated(cli):
    status, _, err = cli("run", "--budget", "0")
    assert status == 2 and "must be a positive number" in err


# ------------------------------------------------------------ inputs on all cores

def test_standard_normal_does_not_depend_on_the_thread_count(monkeypatch):
    monkeypatch.setattr(workloads, "NORMAL_CHUNK", 1000)
    seed = np.random.SeedSequence(7)
    monkeypatch.setattr(workloads.os, "cpu_count", lambda: 1)
    one = workloads.standard_normal((13, 997), seed)
    monkeypatch.setattr(workloads.os, "cpu_count", lambda: 8)
    many = workloads.standard_normal((13, 997), seed)
    assert one.dtype == np.float32 and np.array_equal(one, many)
    assert np.array_equal(one, workloads.standard_normal((13, 997), seed))  # the seed is not used up
    assert abs(float(one.mean())) < 0.05 and abs(float(one.std()) - 1) < 0.05
    # Every chunk drew its own values (a chunk left empty or repeated would show here).
    chunks = one.reshape(-1)[: 12 * 1000].reshape(12, 1000)
    assert len({c.tobytes() for c in chunks}) == 12 and np.all(one != 0)


# ------------------------------------------------------------ references on all cores

def test_primed_references_are_the_ones_computed_in_place(monkeypatch):
    monkeypatch.setattr(figures, "PRIME_MIN", 2)
    chosen = [cases.get("randn_scale_3"), cases.get("masked_prefix")]
    targets = [Target("max-shift", "cpu", "float32")]
    figures._EXACT.clear()
    assert prime_references(targets, chosen, workers=2) > 0
    primed = dict(figures._EXACT)
    # Once primed, nothing is computed again (a cache that missed would call _exact).
    monkeypatch.setattr(figures, "_exact", lambda *a: pytest.fail(f"recomputed {a[1:]}"))
    for (case, dtype, op, path), (hi, lo) in primed.items():
        got = figures.exact(case, dtype, op, path)
        assert got[0] is hi
    monkeypatch.undo()
    figures._EXACT.clear()
    for (case, dtype, op, path), (hi, _) in primed.items():
        assert np.array_equal(figures.exact(case, dtype, op, path)[0], hi, equal_nan=True)


# ------------------------------------------------------------ device memory handed back

def test_measure_hands_back_cached_device_memory_even_when_the_unit_fails(monkeypatch):
    released = []

    class Stub:
        def release_cached(self, device):
            released.append(device)

    monkeypatch.setattr(timing.adapters, "get", lambda library: Stub())
    monkeypatch.setattr(timing.adapters, "library_unavailable", lambda library: None)

    def fake_measure(backend_name, device, dtype, plugin_files=(), fail=False):
        if fail:
            raise BackendFailure("out of memory", "memory")
        return {"median_s": 1.0}

    measured = timing._releases_device_memory(fake_measure)
    with pytest.raises(BackendFailure):
        measured("torch-fused", "cuda", "float32", fail=True)
    assert measured("torch-fused", "cuda", "float32") == {"median_s": 1.0}
    assert measured("torch-fused", "cpu", "float32") == {"median_s": 1.0}
    assert released == ["cuda", "cuda"]  # after each GPU unit, never on the CPU
    assert timing.measure.__wrapped__  # and measure is wrapped so


# ------------------------------------------------------------ JAX's planned peak

def test_jax_planned_peak_counts_outputs_and_temporaries():
    jax = pytest.importorskip("jax")
    adapter = adapters.get("jax")
    x = adapter.from_numpy(np.ones((64, 1000)), "cpu", "float32")
    one = adapter.planned_peak(lambda a: jax.nn.softmax(a, axis=-1), (x,))
    two = adapter.planned_peak(lambda a: (jax.nn.softmax(a, axis=-1), jax.nn.log_softmax(a, axis=-1)), (x,))
    assert 64 * 1000 * 4 <= one < 2 * 64 * 1000 * 4  # the output, and a row's worth of temporaries
    assert two >= 2 * 64 * 1000 * 4  # a second output is counted


def test_peak_memory_falls_back_to_the_plan_only_without_an_allocator_peak():
    from softmax_bench.measure.memory import peak_memory

    class NoPeak(adapters.Adapter):
        def peak_memory(self, device):
            return None

    class Peak(NoPeak):
        def peak_memory(self, device):
            return 123

    assert peak_memory(NoPeak(), "cuda", lambda: None, planned=lambda: 456)["peak_method"] == "compiled plan"
    assert peak_memory(NoPeak(), "cuda", lambda: None, planned=lambda: 456)["peak_bytes"] == 456
    assert peak_memory(Peak(), "cuda", lambda: None, planned=lambda: 456)["peak_bytes"] == 123


# ------------------------------------------------------------ run --pair

def test_run_pair_times_exactly_the_pairs_named(cli, tmp_path):
    out = tmp_path / "p.json"
    status, _, err = cli("run", "--backend", "max-shift", "--sizes", "4x512", "--mode", "warm", "--no-check",
                         "--pair", "softmax.fwd", "--pair", "cross_entropy.full", "--out", out)
    timed = {(r["op"], r["pass"]) for r in json.loads(out.read_text())["records"] if r["kind"] == "timing"}
    assert status == 0, err
    assert timed == {("softmax", "fwd"), ("cross_entropy", "full")}  # not the 2 x 2 grid of --op/--pass


@pytest.mark.parametrize("argv, message", [
    (("--pair", "softmax.fwdd"), "'softmax.fwdd': not OP.PASS"),
    (("--pair", "softmax.fwd", "--op", "softmax"), "--pair names op and pass together"),
])
def test_run_pair_bad_usage(cli, argv, message):
    status, _, err = cli("run", *argv)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
