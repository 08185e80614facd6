"""``softmax-bench publish``: a fresh CPU run at the sizes people care about, then the page made from it.

Stages, in order, each its own verb called with its own arguments (so a
stage behaves exactly as that command typed by hand would) and each writing
its own results file under ``--results-dir`` as its units finish:

- ``check``: the shared correctness suite (``softmax-bench check``);
- ``default``: ``softmax-bench run`` at three vocabularies of the ``default`` preset;
- ``lmhead``: ``softmax-bench run`` at language-model-head sizes;
- ``page``: ``softmax-bench report --format html`` of those files (and any
  ``--with`` files, such as GPU results) into ``--out``.

A failure or Ctrl-C in a late stage leaves the earlier stages' files whole;
``--resume`` continues each file that exists, skipping what it holds, and
``--page-only`` rebuilds the page from the files as they are. Before the page
is written every timing file is checked to hold a measured record of each
op, pass and dtype asked for (a stage that was cut short, or a backend
failure that left a pass without a single figure, is reported, exit 1,
instead of being published with a hole).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import UsageError
from . import options

HELP = "fresh CPU check and timings (default and LM-head sizes), then the published page from them (about 35-40 min here)"

# What the page compares: both directions of the two softmaxes and one training step of the loss.
PAIRS = (("softmax", "fwd"), ("softmax", "bwd"), ("log_softmax", "fwd"), ("log_softmax", "bwd"), ("cross_entropy", "full"))
DTYPES = ("float32", "bfloat16")
# Scope measured to fit about 35 minutes on the 24 GiB, 2-core reference machine (docs/reports.md has
# the figures): one size of the default stage, every backend, pair and dtype, cold, took about 6 min;
# 1024 x 128256 about 20 s a unit (50 min a size), so the LM head is 1024 x 32000 (a training
# micro-batch of tokens over llama2's vocabulary). Three vocabularies at one row count: the headline
# figure draws a line per backend only there. Bigger machines: --default-sizes default --lmhead-sizes lmhead.
DEFAULT_SIZES = "8x32000,8x128256,8x256000"
LMHEAD_SIZES = "1024x32000"
# --quick: the smallest sizes that still go through every stage; proves the command, judges nothing.
QUICK_SIZES = {"default": "8x32000", "lmhead": "64x32000"}
DEFAULT_RESULTS_DIR = "results"
DEFAULT_OUT = "results/published"


@dataclass(frozen=True)
class Stage:
    """One measuring stage: its name, the verb it calls and the results file it writes."""

    name: str
    verb: str
    file_name: str

    def path(self, results_dir: str | Path) -> Path:
        return Path(results_dir) / self.file_name


STAGES = (
    Stage("check", "check", "publish-cpu-check.json"),
    Stage("default", "run", "publish-cpu-default.json"),
    Stage("lmhead", "run", "publish-cpu-lmhead.json"),
)
TIMING_STAGES = tuple(s.name for s in STAGES if s.verb == "run")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="one small size per timing stage, few repeats, the run's summary cases only: proves the command "
                        "works end to end in about a minute, not for judging speed")
    p.add_argument("--page-only", action="store_true",
                   help="measure nothing: rebuild the page from the stage files already in --results-dir")
    p.add_argument("--resume", action="store_true",
                   help="continue each stage file that exists (an interrupted publish), skipping the units it holds")
    p.add_argument("--results-dir", default=DEFAULT_RESULTS_DIR, metavar="DIR",
                   help=f"where the stage files are written and read (default: {DEFAULT_RESULTS_DIR})")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"where the page and its plots go (default: {DEFAULT_OUT})")
    p.add_argument("--with", dest="with_files", action="append", default=[], metavar="FILE",
                   help="another results file to put on the page beside this run, e.g. a GPU run (repeatable)")
    p.add_argument("--readme", metavar="FILE", help="also put the report between the markers in FILE (e.g. results/README.md)")
    p.add_argument("--default-sizes", default=DEFAULT_SIZES, metavar="SPEC",
                   help=f"sizes of the default stage (default: {DEFAULT_SIZES}; the whole preset: default)")
    p.add_argument("--lmhead-sizes", default=LMHEAD_SIZES, metavar="SPEC",
                   help=f"sizes of the lmhead stage (default: {LMHEAD_SIZES}; the whole preset: lmhead)")
    # cold: what an LM head sees (its logits are not cache-resident), and on this 480 MiB-L3 machine
    # about half the time of a warm unit, measured.
    p.add_argument("--mode", choices=("warm", "cold", "both"), default="cold", help="cache state to time (default: cold)")
    options.add_selection(p, devices=False)
    options.add_plugin(p)


def stage_argv(stage: Stage, args: argparse.Namespace, path: Path) -> list[str]:
    """The command line of ``stage``, as a user would type it, writing (or resuming) ``path``."""
    argv = [stage.verb, "--device", "cpu"]
    for flag, values in (("--backend", args.backend), ("--bench", args.bench), ("--skip", args.skip), ("--plugin", args.plugin)):
        for value in values:
            argv += [flag, value]
    argv += ["--resume", str(path)] if args.resume and path.exists() else ["--out", str(path)]
    if stage.verb == "check":
        if args.quick:
            from ..measure.checks import RUN_SUMMARY_CASES

            for case in RUN_SUMMARY_CASES:
                argv += ["--case", case]
        return argv
    for dtype in args.dtype or DTYPES:
        argv += ["--dtype", dtype]
    for op, pass_ in PAIRS:
        argv += ["--pair", f"{op}.{pass_}"]
    sizes = QUICK_SIZES[stage.name] if args.quick else getattr(args, f"{stage.name}_sizes")
    argv += ["--sizes", sizes, "--mode", args.mode, "--no-check"]
    if args.quick:
        argv.append("--quick")
    return argv


def timing_gaps(records: Iterable[dict[str, Any]], pairs: Sequence[tuple[str, str]], dtypes: Sequence[str]) -> list[str]:
    """Each (op, pass, dtype) asked for that no record measured ("log_softmax bwd bfloat16"), in the order asked.

    A record counts when it is a timing with a median: skipped, failed and
    missing units do not, so a stage cut short or a pass every backend failed
    shows up here.
    """
    measured = {(r.get("op", "softmax"), r.get("pass", "fwd"), r.get("dtype")) for r in records
                if r.get("kind") == "timing" and r.get("median_s") is not None}
    return [f"{op} {pass_} {dtype}" for op, pass_ in pairs for dtype in dtypes if (op, pass_, dtype) not in measured]


def check_gaps(records: Iterable[dict[str, Any]], dtypes: Sequence[str]) -> list[str]:
    """Each dtype asked for with no judged check record (``check float32``)."""
    checked = {r.get("dtype") for r in records if r.get("kind") == "check" and r.get("passed") is not None}
    return [f"check {dtype}" for dtype in dtypes if dtype not in checked]


def gaps(paths: dict[str, Path], dtypes: Sequence[str]) -> list[str]:
    """What the stage files lack, one line each naming the file ('' when they hold everything asked for)."""
    from ..core.results import load

    found: list[str] = []
    for name, path in paths.items():
        records = load(path)["records"]
        lacking = check_gaps(records, dtypes) if name == "check" else timing_gaps(records, PAIRS, dtypes)
        found += [f"{path}: no measured {what}" for what in lacking]
    return found


def run(args: argparse.Namespace) -> int:
    from . import build_parser, verb

    if args.page_only and args.resume:
        raise UsageError("--page-only measures nothing, so there is nothing to --resume; leave one out")
    args.device = ["cpu"]  # what every stage measures; GPU runs join the page through --with
    options.selection(args, options.registry(args))  # a bad name or regex stops here, before minutes of checks
    paths = {stage.name: stage.path(args.results_dir) for stage in STAGES}
    if args.page_only:
        absent = [str(p) for p in paths.values() if not p.exists()]
        if absent:
            raise UsageError(f"--page-only needs the stage files; missing: {', '.join(absent)} (run publish without --page-only)")
    else:
        Path(args.results_dir).mkdir(parents=True, exist_ok=True)
        for stage in STAGES:
            argv = stage_argv(stage, args, paths[stage.name])
            print(f"publish: stage {stage.name}: softmax-bench {' '.join(argv)}", file=sys.stderr, flush=True)
            status = verb(stage.verb).run(build_parser().parse_args(argv))
            if status == 130:  # Ctrl-C: the file holds what finished; --resume goes on from there
                return status
            # check exits 1 on failed cases: those are findings the page shows, not a reason to stop.
    missing = gaps(paths, args.dtype or DTYPES)
    if missing:
        for line in missing:
            print(f"publish: {line}", file=sys.stderr)
        print(f"publish: not publishing a page with these holes; rerun with --resume to fill them (the page in {args.out} is unchanged)",
              file=sys.stderr)
        return 1
    report = ["report", *map(str, paths.values()), *args.with_files, "--format", "html", "--out", args.out]
    if args.readme:
        report += ["--readme", args.readme]
    print(f"publish: stage page: softmax-bench {' '.join(report)}", file=sys.stderr, flush=True)
    return verb("report").run(build_parser().parse_args(report))
