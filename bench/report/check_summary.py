"""The correctness suite on the console: per-backend counts, the overflow matrix, each failure.

What ``check`` prints after its run, and the few lines of ``run``'s
correctness summary. The records themselves are in the results file.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from ..core import dtypes as dt
from ..measure.cases import SPECIAL_CASES
from ..core.formatting import format_figure


def label(record: dict[str, Any]) -> str:
    """The backend, with the ranks it was sharded over when it was."""
    return record["backend"] + (f" x{record['world_size']}" if record.get("world_size") else "")


def summarise(records: Sequence[dict[str, Any]], out=None) -> None:
    """Per-backend pass/fail counts and worst ULP, the overflow matrix, and each failure."""
    out = out or sys.stdout
    from tabulate import tabulate

    mine = [r for r in records if not r.get("reference")]
    groups: dict[tuple, list] = {}
    for r in mine:
        groups.setdefault((label(r), r["device"], r["dtype"]), []).append(r)
    rows = []
    dtype_order = {d: i for i, d in enumerate(dt.DTYPES)}
    for (backend, device, dtype), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], dtype_order.get(kv[0][2], 9))):
        judged = [r for r in rs if r.get("passed") is not None]
        worst = [r.get("max_ulp") for r in rs if r["op"] == "softmax" and not r.get("special") and r.get("passed")]
        rows.append([backend, device, dtype, sum(r["passed"] is True for r in judged), sum(r["passed"] is False for r in judged),
                     sum(r.get("passed") is None for r in rs), format_figure(max((w for w in worst if w is not None), default=0.0))])
    print(tabulate(rows, headers=["backend", "device", "dtype", "passed", "failed", "recorded", "worst ULP (softmax, passing)"],
                   tablefmt="simple", colalign=("left", "left", "left", "right", "right", "right", "right")), file=out)
    matrix = overflow_matrix(records)
    if matrix:
        print("\nOverflow behaviour (softmax; x = judged and failed):", file=out)
        print(tabulate(matrix[1:], headers=matrix[0], tablefmt="simple"), file=out)
    failures = sorted((r for r in mine if r.get("passed") is False), key=lambda r: (r["backend"], r["device"], dtype_order.get(r["dtype"], 9)))
    if failures:
        print(f"\n{len(failures)} failure(s):", file=out)
        for r in failures:
            print(f"FAIL {label(r)} {r['device']} {r['dtype']} {r['case']} {r['op']}: {r.get('reason')}", file=out)


def overflow_matrix(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Rows: backend (dtype); columns: special cases; cells: behaviour of the softmax."""
    specials = list(SPECIAL_CASES)
    cells: dict[str, dict[str, str]] = {}
    for r in records:
        if r.get("op") != "softmax" or r.get("case") not in specials:
            continue
        label = f"{r['backend']} ({r['dtype']}, {r['device']})"
        cell = r["behaviour"] + (" x" if r.get("passed") is False else "")
        if r.get("subnormal") and r["case"] == "subnormal_output":
            cell = f"{cell}, {r['subnormal']}"
        cells.setdefault(label, {})[r["case"]] = cell
    if not cells:
        return []
    order = sorted(cells, key=lambda k: (k.startswith("ref."), k))
    return [["backend"] + specials] + [[k] + [cells[k].get(c, "") for c in specials] for k in order]




def print_run_summary(made: Sequence[dict[str, Any]], out=None) -> None:
    """One line per target: judged cases passed, worst ULP, and the cases that failed."""
    out = out or sys.stdout
    lines: dict[tuple, dict[str, Any]] = {}
    for r in made:
        key = (r["backend"], r["device"], r["dtype"])
        entry = lines.setdefault(key, {"pass": 0, "fail": [], "ulp": 0.0})
        if r.get("passed"):
            entry["pass"] += 1
            entry["ulp"] = max(entry["ulp"], r.get("max_ulp") or 0.0)
        elif r.get("passed") is False:
            entry["fail"].append(r["case"])
    for (backend, device, dtype), e in sorted(lines.items()):
        failed = f", FAILED {', '.join(e['fail'])}" if e["fail"] else ""
        print(f"correctness {backend} {device} {dtype}: {e['pass']}/{e['pass'] + len(e['fail'])} pass, "
              f"worst {format_figure(e['ulp'])} ULP{failed}", file=out)
