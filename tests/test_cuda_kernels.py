"""The CUDA kernels of cupy-maxshift and cupy-online, without a GPU.

1. Compile: ``softmax_kernels.cu`` builds with the local nvcc for sm_90
   (H100/H200) and sm_80 (A100), every kernel the backends launch is in the
   binary, and the float32/float16 kernels spill nothing to local memory.
   Where CuPy and an NVRTC library are installed, NVRTC (what CuPy uses on the
   GPU machine, with CuPy's own flags) compiles it too.
2. Run: the same source, compiled by g++ against ``cuda/host_emulator.h`` (a
   thread per CUDA thread, barriers for __syncthreads and warp shuffles), is
   launched through the backends' real Python glue (``_cuda_softmax.launch``)
   with a NumPy stand-in for cupy, and must match the float64 reference and the
   NumPy max-shift/online backends on the edge cases.
3. Negative controls: a planted syntax error fails the compile test, and
   planted bugs in the kernels (the online -inf guard removed, in the thread
   update and in the block merge; no max shift) fail the run tests.

None of this measures speed or proves anything about NVRTC/driver behaviour
on a real device; that is for ``softmax-bench gpu-run`` on a GPU.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from softmax_bench.backends import _cuda_softmax as cuda
from softmax_bench.backends import max_shift, online

from kernel_checks import assert_matches, large_logits, masked_prefix, rng_rows

HERE = Path(__file__).resolve().parent
EMULATOR = HERE / "cuda" / "host_emulator.h"
ARCHES = ("sm_90", "sm_80")
BENCHMARK_SUFFIXES = ("f32", "f16")  # the dtypes timed on the GPU: no spills allowed

NVCC = shutil.which("nvcc")
GXX = shutil.which("g++")


def mutate(source: str, old: str, new: str) -> str:
    """``source`` with its one occurrence of ``old`` replaced (fails if the site moved)."""
    assert source.count(old) == 1, f"mutation site not found exactly once: {old!r}"
    return source.replace(old, new)


# ---------------------------------------------------------------- 1. compile


def nvcc_compile(source: str, arch: str, tmp: Path) -> subprocess.CompletedProcess:
    """nvcc as CuPy's NVRTC sees the file: no includes, -ftz=true, one cubin per arch."""
    cu = tmp / f"kernels_{arch}_{hashlib.sha1(source.encode()).hexdigest()[:8]}.cu"
    cu.write_text(source)
    cmd = [NVCC, "-cubin", f"-arch={arch}", "-ftz=true", "--resource-usage", "-x", "cu", str(cu), "-o", str(cu.with_suffix(".cubin"))]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def nvcc_builds(tmp_path_factory):
    """{arch: nvcc result}, both arches compiled in parallel, once per test run."""
    if NVCC is None:
        pytest.skip("nvcc not found on PATH: cannot compile the CUDA kernels here")
    tmp = tmp_path_factory.mktemp("nvcc")
    source = cuda.SOURCE.read_text()
    with ThreadPoolExecutor(len(ARCHES)) as pool:
        return dict(zip(ARCHES, pool.map(lambda arch: nvcc_compile(source, arch, tmp), ARCHES)))


def resource_usage(stderr: str) -> dict[str, str]:
    """ptxas's report per kernel: name -> the lines describing it."""
    report: dict[str, str] = {}
    for name, body in re.findall(r"Function properties for (\w+)\n(.*?)(?=ptxas info\s+: Compiling|\Z)", stderr, re.S):
        report[name] = body
    return report


@pytest.mark.parametrize("arch", ARCHES)
def test_nvcc_compiles_every_kernel(nvcc_builds, arch):
    result = nvcc_builds[arch]
    assert result.returncode == 0, result.stderr[-3000:]
    report = resource_usage(result.stderr)
    missing = sorted(set(cuda.kernel_names()) - set(report))
    assert not missing, f"kernels the backends launch but {arch} did not build: {missing}"


@pytest.mark.parametrize("arch", ARCHES)
def test_timed_kernels_do_not_spill(nvcc_builds, arch):
    """Spills turn register traffic into memory traffic in a memory-bound kernel."""
    report = resource_usage(nvcc_builds[arch].stderr)
    for name in cuda.kernel_names():
        if name.endswith(BENCHMARK_SUFFIXES):
            assert "0 bytes spill stores" in report[name], f"{name} on {arch}: {report[name].strip()}"


def test_nvcc_rejects_a_planted_error(tmp_path):
    """Negative control: the compile test fails on a broken source."""
    if NVCC is None:
        pytest.skip("nvcc not found on PATH")
    broken = mutate(cuda.SOURCE.read_text(), "r.s += exp_(v - r.m);", "r.s += exp_(v - r.m)")  # missing ';'
    result = nvcc_compile(broken, "sm_90", tmp_path)
    assert result.returncode != 0 and "error" in result.stderr


