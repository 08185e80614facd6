"""``softmax-bench compare A B``: the ratio table; exit 1 if anything got slower."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report.render import FORMATS
from . import options

HELP = "per-benchmark ratios between two results files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", metavar="A")
    p.add_argument("contender", metavar="B")
    p.add_argument("--threshold", type=options.nonneg_float, default=0.10, metavar="F", help="relative change that counts (default 0.10)")
    p.add_argument("--format", choices=FORMATS, default="github")


def run(args: argparse.Namespace) -> int:
    from ..report.comparison import KEY, compare, summary, tables
    from ..errors import UsageError
    from ..core.results import load
    from ..report.runs import machine_label
    from ..report.render import render_table

    a_doc, b_doc = load(args.baseline), load(args.contender)
    comparison = compare(a_doc["records"], b_doc["records"], args.threshold)
    if not comparison.changes:
        raise UsageError(f"{args.baseline} and {args.contender} share no benchmark "
                         f"(timing records are matched on {', '.join(KEY)})")
    # File names, not paths, in the table: the paths are in the command the reader typed.
    for table in tables(comparison, Path(args.baseline).name, Path(args.contender).name,
                        machine_label(a_doc["environment"]), machine_label(b_doc["environment"])):
        print(render_table(table, args.format))
    print(summary(comparison))
    return 1 if comparison.regressed else 0
