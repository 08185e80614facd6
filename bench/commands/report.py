"""``softmax-bench report``: print the report, or with ``--out`` write it with its plots."""

from __future__ import annotations

import argparse

from ..report.render import FORMATS

HELP = "tables and plots from results files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=FORMATS, default="markdown")
    p.add_argument("--out", metavar="DIR", help="write report and plots to DIR instead of printing")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable results files with a warning")
    p.add_argument("--readme", metavar="FILE", help="also put the report between the markers in FILE (needs --out; see results/README.md)")


def run(args: argparse.Namespace) -> int:
    from ..report.documents import render_document, write_report
    from ..errors import UsageError
    from ..report.outline import build_report
    from ..report.runs import load_runs, merge, warn_stderr

    if args.out is None and args.readme is not None:
        raise UsageError("--readme needs --out DIR, where the plots it links are written")
    # Warnings go to stderr as they happen and into the report, where its readers see them too.
    warnings: list[str] = []

    def warn(message: str) -> None:
        warn_stderr(message)
        warnings.append(message)

    runs = load_runs(args.files, skip_bad=args.skip_bad, warn=warn)
    records = merge(runs, warn=warn)
    if args.out is None:
        print(render_document(build_report(runs, records, warnings), args.format), end="")
        return 0
    for path in write_report(runs, records, args.out, args.format, readme=args.readme, warnings=warnings):
        print(path)
    return 0
