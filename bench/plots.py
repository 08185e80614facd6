"""The report's plots: bandwidth against vocabulary, error against logit scale (PNG and SVG)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .tables import SPEED_DIMS, is_reference, order_key, split_dims

# Plot files this module owns in an --out folder: stale ones are removed on rewrite.
PLOT_PATTERNS = ("bandwidth-*.png", "bandwidth-*.svg", "error-*.png", "error-*.svg")


@dataclass
class Figure:
    """A plot written as PNG and SVG, placed after the table it illustrates."""

    table: str  # title of that table
    title: str
    png: Path
    svg: Path


# ---------------------------------------------------------------- plots


def _pyplot():
    """matplotlib, imported only when a plot is made, drawing to files only."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI; files are all we want
    import matplotlib.pyplot as plt

    return plt


def _slug(parts: Iterable[Any]) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(str(p) for p in parts).lower()).strip("-")


def _panels(records: Sequence[dict[str, Any]], dims: Sequence[str]) -> dict[tuple, list]:
    """Records grouped by their values of ``dims``, in table order."""
    panels: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        panels.setdefault(tuple(r.get(d) for d in dims), []).append(r)
    return dict(sorted(panels.items(), key=lambda kv: tuple(order_key(d, v) for d, v in zip(dims, kv[0]))))


