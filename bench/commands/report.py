"""``softmax-bench report``: print the report, or with ``--out`` write it with its plots."""

from __future__ import annotations

import argparse

from ..report.render import FORMATS

# csv is not a table format of render (compare has no use for it): it is the records themselves.
REPORT_FORMATS = (*FORMATS, "csv")

HELP = "tables and plots from results files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="results files (JSON) to report on, merged in the order given")
    p.add_argument("--format", choices=REPORT_FORMATS, default="markdown",
                   help=f"output format ({', '.join(REPORT_FORMATS)}; default markdown); csv is one row per record, no plots")
    p.add_argument("--out", metavar="DIR", help="write report and plots (or report.csv) to DIR instead of printing")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable results files with a warning")
    p.add_argument("--readme", metavar="FILE", help="also put the report between the markers in FILE (needs --out; see results/README.md)")


def made_lines(args: argparse.Namespace) -> list[str]:
    """When (the UTC date, or $SOURCE_DATE_EPOCH's) and by which command the report is made.

    A date, not a time: regenerating unchanged results the same day rewrites
    identical bytes, and SOURCE_DATE_EPOCH pins it as reproducible builds do.
    """
    import datetime as dt
    import os
    import shlex
    from pathlib import Path

    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch.isdigit() else dt.datetime.now(dt.timezone.utc)
    def shown(path: object) -> str:  # relative where it lies below the working directory, so it reads the same anywhere
        full = Path(str(path)).absolute()
        return full.relative_to(Path.cwd()).as_posix() if full.is_relative_to(Path.cwd()) else str(path)

    argv = ["softmax-bench", "report", *map(shown, args.files)]
    if args.format != "markdown":
        argv += ["--format", args.format]
    for flag, value in (("--out", args.out), ("--readme", args.readme)):
        if value is not None:
            argv += [flag, shown(value)]
    if args.skip_bad:
        argv.append("--skip-bad")
    return [f"Made on {when.date().isoformat()} (UTC) by: {shlex.join(argv)}"]


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

    if args.format == "csv" and args.readme is not None:
        raise UsageError("--readme takes a markdown report; --format csv has no README block")
    runs = load_runs(args.files, skip_bad=args.skip_bad, warn=warn)
    records = merge(runs, warn=warn)
    if args.format == "csv":
        from pathlib import Path

        from ..report.export import records_csv

        text = records_csv(records)
        if args.out is None:
            print(text, end="")
        else:
            path = Path(args.out) / "report.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path)
        return 0
    if args.out is None:
        print(render_document(build_report(runs, records, warnings, made=made_lines(args)), args.format), end="")
        return 0
    for path in write_report(runs, records, args.out, args.format, readme=args.readme, warnings=warnings,
                             made=made_lines(args)):
        print(path)
    return 0
