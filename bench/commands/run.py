"""``softmax-bench run``: correctness summary, timings, the comparison table, a results file."""

from __future__ import annotations

import argparse
import os
import sys

from ..backend import PASSES, TIMED_OPS
from ..core.sizes import PRESETS
from ..report.speed import BASELINE
from ..measure.timing import MODES
from ..errors import UsageError
from . import options

HELP = "correctness summary plus timing; prints the comparison table"


def op_pass(text: str) -> tuple[str, str]:
    """(op, pass) from "op.pass", e.g. "cross_entropy.full"."""
    op, _, pass_ = text.partition(".")
    if op not in TIMED_OPS or pass_ not in PASSES:
        raise argparse.ArgumentTypeError(f"{text!r}: not OP.PASS; ops: {', '.join(TIMED_OPS)}; passes: {', '.join(PASSES)}")
    return op, pass_


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_selection(p)
    p.add_argument("--sizes", metavar="SPEC", help="comma-separated ROWSxVOCAB (8x128256), ROWSxMODEL (8xllama3) or presets "
                   f"({', '.join(PRESETS)})")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats: proves the run works, not for judging speed")
    p.add_argument("--mode", choices=(*MODES, "both"), default="both", help="cache state to time (default: both)")
    p.add_argument("--op", action="append", choices=(*TIMED_OPS, "all", "linear_cross_entropy"), default=[], metavar="OP",
                   help=f"op to time (repeatable; {', '.join(TIMED_OPS)}, all; default: softmax); linear_cross_entropy "
                        "runs alone, with --sizes NxHxV")
    p.add_argument("--pass", dest="pass_", action="append", choices=(*PASSES, "all"), default=[], metavar="PASS",
                   help="fwd, bwd (the gradient given the saved forward), full (both in one call), all (repeatable; default: fwd)")
    p.add_argument("--pair", action="append", type=op_pass, default=[], metavar="OP.PASS",
                   help="time exactly this op in this pass (repeatable, e.g. --pair softmax.fwd --pair cross_entropy.full), "
                        "instead of every --op in every --pass")
    options.add_loss_options(p)
    p.add_argument("--threads", type=options.positive_int, default=None, metavar="N",
                   help="threads every library computes with (default: each library's own, all cores for torch and jax)")
    p.add_argument("--max-bytes", type=options.byte_size, default=None, metavar="SIZE", help="skip sizes whose working set exceeds this (default: half of free memory)")
    p.add_argument("--baseline", default=BASELINE, metavar="NAME", help=f"backend the table's ratios are taken against (default: {BASELINE})")
    p.add_argument("--no-check", action="store_true", help="skip the correctness summary")
    options.add_world_size(p)
    options.add_plugin(p)
    options.add_engine(p)


