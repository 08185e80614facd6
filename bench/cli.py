"""The ``softmax-bench`` command line: list, check, run, report, compare.

Exit codes are part of the contract (DESIGN.md): 0 success, 1 a failure the
command exists to detect (a failed check, a slowdown), 2 bad usage. Bad input
gets one line naming the problem and the valid choices, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from typing import Optional, Sequence

from .backend import DEVICES, DTYPES
from .registry import Registry, RegistryWarning
from .registry import load as load_registry

PROG = "softmax-bench"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage and two lines; we want one
        raise UsageError(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0")
    return value


def _byte_size(text: str) -> int:
    """Bytes from '512M', '2G', '1.5GiB' or a plain integer; 0 means no limit."""
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    clean = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = clean, ""
    if clean and clean[-1] in "kmgt":
        number, unit = clean[:-1], clean[-1]
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (examples: 4G, 512M, 1000000)") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a size >= 0")
    return int(value * units[unit])


def _add_selection(p: argparse.ArgumentParser, devices: bool = True) -> None:
    p.add_argument("--backend", action="append", default=[], metavar="NAME", help="backend to include (repeatable; default: all)")
    p.add_argument("--dtype", action="append", default=[], metavar="D", help=f"dtype (repeatable; {', '.join(DTYPES)})")
    if devices:
        p.add_argument("--device", action="append", default=[], metavar="D", help=f"device (repeatable; {', '.join(DEVICES)}; default: every available one)")


def _add_plugin(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="load backends from a single Python file (repeatable)")


def _add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="FILE", help="results file (default: results/<time>-<host>.json)")
    p.add_argument("--resume", metavar="FILE", help="continue an interrupted run, skipping what FILE holds")
    p.add_argument("--timeout", type=_positive_float, default=120.0, metavar="SECONDS", help="per-case limit before a backend counts as hung (default 120)")
    p.add_argument("--memory-limit", type=_byte_size, default=None, metavar="SIZE", help="memory a backend worker may use (default 80%% of RAM; 0: none)")
    p.add_argument("--no-isolate", action="store_true", help="run backends in this process (debugging; no timeout or crash protection)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Benchmark softmax implementations: accuracy, overflow behaviour, speed.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list every backend and whether it can run here")
    p.add_argument("--backend", action="append", default=[], metavar="NAME", help="only these backends")
    p.add_argument("--format", choices=("table", "json"), default="table")
    _add_plugin(p)

    p = sub.add_parser("check", help="run the shared correctness suite")
    _add_selection(p)
    p.add_argument("--case", action="append", default=[], metavar="C", help="case to run (repeatable; default: all)")
    p.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                   help="backends checked at once, each in its own worker (default: the number of CPUs, at most 4)")
    _add_plugin(p)
    _add_engine(p)

    p = sub.add_parser("run", help="correctness summary plus timing; prints the comparison table")
    _add_selection(p)
    p.add_argument("--sizes", metavar="SPEC", help="comma-separated ROWSxVOCAB (8x128256), ROWSxMODEL (8xllama3) or presets (quick, default, full, small, llama2, gpt2, llama3, qwen2, gemma)")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats: proves the run works, not for judging speed")
    p.add_argument("--mode", choices=("warm", "cold", "both"), default="both", help="cache state to time (default: both)")
    p.add_argument("--max-bytes", type=_byte_size, default=None, metavar="SIZE", help="skip sizes whose working set exceeds this (default: half of free memory)")
    p.add_argument("--no-check", action="store_true", help="skip the correctness summary")
    _add_plugin(p)
    _add_engine(p)

    p = sub.add_parser("report", help="tables and plots from results files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("markdown", "github", "html", "latex"), default="markdown")
    p.add_argument("--out", metavar="DIR", help="write report and plots to DIR instead of printing")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable results files with a warning")
    p.add_argument("--readme", metavar="FILE", help="also put the report between the markers in FILE (needs --out; see results/README.md)")

    p = sub.add_parser("compare", help="per-benchmark ratios between two results files")
    p.add_argument("baseline", metavar="A")
    p.add_argument("contender", metavar="B")
    p.add_argument("--threshold", type=_nonneg_float, default=0.10, metavar="F", help="relative change that counts (default 0.10)")
    p.add_argument("--format", choices=("markdown", "github", "html", "latex"), default="github")
    return parser


def load(args: argparse.Namespace) -> Registry:
    """The registry with the command's plugin files; warnings go to stderr, one line each."""
    from pathlib import Path

    for path in getattr(args, "plugin", []):
        if not Path(path).is_file():
            raise UsageError(f"--plugin {path}: no such file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegistryWarning)
        registry = load_registry(getattr(args, "plugin", []))
    for message in registry.warnings:
        print(f"warning: {message}", file=sys.stderr)
    return registry


def choose(given: Sequence[str], valid: Sequence[str], what: str) -> list[str]:
    """``given`` if every entry is valid (default: all of ``valid``), else ``UsageError``."""
    for item in given:
        if item not in valid:
            raise UsageError(f"unknown {what} {item!r}; valid: {', '.join(valid) or '(none)'}")
    return list(dict.fromkeys(given)) if given else list(valid)


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    registry = load(args)
    names = choose(args.backend, registry.names(), "backend")
    entries = []
    for name in names:
        b = registry.get(name)
        availability = {device: registry.unavailable(name, device) for device in b.devices}
        entries.append({
            "name": name, "library": b.library, "devices": list(b.devices), "dtypes": list(b.dtypes),
            "ops": list(b.ops), "description": b.description, "origin": b.origin, "unavailable": availability,
        })
    if args.format == "json":
        print(json.dumps(entries, indent=1))
        return 0
    rows = []
    for e in entries:
        status = "; ".join(f"{d}: {'yes' if why is None else 'no, ' + why}" for d, why in e["unavailable"].items())
        rows.append([e["name"], e["library"], ",".join(e["devices"]), ",".join(e["dtypes"]), ",".join(e["ops"]), status])
    print(tabulate(rows, headers=["backend", "library", "devices", "dtypes", "ops", "available"], tablefmt="simple"))
    return 0


def _command(name: str):
    """The function for a command; heavy modules load only for the command that needs them."""
    if name == "list":
        return cmd_list
    if name == "check":
        from .checks import cmd_check

        return cmd_check
    if name == "run":
        from .timing import cmd_run

        return cmd_run
    if name == "report":
        from .report import cmd_report

        return cmd_report
    from .compare import cmd_compare

    return cmd_compare


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script; returns the exit status."""
    from .results import ResultsError

    try:
        args = build_parser().parse_args(argv)
        return _command(args.command)(args)
    except (UsageError, ResultsError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
