"""Run the Triton kernels under TRITON_INTERPRET=1 on CPU tensors; the tests' subprocess.

``python triton_worker.py JOBS.json INPUTS.npz OUT.npz``: each job names an
input case, an implementation (the real kernels or a planted bug), a path
(fused, or online forced on small rows with small tiles), a dtype and an op.
Outputs are saved as float64 under the job's id. The variable must be set
before triton is imported, which is why this runs in its own process: it
cannot leak into other tests.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from softmax_bench.backends import _triton_kernels as kernels  # noqa: E402


@triton.jit
def no_shift_fused(x_ptr, y_ptr, n, BLOCK: tl.constexpr, LOG: tl.constexpr):
    """Planted bug: exp(x) / sum(exp(x)), no max shift (overflows above 88.7)."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n
    x = tl.load(x_ptr + row * n + cols, mask=mask, other=float("-inf")).to(tl.float32)
    e = tl.exp(x)
    s = tl.sum(e, axis=0)
    if LOG:
        y = tl.log(e / s)
    else:
        y = e / s
    tl.store(y_ptr + row * n + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def no_guard_online(x_ptr, y_ptr, n, CHUNK: tl.constexpr, LOG: tl.constexpr):
    """Planted bug: the online kernel shifting by the raw running max (-inf - (-inf) = NaN)."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, CHUNK)
    m = tl.full((), float("-inf"), tl.float32)
    s = tl.zeros((), tl.float32)
    for start in range(0, n, CHUNK):
        x = tl.load(x_ptr + row * n + start + cols, mask=start + cols < n, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    for start in range(0, n, CHUNK):
        mask = start + cols < n
        x = tl.load(x_ptr + row * n + start + cols, mask=mask, other=float("-inf")).to(tl.float32)
        if LOG:
            y = (x - m) - tl.log(s)
        else:
            y = tl.exp(x - m) / s
        tl.store(y_ptr + row * n + start + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


IMPLS = {
    "real": {},
    "no-shift": {"fused": no_shift_fused},
    "no-guard": {"online": no_guard_online},
}
PATHS = {"fused": {}, "online": {"fused_max": 0, "chunk": 128}}  # 128-wide tiles: many per row


def run(job: dict, x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(x).to(getattr(torch, job["dtype"]))
    y = kernels.softmax_rows(t.contiguous(), log=job["op"] == "log_softmax", **PATHS[job["path"]], **IMPLS[job["impl"]])
    assert y.dtype == t.dtype and y.shape == t.shape
    return y.double().numpy()


def main(jobs_path: str, inputs_path: str, out_path: str) -> None:
    with open(jobs_path) as f:
        jobs = json.load(f)
    inputs = np.load(inputs_path)
    with np.errstate(all="ignore"):
        np.savez(out_path, **{job["id"]: run(job, inputs[job["case"]]) for job in jobs})


if __name__ == "__main__":
    main(*sys.argv[1:4])
