"""torch-compile: the max-shift softmax written in torch ops, compiled by torch.compile.

Inductor fuses x - max, exp, sum and the division into generated code (C++ on
the CPU, Triton on CUDA). Half precision is computed in float32 and rounded
once, as torch.softmax does. Gradients come from autograd through the
compiled function.

Compilation stays out of the timings: the timer warms up by time and records
the first call as ``first_call_s``. To keep the number of compilations small
(the CPU check suite has a budget of minutes), the input is brought to 2-D
(rows, vocab) with the reduced axis last before the compiled function sees
it, and shapes are dynamic, so one compiled graph per (op, device, dtype,
layout) serves every size (a single row, a view of a 3-D input, a strided
input, and on the CPU rows wider than 4096 are layouts of their own). On this
project's 2-core CPU machines the first compilation in a process costs about
20 s (Inductor's start-up, cold disk cache) and each further graph about 1 s.

Dynamo keeps at most ``recompile_limit`` graphs per function and then
silently runs eager code, which would benchmark torch eager under this name;
so each dtype gets a function of its own and the limit is raised (see
``_compiled``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import types
from functools import lru_cache
from typing import Callable, Optional

from softmax_bench import Backend

_RECOMPILE_LIMIT = 64


def _softmax_2d(x):
    import torch

    xw = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    e = (xw - xw.amax(dim=-1, keepdim=True)).exp()
    return (e / e.sum(dim=-1, keepdim=True)).to(x.dtype)


def _log_softmax_2d(x):
    import torch

    xw = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    z = xw - xw.amax(dim=-1, keepdim=True)
    return (z - z.exp().sum(dim=-1, keepdim=True).log()).to(x.dtype)


@lru_cache(maxsize=None)
def _compiled(op: str, dtype: str) -> Callable:
    """The compiled function for ``op`` on ``dtype`` inputs, made once per process.

    Dynamo counts recompilations per code object, so each dtype gets a copy of
    the function with a code object of its own: the limit then only has to
    cover the layouts (size-1 dimensions, views, strides, Inductor's split at
    4096 columns), about ten in the check suite, not ten times four dtypes.
    """
    import torch
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), _RECOMPILE_LIMIT))
    fn = {"softmax": _softmax_2d, "log_softmax": _log_softmax_2d}[op]
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{dtype}")
    return torch.compile(types.FunctionType(code, fn.__globals__, code.co_name), dynamic=True)


def _apply(op: str, x, axis: int):
    if x.numel() == 0:  # Inductor cannot trace reductions over an empty axis; the answer is empty
        return x.clone()
    import torch

    last = axis % x.ndim == x.ndim - 1
    # A 2-D input with the axis last goes in as it is (no view: views add guards
    # on their base and a compilation of their own); anything else as rows.
    moved = x if last else x.movedim(axis, -1)
    rows = moved if moved.ndim == 2 else moved.reshape(-1, moved.shape[-1])
    # Every row count, 1 included, shares one graph (no 0/1 specialisation).
    torch._dynamo.decorators.mark_unbacked(rows, 0)
    out = _compiled(op, str(x.dtype).removeprefix("torch."))(rows).reshape(moved.shape)
    return out if last else out.movedim(-1, axis)


def softmax(x, axis=-1):
    return _apply("softmax", x, axis)


def log_softmax(x, axis=-1):
    return _apply("log_softmax", x, axis)


def unavailable(device: str) -> Optional[str]:
    """Why torch.compile cannot compile for ``device`` here (torch itself is checked by the adapter)."""
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported

        check_if_dynamo_supported()  # raises with the reason (e.g. an unsupported Python)
    except Exception as exc:
        return f"torch.compile is not supported here: {exc}"
    if device == "cpu":
        cxx = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")
        if shutil.which(cxx) is None:
            return f"torch.compile on cpu needs a C++ compiler: {cxx} not found (set CXX)"
    elif importlib.util.find_spec("triton") is None:
        return "torch.compile on cuda needs triton (pip install triton)"
    return None


backend = Backend(
    name="torch-compile",
    library="torch",
    devices=("cpu", "cuda"),
    dtypes=("float64", "float32", "float16", "bfloat16"),
    softmax=softmax,
    log_softmax=log_softmax,
    available=unavailable,
    description="torch.compile(dynamic=True) of exp(x - max) / sum, half in float32",
)
