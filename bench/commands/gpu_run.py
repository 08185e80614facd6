"""The GPU run: every CUDA backend checked and timed in one command, within a time budget.

    softmax-bench gpu-run --out-dir results --name gpu-h200 --budget 300

For a GPU machine rented in short slots, with no network (``tools/gpu-run.sh``
installs the project there first). It runs stages in order of importance,
each a ``softmax-bench`` command over every registered CUDA backend, each
writing its results file as it goes:

1. ``env``: the GPU, driver, CUDA, SM count, L2 and versions, and a device
   copy timed with CUDA events (``NAME-env.json``);
2. ``check``: the full case catalog in float32 and bfloat16 (``NAME-check.json``);
3. the LM-head timings: softmax ``fwd`` and cross_entropy ``full`` at
   4096 x 128256 (``NAME.json``);
4. the vocabulary-parallel backends through NCCL at world size 1 (one GPU
   allows no more), checked in float32 (``NAME-nccl-check.json``);
5. the same timings at 4096 x 32000 and 4096 x 256000, then the other
   passes: log_softmax ``fwd``, softmax and log_softmax ``bwd``;
6. ``check`` in float16.

No unit starts once ``--budget`` seconds have passed: what is left is
printed, and ``--resume`` of the same files runs it later. A stage that is
cut short or fails does not stop the next. A short table of the LM-head
timings is printed last (``--summary`` prints it again from the files).
``--dry-run`` prints the commands and runs nothing.
Exit status: 0, or 1 when a check failed or no CUDA backend can run here
(each reason printed), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ..core.registry import Registry
from ..core.results import environment, write_atomic
from ..core.selection import choose
from . import main as dispatch
from . import options

HELP = "check and time every CUDA backend in one command, within a time budget (a rented GPU slot)"

LM_HEAD = "4096x128256"
OTHER_SIZES = "4096x32000,4096x256000"
SIZES = f"4096x32000,{LM_HEAD},4096x256000"
# What an LM head costs: the softmax forward, and the loss with its gradient.
HEADLINE = ("--pair", "softmax.fwd", "--pair", "cross_entropy.full")
# Each stage's share of the budget at most, so the first cannot starve the rest.
CHECK_SHARE = 0.45
# Backends checked at once, each in its own worker: all of them, so a budget cut
# leaves every backend partly checked rather than some not at all.
CHECK_JOBS = 8


@dataclass(frozen=True)
class Stage:
    """One ``softmax-bench`` command of the GPU run."""

    name: str
    argv: tuple[str, ...]
    out: str          # the results file's suffix after NAME ("" for NAME.json)
    share: float = 1.0  # of the whole budget, at most


def gpu_backends(registry: Registry) -> list[str]:
    """Every registered backend that declares the CUDA device."""
    return [name for name in registry.names() if "cuda" in registry.get(name).devices]


def stages(single: Sequence[str], sharded: Sequence[str], plugins: Sequence[str] = ()) -> list[Stage]:
    """The run's commands, most important first; ``single`` and ``sharded`` name the backends."""
    extra = tuple(a for path in plugins for a in ("--plugin", path))

    def select(names: Sequence[str], *dtypes: str) -> tuple[str, ...]:
        return ("--device", "cuda", *(a for n in names for a in ("--backend", n)),
                *(a for d in dtypes for a in ("--dtype", d)), *extra)

    both = select(single, "float32", "bfloat16")
    timing = ("run", *both, "--mode", "cold", "--no-check")
    found = [
        Stage("check", ("check", *both, "--jobs", str(CHECK_JOBS)), "-check", CHECK_SHARE),
        # One command per stage: each starts a worker per backend (seconds each on a GPU).
        Stage("lm-head", (*timing, "--sizes", LM_HEAD, *HEADLINE), ""),
    ]
    if sharded:
        found.append(Stage("nccl check", ("check", *select(sharded, "float32"), "--world-size", "1"), "-nccl-check"))
    found += [
        Stage("other sizes", (*timing, "--sizes", OTHER_SIZES, *HEADLINE), ""),
        Stage("other passes", (*timing, "--sizes", SIZES, "--pair", "log_softmax.fwd", "--pair", "softmax.bwd",
                               "--pair", "log_softmax.bwd"), ""),
        Stage("check float16", ("check", *select(single, "float16"), "--jobs", str(CHECK_JOBS)), "-check"),
    ]
    return found


def probe(path: Path) -> dict[str, Any]:
    """The machine as the results will need it, and a device copy timed with CUDA events; written to ``path``."""
    found: dict[str, Any] = {"environment": environment()}
    try:
        import torch

        props = torch.cuda.get_device_properties(0)
        found["cuda"] = {
            "name": props.name, "capability": f"{props.major}.{props.minor}", "sms": props.multi_processor_count,
            "l2_bytes": getattr(props, "L2_cache_size", None), "memory_bytes": props.total_memory,
            "torch_cuda": torch.version.cuda, "torch": torch.__version__,
        }
        found["device_copy"] = _event_copy(torch)
    except Exception as exc:  # no torch, no device: say so and let the stages report the rest
        found["error"] = f"{type(exc).__name__}: {exc}"
    write_atomic(path, found)
    return found


