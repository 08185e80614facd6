"""The triton backend's kernels: run by Triton's interpreter, compiled for sm_90/sm_80.

The kernels run in a subprocess (``triton_worker.py``) with TRITON_INTERPRET=1
set before triton is imported, so the interpreter cannot leak into other
tests. Both paths are checked: the fused kernel, and the two-pass online
kernel forced onto small rows with 128-wide tiles (so rows span many tiles
and masked prefixes cross tile boundaries). Planted bugs (no max shift; the
online kernel without its -inf guard) must fail the same assertions.

Triton's real compiler also builds both kernels for sm_90 and sm_80 (it needs
no GPU for that, only the ptxas in its wheel), which catches what the
interpreter lets through; a planted uncompilable kernel proves it can fail.

This proves the arithmetic, masks, tiling and that the kernels build; not
speed, and not the GPU's own exp (see _triton_kernels). Skipped where triton
is not installed.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kernel_checks import assert_matches, large_logits, masked_prefix, rng_rows

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None or importlib.util.find_spec("torch") is None,
    reason="triton (and torch) not installed: pip install triton",
)

WORKER = Path(__file__).resolve().parent / "triton_worker.py"
DTYPES = ("float32", "float16", "bfloat16")
OPS = ("softmax", "log_softmax")
PATHS = ("fused", "online", "looping")


def _edge_rows() -> np.ndarray:
    x = rng_rows((5, 300), seed=3)
    x[0, :] = -np.inf  # all -inf: NaN like torch
    x[1, 7] = np.inf  # +inf: NaN row
    x[2, 9] = np.nan  # NaN: NaN row
    x[3, 100:] = -np.inf  # a -inf suffix: exact zeros
    return x


def _cases() -> dict[str, np.ndarray]:
    cases = {
        "odd-width": rng_rows((4, 1000)),
        "one-element": rng_rows((3, 1)),
        "tile-plus-one": rng_rows((2, 129), seed=4),
        "masked-prefix": masked_prefix(1000),
        "edge-rows": _edge_rows(),
    }
    for dtype in DTYPES:
        cases[f"large-logits-{dtype}"] = large_logits(dtype)
    return cases


CASES = _cases()


def _case_names(dtype: str) -> list[str]:
    return [c for c in CASES if not c.startswith("large-logits") or c.endswith(dtype)]


def _jobs() -> list[dict]:
    jobs = [
        dict(case=case, impl="real", path=path, dtype=dtype, op=op)
        for path, dtype, op in itertools.product(PATHS, DTYPES, OPS)
        for case in _case_names(dtype)
    ]
    jobs += [dict(case="large-logits-float32", impl="no-shift", path="fused", dtype="float32", op=op) for op in OPS]
    jobs += [dict(case="masked-prefix", impl="no-guard", path="online", dtype="float32", op=op) for op in OPS]
    jobs += [dict(case="odd-width", impl="no-loop", path="looping", dtype="float32", op=op) for op in OPS]
    for job in jobs:
        job["id"] = "|".join(job[k] for k in ("impl", "path", "case", "dtype", "op"))
    return jobs


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Every job's output, from one interpreter subprocess."""
    tmp = tmp_path_factory.mktemp("triton")
    (tmp / "jobs.json").write_text(json.dumps(_jobs()))
    np.savez(tmp / "inputs.npz", **CASES)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(tmp / "jobs.json"), str(tmp / "inputs.npz"), str(tmp / "out.npz")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(np.load(tmp / "out.npz"))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("case", ["odd-width", "one-element", "tile-plus-one", "masked-prefix", "edge-rows", "large-logits"])
def test_kernel_matches_reference(outputs, path, dtype, op, case):
    case = f"{case}-{dtype}" if case == "large-logits" else case
    y = outputs[f"real|{path}|{case}|{dtype}|{op}"]
    assert_matches(y, CASES[case], dtype, op)


def test_edge_rows_are_what_torch_gives(outputs):
    """All -inf, +inf and NaN rows are NaN; a -inf suffix gives exact zeros."""
    for path in PATHS:
        y = outputs[f"real|{path}|edge-rows|float32|softmax"]
        assert np.isnan(y[:3]).all() and not np.isnan(y[3:]).any()
        assert (y[3, 100:] == 0).all()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("impl, path, case", [("no-shift", "fused", "large-logits-float32"), ("no-guard", "online", "masked-prefix"),
                                              ("no-loop", "looping", "odd-width")])
def test_planted_bugs_fail_the_same_assertion(outputs, impl, path, case, op):
    """Negative controls: the assertion the real kernels pass rejects each planted bug."""
    with pytest.raises(AssertionError):
        assert_matches(outputs[f"{impl}|{path}|{case}|float32|{op}"], CASES[case], "float32", op)
    assert_matches(outputs[f"real|{path}|{case}|float32|{op}"], CASES[case], "float32", op)


# ---------------------------------------------------------------- Triton's compiler, no GPU needed

COMPILE_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def compile_for(kernel, arch: int, dtype: str, constexprs: dict, num_warps: int, ints: tuple = ("n",)):
    """Compile ``kernel`` to a cubin for ``sm_<arch>`` with Triton's own compiler (``ints``: its int32 arguments)."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set in this process: nothing would be compiled")
    import triton

    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError as exc:
        pytest.skip(f"this triton has no ahead-of-time compile API ({exc})")
    ty = COMPILE_DTYPES[dtype]
    signature = {"x_ptr": f"*{ty}", "y_ptr": f"*{ty}", **{k: "i32" for k in ints}, **{k: "constexpr" for k in constexprs}}
    source = ASTSource(kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})


@pytest.mark.filterwarnings("ignore::UserWarning")  # triton 3.9's notice about its FP-fusion default
@pytest.mark.parametrize("arch", [90, 80])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_compile_for_the_gpu(arch, dtype):
    from softmax_bench.backends import _triton_kernels as kernels

    for log in (False, True):
        block = kernels.FUSED_MAX  # the widest row the fused kernel takes: the most registers
        fused = compile_for(kernels.fused_kernel, arch, dtype, {"BLOCK": block, "LOG": log}, kernels.num_warps(block))
        online = compile_for(kernels.online_kernel, arch, dtype, {"CHUNK": kernels.CHUNK, "LOG": log},
                             kernels.num_warps(kernels.CHUNK), ints=("n", "rows"))
        looping = compile_for(kernels.online_kernel, arch, dtype, {"CHUNK": kernels.CHUNK, "LOG": log},
                              kernels.PERSISTENT_WARPS, ints=("n", "rows"))
        for compiled in (fused, online, looping):
            assert compiled.asm["cubin"] and "st.local" not in compiled.asm["ptx"]  # built; no local-memory arrays


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_compile_check_rejects_a_planted_kernel():
    """Negative control: a kernel Triton cannot compile fails the same compile step."""
    from triton_planted import runtime_arange_fused

    with pytest.raises(Exception, match="constexpr"):
        compile_for(runtime_arange_fused, 90, "float32", {"BLOCK": 1024, "LOG": False}, 4)
