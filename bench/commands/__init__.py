"""The command layer: one module per ``softmax-bench`` verb, and the dispatch to it.

This is the only place where parsed arguments (``argparse.Namespace``) exist:
each verb module unpacks them and calls the engine with explicit values.
A verb module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). Adding a verb is one new module here
and one line in ``VERBS`` (``gpu-run`` lives in ``gpu_run.py``).

Exit codes are part of the contract (DESIGN.md): 0 success, 1 a failure the
command exists to detect (a failed check, a slowdown), 2 bad usage. Bad input
gets one line naming the problem and the valid choices, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from ..errors import UsageError

PROG = "softmax-bench"

VERBS = (
    "list",
    "check",
    "run",
    "report",
    "compare",
    "gpu-run",
    "publish",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage and two lines; we want one
        raise UsageError(message)


def verb(name: str):
    """The module of verb ``name``."""
    return importlib.import_module(f"{__name__}.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb in ``VERBS``."""
    parser = _Parser(prog=PROG, description="Benchmark softmax implementations: accuracy, overflow behaviour, speed.")
    from .. import __version__  # here, not at the top: the package's __init__ may import this module

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in VERBS:
        module = verb(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv``, run the verb, return its exit status (2 and one line on stderr for bad usage)."""
    try:
        args = build_parser().parse_args(argv)
        return verb(args.command).run(args)
    except UsageError as exc:  # ResultsError included
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
