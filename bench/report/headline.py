"""The headline of a report: what a reader wants first, as numbers.

Per op and pass (and machine, device, dtype, cache mode): the fastest backend
at each size with its GB/s, its share of the same-run device copy and its
speed-up over torch; the worst accuracy finding per dtype; the backend that
needs the least memory for a cross-entropy forward and backward. Backends are
compared as they ran: each at its own thread count (NumPy backends run one
thread, the compiled kernels all of them), and where a backend ran at
several, its fastest trusted time counts. The headline figures
(``plots.headline_figures``) draw the same groups.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional, Sequence

from ..core.formatting import MISSING, format_gbps, format_peak, format_percent, format_size, format_ulp
from .tables import (Table, constant_text, dim_name, is_reference, is_suspect, order_key,
                     speed_records, split_dims)

TORCH = "torch-fused"  # the speed-up baseline: what most people run
# A headline group: what a line of the headline figure and a row of its table compare across.
HEADLINE_DIMS = ("machine", "device", "dtype", "mode", "op", "pass")


def _trusted(record: dict[str, Any]) -> bool:
    return record.get("median_s") is not None and not is_suspect(record)


def best_per_backend(records: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, dict[tuple, dict[str, Any]]]]:
    """Headline group -> backend -> (rows, vocab) -> its fastest trusted timing (over thread counts and world sizes)."""
    groups: dict[tuple, dict[str, dict[tuple, dict[str, Any]]]] = {}
    for r in speed_records(records):
        if not _trusted(r):
            continue
        by_size = groups.setdefault(tuple(r.get(d) for d in HEADLINE_DIMS), {}).setdefault(r["backend"], {})
        size = (r["rows"], r["vocab"])
        if size not in by_size or r["median_s"] < by_size[size]["median_s"]:
            by_size[size] = r
    return dict(sorted(groups.items(), key=lambda kv: tuple(order_key(d, v) for d, v in zip(HEADLINE_DIMS, kv[0]))))


def _sizes(backends: dict[str, dict[tuple, dict[str, Any]]]) -> list[tuple[int, int]]:
    return sorted({s for by_size in backends.values() for s in by_size}, key=lambda s: (s[1], s[0]))


def _winner(backends: dict[str, dict[tuple, dict[str, Any]]], size: tuple) -> Optional[dict[str, Any]]:
    """The fastest trusted timing at ``size`` where two or more backends have one (alone, it beat nobody)."""
    timed = [by_size[size] for by_size in backends.values() if size in by_size]
    return min(timed, key=lambda r: r["median_s"]) if len(timed) > 1 else None


def speedup_over_torch(backends: dict[str, dict[tuple, dict[str, Any]]], record: dict[str, Any]) -> Optional[float]:
    """torch's time / the record's at the same size and group; ``None`` without a torch timing."""
    torch = backends.get(TORCH, {}).get((record["rows"], record["vocab"]))
    return torch["median_s"] / record["median_s"] if torch else None


def _speedup_text(speedup: Optional[float], backend: str, named: bool = True) -> Optional[str]:
    """'1.70× torch-fused' ('1.70×' unless ``named``), 'torch-fused itself', or ``None`` where torch has
    no timing to compare with."""
    if backend == TORCH:
        return f"{TORCH} itself"
    return None if speedup is None else f"{speedup:.2f}×" + (f" {TORCH}" if named else "")


def _ran_as(record: dict[str, Any]) -> str:
    """The backend with the settings it won at, where they say something: 'numba-2pass (2 threads)'."""
    parts = [f"{record['threads']} thread{'s' if record['threads'] != 1 else ''}"] if record.get("threads") else []
    parts += [f"world size {record['world_size']}"] if (record.get("world_size") or 1) > 1 else []
    return record["backend"] + (f" ({', '.join(parts)})" if parts else "")


def _group_label(varying: Sequence[str], group: tuple) -> str:
    """The values that tell groups apart, unnamed ('cpu float32 cold softmax fwd' reads without them);
    the machine set off by a dot."""
    values = {d: v for d, v in zip(HEADLINE_DIMS, group) if d in varying and v is not None}
    rest = " ".join(str(values[d]) for d in HEADLINE_DIMS if d in values and d != "machine")
    return " · ".join(str(v) for v in (values.get("machine"), rest) if v)


def fastest_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Per headline group, at its largest size: the fastest backend, GB/s, share of copy, speed-up over torch."""
    groups = best_per_backend(records)
    varying, _ = split_dims([{d: v for d, v in zip(HEADLINE_DIMS, g)} for g in groups], HEADLINE_DIMS)
    lines = []
    for group, backends in groups.items():
        sizes = [s for s in _sizes(backends) if _winner(backends, s)]
        if not sizes:
            continue
        size = max(sizes, key=lambda s: s[0] * s[1])
        best = _winner(backends, size)
        speedup = _speedup_text(speedup_over_torch(backends, best), best["backend"])
        label = _group_label(varying, group)
        lines.append(f"{label + ', ' if label else ''}{format_size(*size)}: {_ran_as(best)} "
                     f"{format_gbps(best.get('gbps'))}, {format_percent(best.get('device_copy_fraction'))} of copy"
                     + (f", {speedup}" if speedup else "") + ".")
    return lines


