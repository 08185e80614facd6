"""GPU backends on a machine without a GPU: listed, explained, skipped; and the GPU run driver.

The kernels themselves are tested in test_cuda_kernels.py (host emulator) and
test_triton_kernels.py (Triton's interpreter).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from softmax_bench.core import adapters
from softmax_bench import load_backends
from softmax_bench.commands import gpu_run, main as cli_main
from softmax_bench.backends import _cuda_softmax, torch_compile, triton_softmax

REGISTRY = load_backends()
GPU_BACKENDS = {"cupy", "cupy-maxshift", "cupy-online", "triton", "torch-fused", "torch-compile", "jax"}
CUDA_ONLY = {"cupy", "cupy-maxshift", "cupy-online", "triton"}
REASONS = {name: REGISTRY.unavailable(name, "cuda") for name in GPU_BACKENDS}
no_gpu = pytest.mark.skipif(not all(REASONS.values()), reason="a GPU backend is available: this machine has a GPU")


def test_gpu_backends_are_registered_for_cuda():
    assert GPU_BACKENDS <= set(gpu_run.gpu_backends(REGISTRY))
    for name in CUDA_ONLY:
        assert REGISTRY.get(name).devices == ("cuda",)


@no_gpu
def test_list_shows_each_gpu_backend_unavailable_with_what_is_missing(cli):
    status, out, _ = cli("list", "--format", "json")
    assert status == 0
    entries = {e["name"]: e for e in json.loads(out)}
    for name in GPU_BACKENDS:
        reason = entries[name]["unavailable"]["cuda"]
        library = REGISTRY.get(name).library
        # The reason names the library that lacks a device (or that is missing altogether).
        assert reason and library in reason and "\n" not in reason, f"{name}: {reason!r}"


@no_gpu
def test_test_backends_skips_gpu_targets_with_the_reason():
    """The shared per-backend tests skip (not error) every GPU backend on cuda."""
    from test_backends import targets

    cuda_params = [p for p in targets() if p.values[0] in GPU_BACKENDS and p.values[1] == "cuda"]
    assert {p.values[0] for p in cuda_params} == GPU_BACKENDS
    for param in cuda_params:
        skips = [m for m in param.marks if m.name == "skip"]
        assert skips and REASONS[param.values[0]] in skips[0].kwargs["reason"], param.id


# ---------------------------------------------------------------- availability hooks


def test_missing_cupy_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    assert adapters.library_unavailable("cupy").startswith("cupy is not importable")


def test_nvrtc_failure_is_reported(monkeypatch):
    def broken():
        raise RuntimeError("kern.cu(3): error: identifier \"oops\" is undefined\nmore log")

    monkeypatch.setattr(_cuda_softmax, "module", broken)
    reason = _cuda_softmax.compile_problem("cuda")
    assert reason.startswith("NVRTC compile failed: RuntimeError") and "oops" in reason and "\n" not in reason


def test_nvrtc_success_reports_nothing(monkeypatch):
    monkeypatch.setattr(_cuda_softmax, "module", lambda: object())
    assert _cuda_softmax.compile_problem("cuda") is None


def test_triton_reasons(monkeypatch):
    import importlib.util

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real_find_spec(name, *a))
    assert "triton is not installed" in triton_softmax.unavailable("cuda")
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    if real_find_spec("triton") is not None:
        assert "TRITON_INTERPRET" in triton_softmax.unavailable("cuda")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    if real_find_spec("triton") is not None:
        assert triton_softmax.unavailable("cuda") is None


def test_torch_compile_reasons(monkeypatch):
    pytest.importorskip("torch")
    import importlib.util

    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert "C++ compiler" in torch_compile.unavailable("cpu") and "/nonexistent/c++" in torch_compile.unavailable("cpu")
    monkeypatch.delenv("CXX")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real_find_spec(name, *a))
    assert "needs triton" in torch_compile.unavailable("cuda")


def test_torch_compile_runs_on_this_cpu():
    """The compiler torch.compile needs is here, so the shared suite really exercises it."""
    assert REGISTRY.unavailable("torch-compile", "cpu") is None


# ---------------------------------------------------------------- the GPU run driver


def test_gpu_run_dry_run_prints_every_stage(capsys, tmp_path):
    assert cli_main(["gpu-run", "--dry-run", "--out-dir", str(tmp_path), "--name", "gpu-x"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("softmax-bench check --device cuda") and f"--out {tmp_path / 'gpu-x-check.json'}" in lines[0]
    assert "--dtype float32 --dtype bfloat16" in lines[0]
    runs = [line for line in lines if line.startswith("softmax-bench run --device cuda")]
    # The LM-head timings come first, then the other sizes and passes.
    assert "--sizes 4096x128256 --pair softmax.fwd --pair cross_entropy.full" in runs[0]
    assert "--sizes 4096x32000,4096x256000 --pair softmax.fwd --pair cross_entropy.full" in runs[1]
    assert all(f"--out {tmp_path / 'gpu-x.json'}" in line for line in runs)
    for name in GPU_BACKENDS:
        assert f"--backend {name} " in lines[0] and f"--backend {name} " in runs[0]
    nccl = lines[2]
    assert "--world-size 1" in nccl and "--backend vocab-parallel-fused" in nccl and "vocab-parallel" not in lines[0]


def test_gpu_run_runs_every_stage_and_fails_on_a_failed_check(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(gpu_run, "dispatch", lambda argv: calls.append(list(argv)) or (1 if argv[0] == "check" else 0))
    monkeypatch.setattr(gpu_run, "probe", lambda path: {})
    monkeypatch.setattr(type(REGISTRY), "unavailable", lambda self, name, device: None)
    status = cli_main(["gpu-run", "--backend", "cupy-online", "--backend", "triton", "--out-dir", str(tmp_path), "--name", "g"])
    assert status == 1  # a failed check is the run's failure, after the timings were still taken
    assert [c[0] for c in calls] == ["check"] + ["run"] * 3 + ["check"]  # no sharded backend chosen
    for argv in calls:
        assert argv[argv.index("--device") + 1] == "cuda"
        assert [argv[i + 1] for i, a in enumerate(argv) if a == "--backend"] == ["cupy-online", "triton"]
        assert "--budget" not in argv
    assert Path(calls[1][calls[1].index("--out") + 1]).name == "g.json"


def test_gpu_run_budget_is_shared_and_spent_stages_are_skipped(monkeypatch, tmp_path, capsys):
    clock = [100.0]
    calls = []

    def fake_main(argv):
        calls.append(list(argv))
        clock[0] += 40.0  # each stage takes 40 s
        return 0

    monkeypatch.setattr(gpu_run.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(gpu_run, "dispatch", fake_main)
    monkeypatch.setattr(gpu_run, "probe", lambda path: {})
    monkeypatch.setattr(type(REGISTRY), "unavailable", lambda self, name, device: None)
    assert cli_main(["gpu-run", "--backend", "triton", "--out-dir", str(tmp_path), "--budget", "100"]) == 0
    budgets = [float(argv[argv.index("--budget") + 1]) for argv in calls]
    assert budgets == [100 * gpu_run.CHECK_SHARE, 60, 20]  # the check's share, then what is left
    assert "not run, the budget of 100 s is spent" in capsys.readouterr().out


@no_gpu
def test_gpu_run_without_a_gpu_says_why_and_runs_nothing(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(gpu_run, "dispatch", lambda argv: calls.append(argv) or 0)
    assert cli_main(["gpu-run", "--out-dir", "unused"]) == 1
    err = capsys.readouterr().err
    assert "no GPU backend can run here" in err and "cupy-online:" in err and not calls


def test_gpu_run_rejects_unknown_backend(capsys):
    assert cli_main(["gpu-run", "--backend", "numpy-nope"]) == 2
    assert "unknown GPU backend 'numpy-nope'" in capsys.readouterr().err