def _nvrtc_program():
    """CuPy's NVRTC wrapper, or None with CuPy or the NVRTC library missing."""
    if importlib.util.find_spec("cupy") is None:
        return None
    try:
        from cupy.cuda import compiler

        compiler._get_nvrtc_version()  # loads libnvrtc (pip: nvidia-cuda-nvrtc-cu12)
        return compiler._NVRTCProgram
    except Exception:
        return None


@pytest.mark.parametrize("arch", ARCHES)
def test_nvrtc_compiles_with_cupys_flags(arch):
    """What RawModule does on the GPU machine, minus the device query it needs for the arch."""
    program = _nvrtc_program()
    if program is None:
        pytest.skip("CuPy's NVRTC is not available here (pip install cupy-cuda12x nvidia-cuda-nvrtc-cu12)")
    options = ("-ftz=true", f"-arch={arch}", "--device-as-default-execution-space")
    binary, _ = program(cuda.SOURCE.read_text(), "softmax_kernels.cu", (), (), method="cubin").compile(options)
    for name in cuda.kernel_names():
        assert name.encode() in binary


# ---------------------------------------------------------------- 2. run on the host emulator


class _Emulated:
    """Builds kernel sources with g++ against the emulator; one shared library per source."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.libs: dict[str, ctypes.CDLL] = {}

    def library(self, code: str) -> ctypes.CDLL:
        key = hashlib.sha1(code.encode()).hexdigest()[:12]
        if key not in self.libs:
            src = self.tmp / f"k{key}.cpp"
            (self.tmp / f"k{key}.cu").write_text(code)
            src.write_text(f'#include "{EMULATOR}"\n#include "k{key}.cu"\n')
            so = self.tmp / f"k{key}.so"
            cmd = [GXX, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-Wno-unknown-pragmas", str(src), "-o", str(so)]
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr[-3000:]
            lib = ctypes.CDLL(str(so))
            lib.emulate_launch.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int]
            self.libs[key] = lib
        return self.libs[key]

    def fake_cupy(self) -> types.ModuleType:
        """Just enough of cupy for ``_cuda_softmax.launch``, on NumPy arrays and the emulator."""
        emulated = self

        class Array(np.ndarray):
            @property
            def data(self):  # cupy's MemoryPointer: .ptr is the device address
                return types.SimpleNamespace(ptr=self.ctypes.data)

        class RawModule:
            def __init__(self, code: str, options: tuple = ()):
                self.code = code

            def compile(self):
                self.lib = emulated.library(self.code)

            def get_function(self, name: str):
                fn = ctypes.cast(self.lib[name], ctypes.c_void_p)

                def launch(grid, block, args):
                    x, y, n, vec = args
                    assert x.flags.c_contiguous and y.flags.c_contiguous
                    self.lib.emulate_launch(fn, grid[0], block[0], x.ctypes.data, y.ctypes.data, int(n), int(vec))

                return launch

        fake = types.ModuleType("cupy")
        fake.RawModule = RawModule
        fake.moveaxis = lambda a, src, dst: np.moveaxis(a, src, dst).view(Array)
        fake.ascontiguousarray = lambda a: np.ascontiguousarray(a).view(Array)
        fake.empty_like = lambda a: np.empty_like(a).view(Array)
        fake.Array = Array
        return fake


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if GXX is None:
        pytest.skip("g++ not found: cannot build the host emulator")
    return _Emulated(tmp_path_factory.mktemp("emulator"))


@pytest.fixture
def on_emulator(emulator, monkeypatch):
    """``run(variant, op, x, axis=-1, source=None)`` through the real launch(), on the host."""
    fake = emulator.fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    # 1024 OS threads meeting at every barrier on a 2-core machine are slow; 128
    # (4 warps) still takes every code path. test_full_size_block runs 1024.
    monkeypatch.setattr(cuda, "MAX_THREADS", 128)
    original = cuda.SOURCE

    def run(variant, op, x, axis=-1, source=None):
        cuda.module.cache_clear()
        if source is not None:
            path = emulator.tmp / f"mutant_{hashlib.sha1(source.encode()).hexdigest()[:8]}.cu"
            path.write_text(source)
            monkeypatch.setattr(cuda, "SOURCE", path)
        try:
            with np.errstate(all="ignore"):
                return np.asarray(cuda.launch(variant, op, np.asarray(x).view(fake.Array), axis))
        finally:
            cuda.module.cache_clear()
            monkeypatch.setattr(cuda, "SOURCE", original)

    yield run
    cuda.module.cache_clear()


NUMPY_BACKEND = {"maxshift": max_shift, "online": online}
VARIANTS = ("maxshift", "online")
OPS = ("softmax", "log_softmax")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("case", ["random", "odd-width", "one-element", "masked-prefix", "large-logits", "strided"])
def test_emulated_kernel_matches_reference(on_emulator, variant, dtype, op, case):
    x = {
        "random": lambda: rng_rows((3, 1024)),  # 16-byte packs (vec path)
        "odd-width": lambda: rng_rows((5, 1001)),  # element by element
        "one-element": lambda: rng_rows((3, 1)),
        "masked-prefix": masked_prefix,
        "large-logits": lambda: large_logits(dtype),
        "strided": lambda: rng_rows((8, 1200)),
    }[case]()
    data = x.astype(dtype)
    if case == "strided":  # every other element: made contiguous by launch()
        x, data = x[:, ::2], data[:, ::2]
    y = on_emulator(variant, op, data)
    assert y.dtype == data.dtype
    assert_matches(y, x, dtype, op)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("axis", [0, 1])
def test_emulated_kernel_reduces_any_axis(on_emulator, variant, axis):
    x = rng_rows((40, 33, 3), seed=4)
    for op in OPS:
        assert_matches(on_emulator(variant, op, x.astype("float32"), axis), x, "float32", op, axis)


EDGE_ROWS = {
    "all -inf": [-np.inf] * 5,
    "one -inf": [0.0, -np.inf, 1.0, 2.0, 3.0],
    "one +inf": [1.0, np.inf, 0.0, 2.0, 3.0],
    "two +inf": [np.inf, 1.0, np.inf, 2.0, 3.0],
    "nan": [1.0, np.nan, 0.0, 2.0, 3.0],
    "ties": [3.0, 3.0, 1.0, 3.0, 0.0],
    "single -inf": [-np.inf],
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("edge", list(EDGE_ROWS))
def test_emulated_edge_cases_behave_like_the_numpy_backend(on_emulator, variant, op, edge):
    """-inf, +inf and NaN: exactly what max-shift / online give (an all -inf row is NaN)."""
    x = np.array([EDGE_ROWS[edge]])
    with np.errstate(all="ignore"):
        expected = getattr(NUMPY_BACKEND[variant], op)(x)
    y = on_emulator(variant, op, x)
    np.testing.assert_allclose(y, expected, rtol=1e-14, atol=0)  # NaN where NaN, inf where inf
    if edge == "all -inf":
        assert np.isnan(y).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_full_size_block(on_emulator, monkeypatch, variant):
    """1024 threads, 32 warps: every slot of the block reduction's shared array in use."""
    monkeypatch.setattr(cuda, "MAX_THREADS", 1024)
    x = masked_prefix(8192)[:1]
    x[0, -2000:] = rng_rows(2000, seed=5)
    assert_matches(on_emulator(variant, "softmax", x.astype("float32")), x, "float32", "softmax")


