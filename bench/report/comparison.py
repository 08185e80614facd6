"""Per-benchmark speed ratios between two runs (what ``softmax-bench compare A B`` prints).

Timing records are matched on ``KEY``; the ratio is B/A of the median time per
call. A change counts when it is beyond the threshold t in either direction,
symmetrically on a log scale (as ``asv continuous -f``): slower when
B/A > 1 + t, faster when B/A < 1 / (1 + t). A benchmark that has a time in A
and a recorded failure in B counts as slower: it broke.

A timing the engine marked ``suspect`` (faster than any copy on the device,
below the timer's resolution, wrong outputs, a mutated input) is never a win:
its verdict is "suspect in B", "suspect in A" or "suspect in both", whatever
the ratio. A benchmark trusted in A and suspect in B counts as a regression,
as a failure in B does: the contender's figure cannot be vouched for, and a
gate that let it pass would pass a broken kernel that merely looks fast.
Suspect in A only, or in both, is not counted either way.

Records from before ``pass`` match on ``pass`` fwd (a softmax forward), so
an old file compares with a new one on what both measured.

Exit status: 1 when anything got slower (or failed, or became suspect in B),
0 otherwise, 2 on bad usage (including two files with no benchmark in common).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ..core.formatting import MISSING, format_seconds, format_size
from .runs import complete_timings
from .tables import Cell, Notes, Table, constant_text, dim_name, is_suspect, order_key, pass_label, split_dims

# What makes two timing records the same benchmark (absent op and pass: softmax fwd, as runs.TIMING_DEFAULTS).
KEY = ("backend", "device", "dtype", "rows", "vocab", "op", "pass", "options", "mode", "world_size")
_SHOWN_DIMS = ("device", "dtype", "op", "pass", "options", "mode", "world_size")  # folded into the caption when constant

SLOWER, FASTER, SAME, BROKEN = "slower", "faster", "", "failed in B"
SUSPECT_B, SUSPECT_A, SUSPECT_BOTH = "suspect in B", "suspect in A", "suspect in both"
REGRESSIONS = (SLOWER, BROKEN, SUSPECT_B)
_KINDS = {SLOWER: "slower", FASTER: "faster", BROKEN: "failed", SUSPECT_B: "suspect", SUSPECT_A: "suspect",
          SUSPECT_BOTH: "suspect"}


@dataclass
class Change:
    """One benchmark present in both files."""

    a: dict[str, Any]
    b: dict[str, Any]
    ratio: Optional[float]  # B/A of median_s; None when either has no time
    verdict: str  # SLOWER, FASTER, SAME, BROKEN, or why there is no ratio

    @property
    def regressed(self) -> bool:
        return self.verdict in REGRESSIONS


@dataclass
class Comparison:
    """Every matched benchmark, and those only one file has."""

    changes: list[Change]
    only_a: list[dict[str, Any]]
    only_b: list[dict[str, Any]]
    threshold: float

    @property
    def regressed(self) -> bool:
        return any(c.regressed for c in self.changes)


def _shown(record: dict[str, Any], dim: str) -> Any:
    """A key field as compared and shown: a forward timed through a fused forward+backward is not
    a plain forward; one process (world size 1, or none recorded) is no world size."""
    if dim == "pass":
        return pass_label(record)
    if dim == "world_size":
        return None if record.get("world_size") in (None, 1) else record["world_size"]
    return record.get(dim)


def _key(record: dict[str, Any]) -> tuple:
    return tuple(_shown(record, f) for f in KEY)


def _timings(records: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    # A unit of work recorded twice in one file (no run writes that) keeps its last record.
    return {_key(r): r for r in complete_timings(records) if r["kind"] == "timing"}


def verdict(a: dict[str, Any], b: dict[str, Any], threshold: float) -> tuple[Optional[float], str]:
    """The ratio B/A and what it means at ``threshold`` (a suspect timing overrides the ratio)."""
    ta, tb = a.get("median_s"), b.get("median_s")
    if ta is not None and tb is not None:
        if ta == 0:  # a timer that read 0 cannot be divided by; any real time after it is slower
            ratio = 1.0 if tb == 0 else math.inf
        else:
            ratio = tb / ta
        if is_suspect(a) or is_suspect(b):
            return ratio, SUSPECT_BOTH if is_suspect(a) and is_suspect(b) else SUSPECT_B if is_suspect(b) else SUSPECT_A
        if ratio > 1 + threshold:
            return ratio, SLOWER
        if ratio < 1 / (1 + threshold):
            return ratio, FASTER
        return ratio, SAME
    if ta is not None:
        return None, BROKEN if b.get("failure") else "no time in B"
    if tb is not None:
        return None, "no time in A"
    return None, "no time in either"


def compare(a_records: Sequence[dict[str, Any]], b_records: Sequence[dict[str, Any]],
            threshold: float = 0.10) -> Comparison:
    """Match the timing records of two runs and judge each ratio against ``threshold``."""
    a, b = _timings(a_records), _timings(b_records)
    changes = [Change(a[k], b[k], *verdict(a[k], b[k], threshold)) for k in a if k in b]

    # Regressions first, worst first; then the rest by ratio; no ratio last.
    def order(c: Change) -> tuple:
        rank = 0 if c.regressed else 1 if c.ratio is not None else 2
        return (rank, -(c.ratio if c.ratio is not None else 0.0), _sortable(c.a))

    changes.sort(key=order)
    return Comparison(changes, [a[k] for k in a if k not in b], [b[k] for k in b if k not in a], threshold)


def _sortable(record: dict[str, Any]) -> tuple:
    """Ties in table order: backend, then device, dtype, mode, op and pass as the report orders them, then size."""
    return (record["backend"], *(order_key(d, record.get(d)) for d in ("device", "dtype", "mode", "op", "pass")),
            record["vocab"], record["rows"])


def _dims_and_size(record: dict[str, Any], varying: Sequence[str]) -> list[str]:
    shown = [_shown(record, d) for d in varying]
    return ([record["backend"]] + ["1" if v is None and d == "world_size" else str(v) for d, v in zip(varying, shown)]
            + [format_size(record["rows"], record["vocab"])])


def _split(records: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    return split_dims([{d: _shown(r, d) for d in _SHOWN_DIMS} for r in records], _SHOWN_DIMS)


def _verdict_cell(change: Change, notes: Notes) -> str:
    if change.verdict not in _KINDS:
        return change.verdict
    reasons = [f"{side}: {r['suspect']}" for side, r in (("A", change.a), ("B", change.b)) if is_suspect(r)]
    return Cell(change.verdict, note=notes.number("; ".join(reasons)), kind=_KINDS[change.verdict])


def tables(comparison: Comparison, a_name: str, b_name: str, a_machine: str, b_machine: str) -> list[Table]:
    """The ratio table, and the benchmarks only in A or only in B when there are any."""
    varying, constant = _split([c.a for c in comparison.changes])
    t = comparison.threshold
    notes = Notes()
    rows = []
    for c in comparison.changes:
        ratio = MISSING if c.ratio is None else "inf" if math.isinf(c.ratio) else f"{c.ratio:.2f}"
        rows.append(_dims_and_size(c.a, varying) + [format_seconds(c.a.get("median_s")),
                                                    format_seconds(c.b.get("median_s")), ratio, _verdict_cell(c, notes)])
    machines = (f" A ran on {a_machine}, B on {b_machine}: the ratios compare machines as well as code."
                if a_machine != b_machine else f" Machine: {a_machine}.")
    constant.pop("machine", None)
    result = [Table(
        title="Changes",
        caption=(f"Median time per call in A ({a_name}) and B ({b_name}), and B/A. slower: B/A above {1 + t:.2f}; "
                 f"faster: B/A below 1/{1 + t:.2f} = {1 / (1 + t):.2f}; failed in B: timed in A, a recorded failure "
                 "in B; suspect in B (or A, or both): a timing the engine does not trust (the reason in the notes), "
                 "never counted faster; suspect in B counts as a regression, like a failure. Slowest first."
                 + machines + constant_text(constant)),
        headers=["backend"] + [dim_name(d) for d in varying] + ["size", "A", "B", "B/A", "change"],
        rows=rows,
        align=["left"] * (len(varying) + 2) + ["right"] * 3 + ["left"],
        notes=notes.texts,
    )]
    for title, only, name in (("Only in A", comparison.only_a, a_name), ("Only in B", comparison.only_b, b_name)):
        if not only:
            continue
        shown, same = _split(only)
        shown = [d for d in _SHOWN_DIMS if d in shown or d in varying]
        result.append(Table(
            title=title,
            caption=(f"Benchmarks only in {name}, with no match in the other file."
                     + constant_text({d: v for d, v in same.items() if d not in shown})),
            headers=["backend"] + [dim_name(d) for d in shown] + ["size", "median"],
            rows=[_dims_and_size(r, shown) + [format_seconds(r.get("median_s"))] for r in only],
            align=["left"] * (len(shown) + 2) + ["right"],
        ))
    return result


def summary(comparison: Comparison) -> str:
    """One line: how many got slower, faster, stayed, broke, turned suspect, and the unmatched counts."""
    counts = {SLOWER: 0, FASTER: 0, SAME: 0, BROKEN: 0, SUSPECT_B: 0, SUSPECT_A: 0, SUSPECT_BOTH: 0}
    other = 0
    for c in comparison.changes:
        if c.verdict in counts:
            counts[c.verdict] += 1
        else:
            other += 1
    # No '%' or other markup here: the line follows tables of any format.
    return (f"{counts[SLOWER]} slower, {counts[FASTER]} faster, {counts[SAME]} within the threshold "
            f"({comparison.threshold:g}), {counts[BROKEN]} failed in B, {counts[SUSPECT_B]} suspect in B, "
            f"{counts[SUSPECT_A] + counts[SUSPECT_BOTH]} suspect in A or both, {other} without a time; "
            f"{len(comparison.only_a)} only in A, {len(comparison.only_b)} only in B")
