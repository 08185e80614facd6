"""``run``'s comparison table on the console: one row per timing, and the ratio to a baseline.

"% copy" is against the fastest copy measured on the device in the same run
(the library's own copy for records from before that field); a suspect timing
gets no ratio and its reason in the note.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..core.formatting import format_peak, format_seconds
from ..core.records import options_label
from ..core.sizes import Size

BASELINE = "max-shift"  # the default reference backend of the comparison table


def relative_to_baseline(records: Sequence[dict[str, Any]], baseline: str = BASELINE) -> dict[int, Optional[float]]:
    """For each record (by index): baseline median / its median at the same device, dtype, size, mode, op, pass.

    Above 1 means faster than ``baseline``; ``None`` where either time is missing or is suspect.
    """
    def key(r):
        return (r["device"], r["dtype"], r["rows"], r["vocab"], r.get("mode"), r.get("op", "softmax"), r.get("pass", "fwd"),
                options_label(r.get("options")))

    return _ratios(records, key, lambda r: r["backend"] == baseline)


def _trusted(r: dict[str, Any]) -> bool:
    return bool(r.get("median_s")) and not r.get("suspect")


def _ratios(records: Sequence[dict[str, Any]], key, is_base) -> dict[int, Optional[float]]:
    """For each record (by index): the median of the record ``is_base`` picks at its ``key`` over its own."""
    base = {key(r): r["median_s"] for r in records if is_base(r) and _trusted(r)}
    return {
        i: (base[key(r)] / r["median_s"]) if _trusted(r) and base.get(key(r)) else None
        for i, r in enumerate(records)
    }


def overhead_of_options(records: Sequence[dict[str, Any]]) -> dict[int, Optional[float]]:
    """For each record (by index): its median over the same backend's plain loss at the same device, dtype,
    size, mode and pass (the cost of its loss options; 1.0 for the plain loss); None without both times."""
    def key(r):
        return (r["backend"], r["device"], r["dtype"], r["rows"], r["vocab"], r.get("mode"), r.get("op", "softmax"),
                r.get("pass", "fwd"), r.get("world_size"))

    inverse = _ratios(records, key, lambda r: not r.get("options"))
    return {i: (1 / v if v else None) for i, v in inverse.items()}


def table(records: Sequence[dict[str, Any]], baseline: str = BASELINE, tablefmt: str = "simple") -> str:
    """The comparison table of timing records (tabulate)."""
    from tabulate import tabulate

    relative = relative_to_baseline(records, baseline)
    with_options = any(r.get("options") for r in records)
    overhead = overhead_of_options(records) if with_options else {}
    rows = []
    for i, r in enumerate(records):
        fraction = r.get("device_copy_fraction") or r.get("copy_fraction")
        rel = relative[i]
        note = r.get("reason") or "" if r.get("median_s") is None else ""
        if r.get("suspect"):
            note = f"SUSPECT: {r['suspect']}"
        elif r.get("includes_bwd"):
            note = "forward timed through the fused forward+backward"
        rows.append([
            r["backend"] + (f" x{r['world_size']}" if r.get("world_size") else ""), r["device"], r["dtype"],
            Size(r["rows"], r["vocab"]).label, r.get("mode"),
            r.get("op", "softmax"), r.get("pass", "fwd"),
            *([options_label(r.get("options")) or "plain" if r.get("op") == "cross_entropy" else "-"] if with_options else []),
            str(r.get("threads") or "-"),
            format_seconds(r.get("median_s"), "-"), format_seconds(r.get("iqr_s"), "-"),
            f"{r['gbps']:.2f}" if r.get("gbps") else "-",
            f"{100 * fraction:.0f}%" if fraction else "-",
            # Beside the copy: the share of the roofline and the ceiling that binds (exp or copy).
            f"{100 * r['roofline_fraction']:.0f}% ({r.get('roofline_binds')})" if r.get("roofline_fraction") else "-",
            format_peak(r.get("peak_bytes"), r.get("peak_method")),
            "suspect" if r.get("suspect") else f"{rel:.2f}x" if rel else "-",
            *([f"{overhead[i]:.3f}x" if overhead.get(i) else "-"] if with_options else []),
            note,
        ])
    headers = ["backend", "device", "dtype", "size", "mode", "op", "pass", *(["loss options"] if with_options else []), "threads",
               "median", "IQR", "GB/s", "% copy", "% roofline", "peak mem", f"vs {baseline}",
               *(["time vs plain"] if with_options else []), "note"]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
