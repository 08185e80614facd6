"""Run the Triton kernels under TRITON_INTERPRET=1 on CPU tensors; the tests' subprocess.

``python triton_worker.py JOBS.json INPUTS.npz OUT.npz``: each job names an
input case, an implementation (the real kernels or a planted bug from
``triton_planted.py``), a path
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

from softmax_bench.backends import _triton_kernels as kernels  # noqa: E402
from triton_planted import no_guard_online, no_loop_online, no_shift_fused  # noqa: E402

IMPLS = {
    "real": {},
    "no-shift": {"fused": no_shift_fused},
    "no-guard": {"online": no_guard_online},
    "no-loop": {"online": no_loop_online},
}
# 128-wide tiles: many per row; "looping": two programs take every row between them.
PATHS = {"fused": {}, "online": {"fused_max": 0, "chunk": 128}, "looping": {"fused_max": 0, "chunk": 128, "programs": 2}}


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
