"""What cupy-maxshift and cupy-online share: the CUDA source, its compilation, the launch.

The kernels live in ``softmax_kernels.cu`` beside this file (shipped as package
data) and are compiled once per process by ``cupy.RawModule`` (NVRTC; CuPy
keeps a disk cache, so later processes load the binary). One block per row;
the kernel reads the row with 16-byte packs when the row is aligned for them
and element by element otherwise.

Layout: the kernels reduce along the last axis of a C-contiguous array, so
``launch`` moves ``axis`` to the end and makes the input contiguous first (a
copy only for other axes or strided input, and that copy is part of what is
timed: it is what a caller of this kernel would pay). The output has the input's
shape; for ``axis != -1`` it is a view with the axis moved back.

CuPy always compiles RawModule code with ``-ftz=true`` (it appends the flag
after ours), so float32 results below the smallest normal (1.2e-38) are
flushed to zero, as JAX does; torch keeps them. float64 is unaffected, and
float16 outputs are computed in float32, where every float16 subnormal is normal.

Nothing here imports cupy until a kernel is launched or compiled.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

SOURCE = Path(__file__).with_name("softmax_kernels.cu")
VARIANTS = ("maxshift", "online")
OPS = ("softmax", "log_softmax")
SUFFIX = {"float32": "f32", "float64": "f64", "float16": "f16"}
DTYPES = ("float64", "float32", "float16")
MAX_THREADS = 1024  # the kernels' __launch_bounds__
PACK_BYTES = 16


def kernel_name(variant: str, op: str, dtype: str) -> str:
    """The extern "C" name of one kernel in ``softmax_kernels.cu``."""
    return f"{variant}_{op}_{SUFFIX[dtype]}"


def kernel_names() -> list[str]:
    """Every kernel the backends may launch (the .cu file must define each)."""
    return [kernel_name(v, op, d) for v in VARIANTS for op in OPS for d in DTYPES]


@lru_cache(maxsize=None)
def module() -> Any:
    """The compiled ``cupy.RawModule`` (compiled on first use, then cached)."""
    import cupy

    mod = cupy.RawModule(code=SOURCE.read_text())
    mod.compile()
    return mod


def compile_problem(device: str) -> Optional[str]:
    """The ``available`` hook: ``None`` if NVRTC compiles the kernels, else why not.

    The adapter has already found cupy and a CUDA device when this runs. The
    compile is cached on disk by CuPy, so only the first process on a machine
    pays the second or so it takes.
    """
    try:
        module()
    except Exception as exc:  # CompileException, a missing NVRTC library, ...
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        return f"NVRTC compile failed: {type(exc).__name__}: {lines[0] if lines else ''}"[:300]
    return None


def threads_for(n: int, pack: int) -> int:
    """Threads per block: enough for one pack (or element) each, a power of two in [32, 1024]."""
    per_thread = -(-n // pack)
    return min(MAX_THREADS, max(32, 1 << max(per_thread - 1, 0).bit_length()))


def launch(variant: str, op: str, x: Any, axis: int = -1) -> Any:
    """``op`` of the CuPy array ``x`` along ``axis`` with the ``variant`` kernel."""
    import cupy
    import numpy

    dtype = x.dtype.name
    if dtype not in SUFFIX:
        raise TypeError(f"{variant} kernels take {', '.join(DTYPES)}, not {dtype}")
    rows = cupy.ascontiguousarray(cupy.moveaxis(x, axis, -1))
    out = cupy.empty_like(rows)
    n = rows.shape[-1]
    if out.size:
        aligned = rows.data.ptr % PACK_BYTES == 0 and out.data.ptr % PACK_BYTES == 0
        vec = aligned and (n * rows.itemsize) % PACK_BYTES == 0
        pack = PACK_BYTES // rows.itemsize if vec else 1
        kernel = module().get_function(kernel_name(variant, op, dtype))
        kernel((out.size // n,), (threads_for(n, pack),), (rows, out, numpy.int64(n), numpy.int32(vec)))
    return cupy.moveaxis(out, -1, axis)
