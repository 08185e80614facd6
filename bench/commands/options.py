"""What several verbs share: argument types, option groups, and turning options into engine objects."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, Optional

from ..backend import DEVICES, DTYPES
from ..core.formatting import parse_bytes
from ..core.isolation import make_executor
from ..core.registry import Registry
from ..core.results import ResultsFile
from ..core.selection import Selection, filter_names, load_registry, select
from ..measure.suite import open_results


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0")
    return value


def byte_size(text: str) -> int:
    """Bytes from '512M', '2G', '1.5GiB' or a plain integer; 0 means no limit."""
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_selection(p: argparse.ArgumentParser, devices: bool = True) -> None:
    p.add_argument("--backend", action="append", default=[], metavar="NAME", help="backend to include (repeatable; default: all)")
    p.add_argument("-b", "--bench", action="append", default=[], metavar="REGEX",
                   help="also include every backend whose name REGEX finds, as asv's -b (repeatable; e.g. -b 'numba-.*')")
    p.add_argument("--skip", action="append", default=[], metavar="REGEX",
                   help="leave out the backends whose whole name REGEX matches (repeatable; e.g. --skip numba-naive)")
    p.add_argument("--dtype", action="append", default=[], metavar="D", help=f"dtype (repeatable; {', '.join(DTYPES)})")
    if devices:
        p.add_argument("--device", action="append", default=[], metavar="D", help=f"device (repeatable; {', '.join(DEVICES)}; default: every available one)")


def add_plugin(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="load backends from a single Python file (repeatable)")


def add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="FILE", help="results file (default: results/<time>-<host>.json)")
    p.add_argument("--resume", metavar="FILE", help="continue an interrupted run, skipping what FILE holds")
    p.add_argument("--timeout", type=positive_float, default=120.0, metavar="SECONDS", help="per-case limit before a backend counts as hung (default 120)")
    p.add_argument("--memory-limit", type=byte_size, default=None, metavar="SIZE", help="memory a backend worker may use (default 80%% of RAM; 0: none)")
    p.add_argument("--no-isolate", action="store_true", help="run backends in this process (debugging; no timeout or crash protection)")
    p.add_argument("--budget", type=positive_float, default=None, metavar="SECONDS",
                   help="start no unit after SECONDS; what is left is listed and --resume runs it later (default: no limit)")


def loss_options(text: str) -> Any:
    """A ``CrossEntropyOptions`` from 'reduction=mean,z_loss=1e-4' (argparse turns the error into one line, exit 2)."""
    from ..loss_options import OptionsError, parse

    try:
        return parse(text)
    except OptionsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_loss_options(p: argparse.ArgumentParser) -> None:
    from ..loss_options import OPTION_NAMES, REDUCTIONS

    names = ", ".join(n for n in OPTION_NAMES if n != "class_weight")
    p.add_argument("--loss-options", action="append", type=loss_options, default=[], metavar="NAME=VALUE,...",
                   help=f"cross-entropy loss options ({names}; reduction one of {', '.join(REDUCTIONS)}), e.g. "
                        "reduction=mean,z_loss=1e-4 (repeatable: each set is its own unit; '' is the plain loss)")


def add_world_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world-size", type=positive_int, action="append", default=[], metavar="N",
                   help="ranks a distributed (parallel=vocab) backend is sharded over (repeatable; default 2)")


def registry(args: argparse.Namespace) -> Registry:
    """The registry with the command's plugin files; its warnings go to stderr, one line each."""
    loaded = load_registry(args.plugin)
    for message in loaded.warnings:
        print(f"warning: {message}", file=sys.stderr)
    return loaded


def selection(args: argparse.Namespace, registry_: Registry) -> Selection:
    """The targets of --backend/--device/--dtype (``UsageError`` for a name that is not valid)."""
    names = args.backend
    if getattr(args, "bench", None) or getattr(args, "skip", None):
        names = filter_names(registry_.names(), args.backend, args.bench, args.skip)
    return select(names, args.device, args.dtype, registry_, args.plugin)


def say_skipped(chosen: Selection) -> None:
    """What cannot run here, one line each on stderr (after every option was validated)."""
    for name, device, reason in chosen.skipped:
        print(f"skipped {name} on {device}: {reason}", file=sys.stderr)


def lce_targets(registry_: Registry, chosen: Selection, verb: str) -> list:
    """The selected targets whose backend declares linear_cross_entropy; says what was skipped and, if none, why."""
    from ..measure import lce

    say_skipped(chosen)
    targets = [t for t in chosen.targets if lce.declares(registry_.get(t.backend))]
    if not targets:
        print(f"nothing to {verb}: no selected backend declares linear_cross_entropy here", file=sys.stderr)
    return targets


def results(args: argparse.Namespace) -> ResultsFile:
    """The results file of --out or --resume."""
    return open_results(args.out, args.resume)


def deadline(args: argparse.Namespace) -> Optional[float]:
    """The ``time.monotonic()`` after which no unit starts (--budget), or None."""
    return None if args.budget is None else time.monotonic() + args.budget


def executor(args: argparse.Namespace) -> Any:
    """Isolated workers unless --no-isolate, with --timeout and --memory-limit."""
    return make_executor(not args.no_isolate, timeout=args.timeout, memory_limit=args.memory_limit)