def run(args: argparse.Namespace) -> int:
    from ..report.check_summary import print_run_summary
    from ..measure.checks import RUN_SUMMARY_CASES, select_cases
    from ..measure.checks import plan as check_units
    from ..core.formatting import human_bytes
    from ..core.selection import choose
    from ..core.sizes import default_max_bytes, parse
    from ..report.speed import table
    from ..measure.suite import execute
    from ..measure.clock import DEFAULT_BUDGET, QUICK_BUDGET
    from ..distributed.plan import Groups
    from ..distributed.plan import timing_units as sharded_units
    from ..core.threads import environment
    from ..measure.planning import Plan, finalize, timing_units
    from ..core.records import options_label

    if "linear_cross_entropy" in args.op:
        return _run_lce(args)
    sizes = parse(args.sizes) if args.sizes is not None else PRESETS["quick" if args.quick else "default"]
    modes = list(MODES) if args.mode == "both" else [args.mode]
    ops = list(TIMED_OPS) if "all" in args.op else list(dict.fromkeys(args.op)) or ["softmax"]
    passes = list(PASSES) if "all" in args.pass_ else list(dict.fromkeys(args.pass_)) or ["fwd"]
    extra = []
    if args.quick and not (args.op or args.pass_):
        # --quick proves the gradient side runs too: one backward, one cross-entropy training step.
        extra = [(sizes[0], modes[0], "softmax", "bwd"), (sizes[0], modes[0], "cross_entropy", "full")]
    if args.pair and (args.op or args.pass_):
        raise UsageError("--pair names op and pass together; leave out --op and --pass")
    pairs = list(dict.fromkeys(args.pair)) or [(op, pass_) for op in ops for pass_ in passes]
    if args.loss_options and not any(op == "cross_entropy" for op, _ in pairs):
        raise UsageError("--loss-options are the cross-entropy's: add --op cross_entropy (or a --pair cross_entropy.PASS)")
    plan = Plan(sizes, modes, pairs, extra, args.loss_options)
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
    if args.threads is not None:
        os.environ.update(environment(args.threads))  # read by OpenMP, numba and XLA as the workers start
    results = options.results(args)
    stop_at = options.deadline(args)
    executor = options.executor(args)
    try:
        if not args.no_check:
            units = check_units(selection.single_process, select_cases(RUN_SUMMARY_CASES), selection.plugin_files, ops=("softmax",))
            print_run_summary(execute(units, results, executor, desc="correctness", deadline=stop_at))
        units = timing_units(selection, plan, budget, max_bytes or None, args.threads)
        # The groups start on a sharded unit's first run; planning the units starts nothing.
        with Groups(args.timeout, args.memory_limit, args.threads) as groups:
            world_sizes = args.world_size or [2]
            sharded = sharded_units(selection.targets, plan.items(), selection.plugin_files, world_sizes, groups, budget)
            # Every unit counted, the distributed ones too (each once per world size).
            distributed = f" ({len(sharded)} distributed, world size {', '.join(map(str, world_sizes))})" if sharded else ""
            print(f"timing {len(units) + len(sharded)} units{distributed}: {len(selection.targets)} targets"
                  f" x {len(sizes)} sizes x {len(modes)} modes x {len(plan.passes)} op/pass pairs"
                  f" (--max-bytes {human_bytes(max_bytes) if max_bytes else 'none'})", file=sys.stderr)
            execute(units, results, executor, desc="timing", deadline=stop_at)
            execute(sharded, results, executor, desc="timing (distributed)", deadline=stop_at)
    except KeyboardInterrupt:
        print(f"interrupted: {len(results.records)} records kept in {results.path}", file=sys.stderr)
        return 130
    finally:
        executor.close()
    if finalize(results.records):
        results.rewrite()
    wanted = {(t.backend, t.device, t.dtype) for t in selection.targets}
    planned = {(s.rows, s.vocab, m, o, p) for s, m, o, p in plan.items()}
    labels = {None} | {options_label(o.to_record()) for o in args.loss_options}
    records = [
        r for r in results.records
        if r.get("kind") == "timing" and (r["backend"], r["device"], r["dtype"]) in wanted
        and (r["rows"], r["vocab"], r.get("mode"), r.get("op"), r.get("pass")) in planned
        and options_label(r.get("options")) in labels
    ]
    print(table(records, baseline=args.baseline))
    if any(r.get("suspect") for r in records):
        print(f"{sum(1 for r in records if r.get('suspect'))} timing(s) suspect; see the note column", file=sys.stderr)
    if any(r.get("failure") for r in records):
        print(f"{sum(1 for r in records if r.get('failure'))} timing(s) failed; see the note column", file=sys.stderr)
    print(f"results: {results.path}")
    return 0


# The linear cross-entropy's inputs are three arrays of different shapes, which
# the timing units (one x of ROWSxVOCAB) do not describe: until the one engine
# takes an op's input shapes from the op, it runs its own loop, in process.
LCE_DEFAULT_SIZES = "256x256x8000"
LCE_QUICK_SIZES = "64x64x1000"


def _run_lce(args: argparse.Namespace) -> int:
    from ..measure import lce

    if len(set(args.op)) > 1 or args.pair:
        raise UsageError("--op linear_cross_entropy runs alone: leave out the other --op and --pair")
    shapes = lce.parse_shapes(args.sizes or (LCE_QUICK_SIZES if args.quick else LCE_DEFAULT_SIZES))
    passes = list(lce.PASSES) if "all" in args.pass_ else list(dict.fromkeys(args.pass_)) or ["full"]
    if set(passes) - set(lce.PASSES):
        raise UsageError(f"--op linear_cross_entropy has no pass {', '.join(sorted(set(passes) - set(lce.PASSES)))}"
                         f" (a fused call has no backward apart from its forward); valid: {', '.join(lce.PASSES)}, all")
    args.dtype = args.dtype or ["float32"]
    registry = options.registry(args)
    selection = options.selection(args, registry)
    targets = options.lce_targets(registry, selection, "time")
    if not targets:
        return 0
    results = options.results(args)
    if not args.no_check:
        lce.run_checks(targets, registry, results)
    lce.run_timings(targets, registry, results, shapes, passes, repeats=1 if args.quick else 3)
    print(f"results: {results.path}")
    return 0
