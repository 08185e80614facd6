"""The threads a timing runs with: set before the libraries start, recorded with every record.

torch and numba can be told at any time (``apply``); OpenMP, MKL and XLA read
their settings when they start, so ``environment`` gives the variables a
worker must have before it imports them (the command sets them before it
spawns its workers).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Optional

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def environment(n: int) -> dict[str, str]:
    """Environment variables that hold OpenMP, MKL, OpenBLAS, numba and XLA to ``n`` threads."""
    env = {name: str(n) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
    if n == 1:
        env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_XLA).strip()
    return env


def apply(n: Optional[int]) -> None:
    """Set the thread count of torch and numba where they are loaded (None: leave the defaults)."""
    if n is None:
        return
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "numba" in sys.modules:
        sys.modules["numba"].set_num_threads(min(n, sys.modules["numba"].config.NUMBA_NUM_THREADS))


def count(library: str, declared: Optional[Callable[[], int]] = None) -> int:
    """The threads a backend of ``library`` computes with in this process now (``declared``:
    the backend's own ``threads`` hook, which wins)."""
    if declared is not None:
        return int(declared())
    if library == "torch" and "torch" in sys.modules:
        return int(sys.modules["torch"].get_num_threads())
    if library == "jax":
        return 1 if SINGLE_THREAD_XLA.split()[0] in os.environ.get("XLA_FLAGS", "") else (os.cpu_count() or 1)
    return 1  # NumPy's own element-wise ops and reductions run on one thread
