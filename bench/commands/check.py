"""``softmax-bench check``: the shared correctness suite; exit 0 when every judged case passes, 1 otherwise."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import UsageError
from . import options

HELP = "run the shared correctness suite"


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_selection(p)
    p.add_argument("--op", choices=("cross_entropy", "linear_cross_entropy"), default=None,
                   help="cross_entropy: only the loss and its gradient of the shared suite, the cases of loss options "
                        "among them; linear_cross_entropy: that op's own suite (see softmax_bench.measure.lce)")
    options.add_loss_options(p)
    p.add_argument("--case", action="append", default=[], metavar="C", help="case to run (repeatable; default: all)")
    p.add_argument("--jobs", "-j", type=options.positive_int, default=None, metavar="N",
                   help="backends checked at once, each in its own worker (default: the number of CPUs, at most 4)")
    options.add_world_size(p)
    options.add_plugin(p)
    options.add_engine(p)


def run(args: argparse.Namespace) -> int:
    from ..report.check_summary import summarise
    from ..measure.cases import CE_OPS
    from ..measure.checks import convention_units, plan, prime_references, select_cases, skipped_options
    from ..distributed.plan import Groups, check_units
    from ..measure.suite import execute

    registry = options.registry(args)
    selection = options.selection(args, registry)
    if args.op == "linear_cross_entropy":
        return _check_lce(args, registry, selection)
    if args.loss_options and args.op == "linear_cross_entropy":
        raise UsageError("--loss-options applies to --op cross_entropy; linear_cross_entropy takes none yet")
    chosen = select_cases(args.case, args.loss_options)
    # --loss-options checks the loss alone (its cases are the catalog's cross-entropy cases under those options).
    ops = CE_OPS if args.op == "cross_entropy" or args.loss_options else None
    options.say_skipped(selection)
    if ops:
        for name, reason in skipped_options(selection.single_process, chosen, selection.plugin_files):
            print(f"skipped {name}: {reason}", file=sys.stderr)
    if not selection.targets:
        print("nothing to check: no selected backend is available here", file=sys.stderr)
        return 0
    results = options.results(args)
    prime_references(selection.single_process, chosen, selection.plugin_files, ops)
    units = plan(selection.single_process, chosen, selection.plugin_files, ops)
    if not ops:
        units += convention_units(chosen)  # what torch, jax and scipy do, beside every matrix
    jobs = args.jobs or min(os.cpu_count() or 1, 4)
    stop_at = options.deadline(args)
    try:
        with options.executor(args) as executor, Groups(args.timeout, args.memory_limit) as groups:
            sharded = check_units(selection.targets, chosen, selection.plugin_files, args.world_size or [2], groups, ops)
            execute(units, results, executor, desc="check", jobs=jobs, deadline=stop_at)
            execute(sharded, results, executor, desc="check (distributed)", deadline=stop_at)
    except KeyboardInterrupt:
        print(f"interrupted: {len(results.records)} records kept in {results.path}", file=sys.stderr)
        return 130
    summarise(results.records)
    print(f"\nresults: {results.path}")
    failed = any(r.get("passed") is False for r in results.records if not r.get("reference"))
    return 1 if failed else 0


def _check_lce(args: argparse.Namespace, registry, selection) -> int:
    """Every linear cross-entropy case for every selected backend that declares the op, in process."""
    from ..measure import lce

    targets = options.lce_targets(registry, selection, "check")
    if not targets:
        return 0
    results = options.results(args)
    ok = lce.run_checks(targets, registry, results)
    print(f"\nresults: {results.path}")
    return 0 if ok else 1
