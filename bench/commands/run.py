"""``softmax-bench run``: correctness summary, timings, the comparison table, a results file."""

from __future__ import annotations

import argparse
import sys

from ..sizes import PRESETS
from ..speed_table import BASELINE
from ..timing import MODES
from . import options

HELP = "correctness summary plus timing; prints the comparison table"


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_selection(p)
    p.add_argument("--sizes", metavar="SPEC", help="comma-separated ROWSxVOCAB (8x128256), ROWSxMODEL (8xllama3) or presets "
                   f"({', '.join(PRESETS)})")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats: proves the run works, not for judging speed")
    p.add_argument("--mode", choices=(*MODES, "both"), default="both", help="cache state to time (default: both)")
    p.add_argument("--max-bytes", type=options.byte_size, default=None, metavar="SIZE", help="skip sizes whose working set exceeds this (default: half of free memory)")
    p.add_argument("--baseline", default=BASELINE, metavar="NAME", help=f"backend the table's ratios are taken against (default: {BASELINE})")
    p.add_argument("--no-check", action="store_true", help="skip the correctness summary")
    options.add_plugin(p)
    options.add_engine(p)


def run(args: argparse.Namespace) -> int:
    from ..check_summary import print_run_summary
    from ..checks import RUN_SUMMARY_CASES, plan, select_cases
    from ..formatting import human_bytes
    from ..selection import choose
    from ..sizes import default_max_bytes, parse
    from ..speed_table import table
    from ..suite import execute
    from ..timer import DEFAULT_BUDGET, QUICK_BUDGET
    from ..timing_plan import timing_units

    sizes = parse(args.sizes) if args.sizes is not None else PRESETS["quick" if args.quick else "default"]
    modes = list(MODES) if args.mode == "both" else [args.mode]
    budget = QUICK_BUDGET if args.quick else DEFAULT_BUDGET
    args.dtype = args.dtype or ["float32"]  # every backend has float32; --dtype adds others
    registry = options.registry(args)
    selection = options.selection(args, registry)
    choose([args.baseline], registry.names(), "--baseline backend")
    options.say_skipped(selection)
    if not selection.targets:
        # Unavailable backends are skipped, never an error (DESIGN.md); say so and stop.
        print("nothing to time: no selected backend can run here with the selected devices and dtypes", file=sys.stderr)
        return 0
    max_bytes = args.max_bytes if args.max_bytes is not None else default_max_bytes()
    results = options.results(args)
    executor = options.executor(args)
    try:
        if not args.no_check:
            units = plan(selection.targets, select_cases(RUN_SUMMARY_CASES), selection.plugin_files, ops=("softmax",))
            print_run_summary(execute(units, results, executor, desc="correctness"))
        units = timing_units(selection, sizes, modes, budget, max_bytes or None)
        print(f"timing {len(selection.targets)} targets x {len(sizes)} sizes x {len(modes)} modes"
              f" (--max-bytes {human_bytes(max_bytes) if max_bytes else 'none'})", file=sys.stderr)
        execute(units, results, executor, desc="timing")
    except KeyboardInterrupt:
        print(f"interrupted: {len(results.records)} records kept in {results.path}", file=sys.stderr)
        return 130
    finally:
        executor.close()
    wanted = {(t.backend, t.device, t.dtype) for t in selection.targets}
    sizes_wanted = {(s.rows, s.vocab) for s in sizes}
    records = [
        r for r in results.records
        if r.get("kind") == "timing" and (r["backend"], r["device"], r["dtype"]) in wanted
        and (r["rows"], r["vocab"]) in sizes_wanted and r.get("mode") in modes
    ]
    print(table(records, baseline=args.baseline))
    if any(r.get("failure") for r in records):
        print(f"{sum(1 for r in records if r.get('failure'))} timing(s) failed; see the note column", file=sys.stderr)
    print(f"results: {results.path}")
    return 0