def test_launch_handles_empty_input(on_emulator):
    for shape in [(0, 5), (3, 0)]:
        assert on_emulator("online", "softmax", np.zeros(shape, dtype=np.float32)).shape == shape


def test_threads_per_block():
    assert cuda.threads_for(1, 1) == 32
    assert cuda.threads_for(1000, 4) == 256  # 250 packs
    assert cuda.threads_for(256000, 4) == 1024
    assert all(cuda.threads_for(n, p) & (cuda.threads_for(n, p) - 1) == 0 for n in (3, 33, 999) for p in (1, 2, 8))


# ---------------------------------------------------------------- 3. negative controls

MUTANTS = {
    # The online thread update without its -inf guard: exp(-inf - (-inf)) = NaN on a masked prefix.
    "online update without -inf guard": ("online", "} else if (v != neg_inf<A>()) {", "} else {"),
    # The block merge shifting by the raw max: two -inf partials merge to NaN.
    "online merge without -inf guard": ("online", "    const A shift = safe_shift(m);\n    MaxSum<A> r", "    const A shift = m;\n    MaxSum<A> r"),
    # No max shift: exp(x) overflows float32 at x > 88.7.
    "maxshift without the shift": ("maxshift", "else t.rest += exp_(v - m);", "else t.rest += exp_(v);"),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_planted_kernel_bugs_fail_the_same_checks(on_emulator, mutant):
    variant, old, new = MUTANTS[mutant]
    source = mutate(cuda.SOURCE.read_text(), old, new)
    cases = [masked_prefix(), large_logits("float32")]
    failures = 0
    for x in cases:
        try:
            assert_matches(on_emulator(variant, "softmax", x.astype("float32"), source=source), x, "float32", "softmax")
        except AssertionError:
            failures += 1
    assert failures, f"the planted bug {mutant!r} passed every check"
    # ... while the unmutated source passes the very same cases.
    for x in cases:
        assert_matches(on_emulator(variant, "softmax", x.astype("float32")), x, "float32", "softmax")
