"""``softmax-bench report``: print the tables, or with ``--out`` write the report and plots."""

from __future__ import annotations

import argparse

from ..tables import FORMATS

HELP = "tables and plots from results files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=FORMATS, default="markdown")
    p.add_argument("--out", metavar="DIR", help="write report and plots to DIR instead of printing")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable results files with a warning")
    p.add_argument("--readme", metavar="FILE", help="also put the report between the markers in FILE (needs --out; see results/README.md)")


def run(args: argparse.Namespace) -> int:
    from ..documents import write_report
    from ..errors import UsageError
    from ..runs import load_runs, merge
    from ..tables import build_tables, render_tables

    if args.out is None and args.readme is not None:
        raise UsageError("--readme needs --out DIR, where the plots it links are written")
    runs = load_runs(args.files, skip_bad=args.skip_bad)
    records = merge(runs)
    if args.out is None:
        print(render_tables(build_tables(runs, records), args.format), end="")
        return 0
    for path in write_report(runs, records, args.out, args.format, readme=args.readme):
        print(path)
    return 0
