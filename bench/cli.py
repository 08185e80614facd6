"""The ``softmax-bench`` command line: parse, dispatch to the verb's module, turn errors into exit codes.

Exit codes are part of the contract (DESIGN.md): 0 success, 1 a failure the
command exists to detect (a failed check, a slowdown), 2 bad usage. Bad input
gets one line naming the problem and the valid choices, never a traceback,
whether the tool is started as ``softmax-bench``, ``python -m softmax_bench``
or ``python -m softmax_bench.cli``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from .commands import VERBS
from .errors import UsageError

PROG = "softmax-bench"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage and two lines; we want one
        raise UsageError(message)


def _verb(name: str):
    return importlib.import_module(f"softmax_bench.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb in ``commands.VERBS``."""
    parser = _Parser(prog=PROG, description="Benchmark softmax implementations: accuracy, overflow behaviour, speed.")
    from . import __version__  # here, not at the top: the package's __init__ may import this module

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in VERBS:
        module = _verb(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return _verb(args.command).run(args)
    except UsageError as exc:  # ResultsError included
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
