"""The GPU run: correctness check and timings of every CUDA backend, in one command.

    python -m softmax_bench.gpu_run --out results/gpu-h100.json

For the machine that has a GPU and no network: it installs and downloads
nothing (see README.md, "GPU", for carrying the wheels there). It is a thin
driver over the command line, equivalent to

    softmax-bench check --device cuda --backend B... --dtype float32 --dtype float16 --dtype bfloat16 --out OUT-check.json
    softmax-bench run   --device cuda --backend B... (same dtypes) --sizes 4096x32000,4096x128256,4096x256000 --out OUT

with B every registered backend that declares the "cuda" device (``--backend``
narrows it). Each backend is combined only with the dtypes it supports.
``--dry-run`` prints the two commands instead of running them. Exit status:
the larger of the two commands' (0 all passed, 1 a check failed, 2 bad usage),
or 1 when no GPU backend can run here, with each backend's reason.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import cli
from .errors import UsageError
from .registry import Registry
from .selection import choose, load_registry

SIZES = "4096x32000,4096x128256,4096x256000"
DTYPES = ("float32", "float16", "bfloat16")


def gpu_backends(registry: Registry) -> list[str]:
    """Every registered backend that declares the CUDA device."""
    return [name for name in registry.names() if "cuda" in registry.get(name).devices]


def commands(backends: Sequence[str], out: Path, plugins: Sequence[str] = ()) -> list[list[str]]:
    """The ``check`` and ``run`` argument lists for ``softmax_bench.cli.main``."""
    selection = ["--device", "cuda"]
    for name in backends:
        selection += ["--backend", name]
    for dtype in DTYPES:
        selection += ["--dtype", dtype]
    for path in plugins:
        selection += ["--plugin", path]
    check_out = out.with_name(f"{out.stem}-check{out.suffix}")
    return [
        ["check", *selection, "--out", str(check_out)],
        ["run", *selection, "--sizes", SIZES, "--out", str(out)],
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m softmax_bench.gpu_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=f"results/gpu-{socket.gethostname()}.json", metavar="FILE",
                        help="results file of the timing run; the check writes FILE's name with -check (default: results/gpu-<host>.json)")
    parser.add_argument("--backend", action="append", default=[], metavar="NAME", help="only these backends (repeatable)")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="also load backends from a file (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)

    # JAX takes 75% of GPU memory on first use; its worker would starve the
    # others (torch, CuPy, Triton) that run beside it. Workers inherit this.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    try:
        registry = load_registry(args.plugin)
        names = choose(args.backend, gpu_backends(registry), "GPU backend")
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    for message in registry.warnings:
        print(f"warning: {message}", file=sys.stderr)
    steps = commands(names, Path(args.out), args.plugin)
    if args.dry_run:
        for step in steps:
            print(shlex.join(["softmax-bench", *step]))
        return 0
    unavailable = {name: registry.unavailable(name, "cuda") for name in names}
    if all(unavailable.values()):
        print("no GPU backend can run here:", file=sys.stderr)
        for name, reason in unavailable.items():
            print(f"  {name}: {reason}", file=sys.stderr)
        return 1
    return max(cli.main(step) for step in steps)


if __name__ == "__main__":
    sys.exit(main())