def _save(plt, fig, out_dir: Path, name: str) -> tuple[Path, Path]:
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    fig.tight_layout()
    # No dates or random ids in the files, so regenerating unchanged results changes no bytes in git.
    with plt.rc_context({"svg.hashsalt": "softmax-bench"}):
        fig.savefig(png, dpi=110, metadata={"Software": None}, bbox_inches="tight")
        fig.savefig(svg, metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    return png, svg


def _ticks_at(ax, values: Sequence[float], label: Callable[[float], str]) -> None:
    """x ticks at the measured values only: '32k' reads better than 2^15."""
    from matplotlib.ticker import NullLocator

    ax.set_xticks(values, [label(v) for v in values])
    ax.xaxis.set_minor_locator(NullLocator())


def _panel_name(dims: Sequence[str], key: tuple, shown: Sequence[str], machines: Sequence[Any]) -> tuple[str, list]:
    """Title and file-name parts of one panel: machine on its own line, the rest after it.

    In file names a machine is m1, m2, ... (its place in sorted ``machines``):
    CPU and GPU model names are long and alike up to their last word.
    """
    values = dict(zip(dims, key))
    parts = [values[d] for d in dims if d in shown and d != "machine" and values[d] is not None]
    title = ", ".join(str(p) for p in parts)
    if values.get("machine") is not None:
        title = f"{values['machine']}\n{title}"
    slug_parts = [f"m{machines.index(values[d]) + 1}" if d == "machine" else values[d]
                  for d in dims if d in shown and values[d] is not None]
    return title, slug_parts


def plot_bandwidth(records: Sequence[dict[str, Any]], out_dir: Path) -> list[Figure]:
    """Effective bandwidth (GB/s) vs vocabulary size per backend, one figure per
    machine/device/dtype/mode/op, with the copy bandwidth of the same run as the ceiling."""
    timings = [r for r in records if r["kind"] == "timing" and r.get("gbps") is not None and not is_reference(r)]
    if not timings:
        return []
    plt = _pyplot()
    varying, _ = split_dims(timings, SPEED_DIMS)
    shown = [d for d in SPEED_DIMS if d in varying or d in ("device", "dtype", "mode")]
    machines = sorted({str(r.get("machine")) for r in timings})
    figures = []
    for key, rs in _panels(timings, SPEED_DIMS).items():
        title, slug_parts = _panel_name(SPEED_DIMS, key, shown, machines)
        # One subplot per row count: several row counts on one line would zigzag,
        # and the copy ceiling differs with the bytes moved.
        row_counts = sorted({r["rows"] for r in rs})
        backends = sorted({r["backend"] for r in rs})
        colours = {b: plt.get_cmap("tab10")(i % 10) for i, b in enumerate(backends)}
        fig, axes = plt.subplots(1, len(row_counts), figsize=(2.2 + 3.0 * len(row_counts), 4.2), sharey=True, squeeze=False)
        for ax, rows in zip(axes[0], row_counts):
            mine = [r for r in rs if r["rows"] == rows]
            for backend in backends:
                points = sorted((r["vocab"], r["gbps"]) for r in mine if r["backend"] == backend)
                if points:
                    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=colours[backend], label=backend)
            # Each library measures its own copy; the ceiling is the fastest of them at each size.
            best: dict[int, float] = {}
            for r in mine:
                if r.get("copy_gbps") is not None:
                    best[r["vocab"]] = max(best.get(r["vocab"], 0.0), r["copy_gbps"])
            ceiling = sorted(best.items())
            if ceiling:
                ax.plot([c[0] for c in ceiling], [c[1] for c in ceiling], color="black", linestyle="--", label="fastest copy (ceiling)")
            ax.set_xscale("log", base=2)
            _ticks_at(ax, sorted({r["vocab"] for r in mine}), lambda v: f"{v:g}")
            ax.tick_params(axis="x", labelrotation=60, labelsize=7)
            ax.set_ylim(bottom=0)
            ax.set_title(f"{rows} row{'s' if rows != 1 else ''}", fontsize=9)
            ax.set_xlabel("vocabulary size")
            ax.grid(True, alpha=0.3)
        axes[0][0].set_ylabel("effective bandwidth (GB/s)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        for ax in axes[0][1:]:  # a backend missing from the first subplot still gets its legend entry
            for h, label in zip(*ax.get_legend_handles_labels()):
                if label not in labels:
                    handles.append(h)
                    labels.append(label)
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        fig.suptitle(title, fontsize=9)
        png, svg = _save(plt, fig, out_dir, _slug(["bandwidth", *slug_parts]))
        figures.append(Figure("Speed", f"Bandwidth vs vocabulary: {title.replace(chr(10), ', ')}", png, svg))
    return figures


def plot_error_vs_scale(records: Sequence[dict[str, Any]], out_dir: Path) -> list[Figure]:
    """Worst error vs logit scale per backend (log axes), one figure per machine/device/dtype (softmax).

    Uses max ULP, or max relative error in a panel with no ULP figure. An
    error of exactly 0 cannot sit on a log axis and is not drawn.
    """
    dims = ("machine", "device", "dtype", "op")
    # softmax only: one plot per dtype; the other operations are in the accuracy figures of the records.
    checks = [r for r in records if r["kind"] == "check" and isinstance(r.get("scale"), (int, float))
              and r["scale"] > 0 and not is_reference(r) and r.get("op", "softmax") == "softmax"
              and (r.get("max_ulp") is not None or r.get("max_rel") is not None)]
    if not checks:
        return []
    plt = _pyplot()
    varying, _ = split_dims(checks, dims)
    shown = [d for d in dims if d in varying or d in ("device", "dtype")]
    machines = sorted({str(r.get("machine")) for r in checks})
    figures = []
    for key, rs in _panels(checks, dims).items():
        metric = "max_ulp" if any(r.get("max_ulp") is not None for r in rs) else "max_rel"
        worst: dict[str, dict[float, float]] = {}
        for r in rs:
            if r.get(metric) is not None and r[metric] > 0:
                by_scale = worst.setdefault(r["backend"], {})
                by_scale[r["scale"]] = max(by_scale.get(r["scale"], 0.0), r[metric])
        if not worst:
            continue
        title, slug_parts = _panel_name(dims, key, shown, machines)
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for backend in sorted(worst):
            scales = sorted(worst[backend])
            ax.plot(scales, [worst[backend][s] for s in scales], marker="o", label=backend)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _ticks_at(ax, sorted({r["scale"] for r in rs}), lambda v: f"{v:g}")
        ax.set_xlabel("logit scale (x = scale · randn)")
        ax.set_ylabel("max error (ULP)" if metric == "max_ulp" else "max relative error")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        png, svg = _save(plt, fig, out_dir, _slug(["error", *slug_parts]))
        figures.append(Figure("Accuracy", f"Error vs logit scale: {title.replace(chr(10), ', ')}", png, svg))
    return figures