def _event_copy(torch: Any, nbytes: int = 2 << 30, repeats: int = 20) -> dict[str, float]:
    """Median of ``repeats`` device-to-device copies of ``nbytes``, each between two CUDA events."""
    src = torch.randn(nbytes // 4, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    median = times[len(times) // 2]
    return {"bytes": nbytes, "median_s": median, "gbps": 2 * nbytes / median / 1e9, "counting": "read + write"}


def summary(results: Path, check: Path) -> str:
    """The short table printed last: the LM-head timings, and each target's check counts."""
    from tabulate import tabulate

    lines = []
    if check.exists():
        counts: dict[tuple, list[int]] = {}
        for r in json.loads(check.read_text())["records"]:
            if r.get("reference") or not r.get("judged"):
                continue
            c = counts.setdefault((r["backend"], r["dtype"]), [0, 0, 0])
            c[{True: 0, False: 1}.get(r.get("passed"), 2)] += 1
        lines.append(tabulate([(b, d, *c) for (b, d), c in sorted(counts.items())],
                              headers=("backend", "dtype", "passed", "failed", "not available")))
    if results.exists():
        rows = []
        for r in json.loads(results.read_text())["records"]:
            if r.get("kind") != "timing" or f"{r['rows']}x{r['vocab']}" != LM_HEAD:
                continue
            note = r.get("failure") or r.get("suspect") or r.get("reason") or ""
            peak = r.get("peak_bytes")
            rows.append((r["backend"], r["dtype"], f"{r.get('op')} {r.get('pass')}",
                         f"{r['median_s'] * 1e3:.3f}" if r.get("median_s") else "-",
                         f"{r['gbps']:.0f}" if r.get("gbps") else "-",
                         f"{r['device_copy_fraction']:.2f}" if r.get("device_copy_fraction") else "-",
                         f"{peak / 2**20:.0f}" if peak is not None else "-", note[:60]))
        rows.sort(key=lambda row: (row[2], row[1], row[0]))
        lines.append(tabulate(rows, headers=("backend", "dtype", f"op pass ({LM_HEAD})", "ms", "GB/s",
                                             "of copy", "peak MiB", "note")))
    return "\n\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", default="results", metavar="DIR", help="where the results files go (default: results)")
    p.add_argument("--name", default="gpu", help="the results files' stem: NAME.json, NAME-check.json, ... (default: gpu)")
    p.add_argument("--budget", type=options.positive_float, default=None, metavar="SECONDS",
                   help="start nothing after SECONDS from now; what is left is printed (default: no limit)")
    p.add_argument("--backend", action="append", default=[], metavar="NAME", help="only these backends (repeatable)")
    options.add_plugin(p)
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--summary", action="store_true", help="print the short table of the results files already there, run nothing")


def run(args: argparse.Namespace) -> int:
    out_dir, name, budget = Path(args.out_dir), args.name, args.budget
    if args.summary:
        print(summary(out_dir / f"{name}.json", out_dir / f"{name}-check.json"))
        return 0
    started = time.monotonic()

    # JAX takes 75% of GPU memory on first use; its worker would starve the
    # others (torch, CuPy, Triton) that run beside it. Workers inherit this.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # Nor may it keep more than this share: its allocator never hands memory back.
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.3")

    registry = options.registry(args)
    names = choose(args.backend, gpu_backends(registry), "GPU backend")
    sharded = [n for n in names if registry.get(n).parallel]
    single = [n for n in names if not registry.get(n).parallel]
    plan = stages(single, sharded, args.plugin)
    if args.dry_run:
        for stage in plan:
            print(shlex.join(["softmax-bench", *stage.argv, "--out", str(out_dir / f"{name}{stage.out}.json")]))
        return 0
    unavailable = {n: registry.unavailable(n, "cuda") for n in names}
    if all(unavailable.values()):
        print("no GPU backend can run here:", file=sys.stderr)
        for n, reason in unavailable.items():
            print(f"  {n}: {reason}", file=sys.stderr)
        return 1

    env = probe(out_dir / f"{name}-env.json")
    print(json.dumps({k: env.get(k) for k in ("cuda", "device_copy", "error")}, indent=1), flush=True)
    status = 0
    for stage in plan:
        path = out_dir / f"{name}{stage.out}.json"
        argv = [*stage.argv, *(["--resume", str(path)] if path.exists() else ["--out", str(path)])]
        if budget is not None:
            left = min(budget - (time.monotonic() - started), stage.share * budget)
            if left < 1:
                print(f"== {stage.name}: not run, the budget of {budget:g} s is spent", flush=True)
                continue
            argv += ["--budget", f"{left:.0f}"]
        print(f"== {stage.name} ({time.monotonic() - started:.0f} s): softmax-bench {shlex.join(argv)}", flush=True)
        code = dispatch(argv)
        if code not in (0, 1):
            print(f"== {stage.name}: exit {code}", flush=True)
        status = max(status, code if stage.argv[0] == "check" else 0)
    print(f"\n== done in {time.monotonic() - started:.0f} s\n", flush=True)
    print(summary(out_dir / f"{name}.json", out_dir / f"{name}-check.json"))
    return min(status, 1)