def fastest_table(records: Sequence[dict[str, Any]]) -> Optional[Table]:
    """Headline group x size: the fastest backend, its GB/s, share of the same-run copy, speed-up over torch."""
    groups = best_per_backend(records)
    varying, constant = split_dims([{d: v for d, v in zip(HEADLINE_DIMS, g)} for g in groups], HEADLINE_DIMS)
    rows = []
    for group, backends in groups.items():
        for size in _sizes(backends):
            best = _winner(backends, size)
            if best is None:
                continue
            label = [str(v) for d, v in zip(HEADLINE_DIMS, group) if d in varying]
            speedup = _speedup_text(speedup_over_torch(backends, best), best["backend"], named=False)
            rows.append(label + [format_size(*size), _ran_as(best), format_gbps(best.get("gbps")),
                                 format_percent(best.get("device_copy_fraction")), speedup or MISSING])
    if not rows:
        return None
    table = Table(
        title="Fastest per size",
        caption=("The fastest trusted time at each size among the backends timed there, each at the thread count it "
                 "ran with; its effective bandwidth and its share of the fastest plain copy measured on the same "
                 "device in the same run (100%: the memory-bound ceiling)."),
        headers=[dim_name(d) for d in varying] + ["rows×vocab", "fastest", "GB/s", "% of copy", f"vs {TORCH}"],
        rows=rows,
        align=["left"] * (len(varying) + 2) + ["right"] * 3,
        group=len(varying),
    )
    if all(row[-1] == MISSING for row in rows):  # no torch timing anywhere: a column of dashes says nothing
        table.headers.pop(), table.align.pop()
        for row in table.rows:
            row.pop()
        table.caption += f" No {TORCH} timings here, so no speed-up over it."
    else:
        table.caption += f" vs {TORCH}: its time / the winner's ({MISSING} where it has no time at that size)."
    table.caption += f" Every backend at every size: Time per call and Bandwidth.{constant_text(constant)}"
    return table


def _worst_text(record: dict[str, Any]) -> str:
    """'lse 712 ULP (randn_scale_100 on cpu)'; a failed check also says how it failed ('zeros'): its ULP
    figure alone may be small (a row of zeros is 1 ULP from a tiny probability)."""
    device = f" on {record['device']}" if record.get("device") else ""
    how = f", {record['behaviour']}" if record.get("passed") is False and record.get("behaviour") else ""
    return f"{record['backend']} {format_ulp(record['max_ulp'])} ULP ({record['case']}{device}{how})"


def worst_accuracy_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Per dtype: the largest softmax error in ULP among the checks that passed, and among those that failed.

    Softmax only, as the Accuracy table: a ULP figure of log_softmax or a gradient near zero is huge
    and says nothing; cases with no single right answer (recorded) have no error to rank.
    """
    checks = [r for r in records if r["kind"] == "check" and not is_reference(r)
              and r.get("op", "softmax") == "softmax" and r.get("passed") is not None]
    lines = []
    for dtype in sorted({r["dtype"] for r in checks}, key=lambda d: order_key("dtype", d)):
        mine = [r for r in checks if r["dtype"] == dtype]
        parts = []
        passed = [r for r in mine if r["passed"] and r.get("max_ulp") is not None]
        failed = [r for r in mine if not r["passed"]]
        measured = [r for r in failed if r.get("max_ulp") is not None]  # a row of NaN has no error figure
        if passed:
            parts.append(f"worst that passed: {_worst_text(max(passed, key=lambda r: r['max_ulp']))}")
        if failed:
            largest = max(measured, key=lambda r: r["max_ulp"]) if measured else None
            parts.append(f"{len(failed)} failed" + (f", the largest error {_worst_text(largest)}" if largest else ""))
        if not parts:
            continue
        lines.append(f"{dtype}, softmax: {'; '.join(parts)}.")
    return lines


def memory_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Per machine, device and dtype, at the largest cross-entropy size with two or more figures: who needs
    the least memory for a forward and backward, against the most."""
    full = [r for r in speed_records(records) if r.get("op") == "cross_entropy" and r.get("pass") == "full"
            and r.get("peak_bytes") is not None and not (r.get("peak_method") == "rss" and r["peak_bytes"] <= 0)]
    dims = ("machine", "device", "dtype")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in full:
        groups.setdefault(tuple(r.get(d) for d in dims), []).append(r)
    varying, _ = split_dims(full, dims)
    lines = []
    for group in sorted(groups, key=lambda g: tuple(order_key(d, v) for d, v in zip(dims, g))):
        rs = groups[group]
        sizes = Counter((r["rows"], r["vocab"]) for r in rs)
        compared = [s for s, n in sizes.items() if n > 1] or list(sizes)  # where someone was beaten, if anywhere
        size = max(compared, key=lambda s: s[0] * s[1])
        at = [r for r in rs if (r["rows"], r["vocab"]) == size]
        least, most = min(at, key=lambda r: r["peak_bytes"]), max(at, key=lambda r: r["peak_bytes"])
        label = " · ".join(str(v) for d, v in zip(dims, group) if d in varying or d == "dtype")
        line = f"{label}, {format_size(*size)}: {least['backend']} {format_peak(least['peak_bytes'], least.get('peak_method'))}"
        if most is not least:
            line += f" (most: {most['backend']} {format_peak(most['peak_bytes'], most.get('peak_method'))})"
        lines.append(line + ".")
    return lines
