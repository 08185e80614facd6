"""The report's plots (PNG and SVG): the headline, bandwidth against vocabulary, error against logit scale,
peak memory.

Every backend keeps one colour, one marker and one line style in every
figure of a report, and markers are hollow, so lines that lie on top of each
other stay visible. Vocabulary and logit scale sit on log axes (a size is a
quantity, not a category), ticked at 1, 2 and 5 x 10^k so labels never
collide, which ``overlapping_labels`` checks on the rendered text. Panels
that show a share of the same-run copy share one y-range that reaches 100%,
where the copy (the ceiling) is drawn; GB/s and error panels take their own
log range, ceiling and tolerance lines included. A point with no figure
(failed, skipped, not measured) is an ``x`` at the bottom of its panel, and a
suspect timing gets a red ring; the figure's caption names them. Legends sit
below the panels, outside the data. SVG text stays text (its size is in the
file), so the page can keep every figure's text legible at any width.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from ..core.formatting import format_size
from ..measure.cases import find as find_case
from ..measure.figures import softmax_tolerance_ulp
from .headline import HEADLINE_DIMS, best_per_backend
from .tables import SPEED_DIMS, is_reference, is_suspect, join_words, order_key, slug, speed_records, split_dims

# Plot files this module owns in an --out folder: stale ones are removed on rewrite.
PLOT_PATTERNS = tuple(f"{kind}-*.{ext}" for kind in ("headline", "bandwidth", "error", "peak") for ext in ("png", "svg"))
MARKERS = ("o", "s", "^", "D", "v", "P", "h", "<", ">", "*", "p", "d")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 2)), (0, (6, 2, 2, 2)))
_MISSING_Y = 0.03  # axes fraction where an 'x' marks a point with no figure
_LISTED = 6
_DODGE = 0.01  # decades between neighbouring backends' points on a log x axis
_X_PAD = 1.25  # factor of room beyond the smallest and largest vocabulary on a log axis
_SHARE_TOP = 1.1  # room above 100% (or the largest share) on a share-of-copy axis
_CEILING = {"color": "black", "linewidth": 2.0, "alpha": 0.6}  # the copy: the ceiling line wherever it is drawn
_PANEL_WIDTH = 3.2  # inches: a log axis needs no room per measured size
_HEADLINE_COLUMNS = 2  # panels side by side in a headline figure
_HEADLINE_WIDTH = 3.9  # inches per headline panel
_HEADLINE_HEIGHT = 2.0  # inches per row of headline panels
_HEADLINE_VOCABS = 3  # vocabularies a headline line needs
_TOLERANCE = {"color": "black", "linewidth": 1.2, "linestyle": (0, (4, 2))}


@dataclass
class Figure:
    """A plot written as PNG and SVG, placed in a report section after its tables."""

    section: str  # id of that section
    title: str
    caption: str  # what it shows and what its marks mean
    png: Path
    svg: Path
    width_pt: float = 0.0  # the SVG's width (points, its viewBox units)
    smallest_text_pt: float = 0.0  # its smallest font size (points, in the same units)
    narrow: Optional["Figure"] = None  # the same figure, one panel a row, for narrow screens

    @property
    def id(self) -> str:
        """The figure's anchor on a page: its file name."""
        return slug(self.png.stem)


@dataclass
class _Drawn:
    """A figure drawn in memory, before it is written."""

    name: str
    section: str
    title: str
    caption: str
    fig: Any
    narrow: Any = None  # the same figure laid out for narrow screens, one panel a row


def _pyplot():
    """matplotlib, imported only when a plot is made, drawing to files only."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI; files are all we want
    import matplotlib.pyplot as plt

    return plt


def _slug(parts: Iterable[Any]) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(str(p) for p in parts).lower()).strip("-")


def backend_styles(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Colour, marker and line style per backend, from the sorted names: the same in every figure."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    backends = sorted({r["backend"] for r in records if not is_reference(r)})
    return {b: {"color": palette(i % 10), "marker": MARKERS[i % len(MARKERS)],
                "linestyle": LINESTYLES[i % len(LINESTYLES)]} for i, b in enumerate(backends)}


def _panels(records: Sequence[dict[str, Any]], dims: Sequence[str]) -> dict[tuple, list]:
    """Records grouped by their values of ``dims``, in table order."""
    panels: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        panels.setdefault(tuple(r.get(d) for d in dims), []).append(r)
    return dict(sorted(panels.items(), key=lambda kv: tuple(order_key(d, v) for d, v in zip(dims, kv[0]))))


def _panel_name(dims: Sequence[str], key: tuple, shown: Sequence[str], machines: Sequence[Any]) -> tuple[str, list]:
    """Title and file-name parts of one figure: machine on its own line, the rest after it.

    In file names a machine is m1, m2, ... (its place in sorted ``machines``):
    CPU and GPU model names are long and alike up to their last word.
    """
    values = dict(zip(dims, key))
    # A bare number says nothing: threads and world size are named (in file names: t16, ws2).
    named = {"threads": ("threads ", "t"), "world_size": ("world size ", "ws")}
    parts = [named.get(d, ("", ""))[0] + str(values[d]) for d in dims
             if d in shown and d != "machine" and values[d] is not None]
    title = ", ".join(parts)
    if values.get("machine") is not None:
        title = f"{values['machine']}\n{title}"
    slug_parts = [f"m{machines.index(values[d]) + 1}" if d == "machine" else named.get(d, ("", ""))[1] + str(values[d])
                  for d in dims if d in shown and values[d] is not None]
    return title, slug_parts


def smallest_text_pt(fig: Any) -> float:
    """The smallest font size of any visible text ``fig`` draws (points)."""
    texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
             if t.get_visible() and str(t.get_text()).strip()]
    return min(t.get_fontsize() for t in texts)


def _write(plt, fig: Any, name: str, out_dir: Path, section: str, title: str, caption: str) -> Figure:
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    # No dates or random ids in the files, so regenerating unchanged results changes no bytes in git.
    # SVG text as text: its size is in the file, and the page scales the figure by it.
    with plt.rc_context({"svg.hashsalt": "softmax-bench", "svg.fonttype": "none"}):
        fig.savefig(png, dpi=110, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None, "Creator": None})
    smallest = smallest_text_pt(fig)
    plt.close(fig)
    return Figure(section, title, caption, png, svg, fig.get_figwidth() * 72, smallest)


def _save(plt, drawn: _Drawn, out_dir: Path) -> Figure:
    figure = _write(plt, drawn.fig, drawn.name, out_dir, drawn.section, drawn.title, drawn.caption)
    if drawn.narrow is not None:
        figure.narrow = _write(plt, drawn.narrow, f"{drawn.name}-narrow", out_dir, drawn.section, drawn.title,
                               drawn.caption)
    return figure


def _thousands(value: float, _pos: Any = None) -> str:
    """A tick label of a vocabulary: 500, 2k, 50k, 1M."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def _vocab_axis(ax, vocabs: Sequence[int]) -> None:
    """Log x over the measured vocabularies: ticks at 1, 2, 5 x 10^k (only 10^k across more than two
    decades), labelled 2k, 50k; a lone vocabulary is ticked at itself."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    low, high = min(vocabs) / _X_PAD, max(vocabs) * _X_PAD
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    wide = high / low > 10 ** 2.2
    ax.xaxis.set_major_locator(FixedLocator([vocabs[0]]) if len(set(vocabs)) == 1 else
                               LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0), numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _share_axes(axes: Sequence[Any], values: Sequence[float]) -> None:
    """One y-range for every share-of-copy panel of a figure, from 0 to past 100%, with the 100% line."""
    top = max([100.0, *values]) * _SHARE_TOP
    for ax in axes:
        ax.set_ylim(0, top)
        ax.axhline(100, **_CEILING)


def _log_y(ax, values: Sequence[float], pad: float = 1.6) -> None:
    """Log y from this panel's own data (every line, ceiling included), labelled in plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = [v for v in values if v and v > 0]
    ax.set_yscale("log")
    if positive:
        ax.set_ylim(min(positive) / pad, max(positive) * pad)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _mark_missing(ax, x: float, style: dict[str, Any]) -> None:
    """An 'x' in the backend's colour at the bottom of the panel: this point has no figure."""
    from matplotlib.transforms import blended_transform_factory

    ax.plot([x], [_MISSING_Y], marker="x", color=style["color"], markersize=7, linestyle="none", clip_on=False,
            transform=blended_transform_factory(ax.transData, ax.transAxes))


def _mark_suspect(ax, x: float, y: float) -> None:
    ax.plot([x], [y], marker="o", markersize=13, markerfacecolor="none", markeredgecolor="red", markeredgewidth=1.6,
            linestyle="none")


def _line(ax, xs: Sequence[float], ys: Sequence[float], style: dict[str, Any], label: str) -> None:
    ax.plot(xs, ys, label=label, markerfacecolor="none", markersize=6, linewidth=1.4, **style)


def _legend(fig, styles: dict[str, dict[str, Any]], backends: Sequence[str], extra: Sequence[tuple[dict, str]],
            fontsize: float = 8) -> None:
    """One legend for the figure, below the panels: the backends shown, then the marks used."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], markerfacecolor="none", **styles[b]) for b in backends]
    handles += [Line2D([], [], **kw) for kw, _ in extra]
    labels = list(backends) + [label for _, label in extra]
    # As many columns as the figure is wide for (a label of ~25 characters at 8 pt takes ~2.2 in):
    # a wider legend is cut off at both edges of a one-panel figure.
    columns = max(1, min(4, len(labels), int(fig.get_figwidth() / 2.2)))
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=fontsize, frameon=False)


_MISSING_KEY = ({"marker": "x", "color": "0.3", "linestyle": "none"}, "x: no figure (failed, skipped, not measured)")
_SUSPECT_KEY = ({"marker": "o", "markersize": 10, "markerfacecolor": "none", "markeredgecolor": "red",
                 "linestyle": "none"}, "red ring: suspect timing")


def _why_missing(record: Optional[dict[str, Any]]) -> str:
    if record is None:
        return "not measured"
    return f"failed: {record['failure']}" if record.get("failure") else "skipped"


def _grid_figures(records: Sequence[dict[str, Any]], styles: dict[str, dict[str, Any]], dims: Sequence[str],
                  panel_rows: Sequence[tuple[str, Callable[[dict[str, Any]], Optional[float]], bool]],
                  ceiling: Optional[Callable[[dict[str, Any]], Optional[float]]], kind: str, label: str,
                  describe: str) -> Iterator[_Drawn]:
    """Figures of a value against vocabulary: one per value of ``dims``, one column per row count.

    ``panel_rows``: (y label, value of a record, whether the row is a share of
    the ceiling, drawn from 0 past 100% on one y-range for the figure) for each
    row of panels. ``ceiling``: the copy bandwidth of a record, drawn as a black
    line in the other rows.
    """
    plt = _pyplot()
    varying, _ = split_dims(records, dims)
    shown = [d for d in dims if d in varying or d in ("device", "dtype", "mode")]
    machines = sorted({str(r.get("machine")) for r in records})
    for key, rs in _panels(records, dims).items():
        title, slug_parts = _panel_name(dims, key, shown, machines)
        row_counts = sorted({r["rows"] for r in rs})
        backends = sorted({r["backend"] for r in rs})
        fig, axes = plt.subplots(len(panel_rows), len(row_counts), squeeze=False, layout="constrained",
                                 figsize=(0.8 + _PANEL_WIDTH * len(row_counts), 1.2 + 2.7 * len(panel_rows)))
        missing, suspects = [], []
        share_axes, shares = [], []
        for col, rows in enumerate(row_counts):
            mine = [r for r in rs if r["rows"] == rows]
            vocabs = sorted({r["vocab"] for r in mine})
            for row, (ylabel, value, share) in enumerate(panel_rows):
                ax = axes[row][col]
                _vocab_axis(ax, vocabs)
                plotted: list[float] = []
                for backend in backends:
                    by_vocab = {r["vocab"]: r for r in mine if r["backend"] == backend}
                    points = [(v, value(r), r) for v, r in sorted(by_vocab.items()) if value(r) is not None]
                    if points:
                        _line(ax, [p[0] for p in points], [p[1] for p in points], styles[backend], backend)
                        plotted += [p[1] for p in points]
                    for px, py, r in points:
                        if is_suspect(r):
                            _mark_suspect(ax, px, py)
                            if row == 0:
                                suspects.append(f"{backend} {format_size(rows, r['vocab'])}")
                    for v in vocabs:
                        r = by_vocab.get(v)
                        if r is None or value(r) is None:
                            _mark_missing(ax, v, styles[backend])
                            if row == 0:
                                missing.append(f"{backend} {format_size(rows, v)} ({_why_missing(r)})")
                if share:
                    share_axes.append(ax)
                    shares += plotted
                else:
                    best: dict[int, float] = {}
                    for r in mine:
                        c = ceiling(r) if ceiling else None
                        if c is not None:
                            best[r["vocab"]] = max(best.get(r["vocab"], 0.0), c)
                    if len(best) == 1:  # one size: a line needs two points, so a short bar across it
                        (v, c), = best.items()
                        ax.hlines(c, v / 1.15, v * 1.15, **_CEILING)
                    elif best:
                        ax.plot(sorted(best), [best[v] for v in sorted(best)], label="fastest copy (ceiling)",
                                **_CEILING)
                    _log_y(ax, plotted + list(best.values()))
                ax.tick_params(axis="both", labelsize=8)
                ax.grid(True, which="major", alpha=0.3)
                if row == 0:
                    ax.set_title(f"{rows} row{'s' if rows != 1 else ''}", fontsize=9)
                if row == len(panel_rows) - 1:
                    ax.set_xlabel("vocabulary (log scale)", fontsize=8)
                if col == 0:
                    ax.set_ylabel(ylabel, fontsize=8)
        if share_axes:
            _share_axes(share_axes, shares)
        extra = [(_CEILING, "fastest copy on the device (ceiling, 100%)")] if ceiling else []
        extra += [_MISSING_KEY] if missing else []
        extra += [_SUSPECT_KEY] if suspects else []
        _legend(fig, styles, backends, extra)
        fig.suptitle(f"{label}: {title}", fontsize=9)
        flat = title.replace("\n", ", ")
        caption = describe
        if missing:
            caption += f" x at the bottom, no figure: {join_words(missing[:_LISTED] + ([f'{len(missing) - _LISTED} more'] if len(missing) > _LISTED else []))}."
        if suspects:
            caption += f" Red ring, a suspect timing (see the table's notes): {join_words(suspects)}."
        yield _Drawn(_slug([kind, *slug_parts]), "speed", f"{label}: {flat}", caption, fig)


def bandwidth_figures(records: Sequence[dict[str, Any]], styles: Optional[dict] = None) -> Iterator[_Drawn]:
    """Bandwidth against vocabulary per backend, one figure per machine/device/dtype/mode/op/pass:
    GB/s (log) under the device's fastest copy, and the share of that copy."""
    timings = speed_records(records)
    if not any(r.get("gbps") is not None for r in timings):
        return iter(())
    styles = styles or backend_styles(records)
    return _grid_figures(
        timings, styles, SPEED_DIMS,
        [("effective bandwidth (GB/s, log)", lambda r: r.get("gbps") if r.get("median_s") is not None else None, False),
         ("% of the fastest copy", lambda r: 100 * r["device_copy_fraction"]
          if r.get("device_copy_fraction") is not None and r.get("median_s") is not None else None, True)],
        lambda r: r.get("device_copy_gbps"), "bandwidth", "Bandwidth",
        "Effective bandwidth against vocabulary, one column of panels per row count. Above: GB/s on a log scale, "
        "under the fastest plain copy measured on the same device in the same run (black). Below: the same as a "
        "share of that copy, on one scale for every panel, up to the copy (100%, black). Vocabulary on a log scale.")


def _headline_rows(backends: dict[str, dict[tuple, dict[str, Any]]]) -> int:
    """The row count a headline panel shows: the largest measured at enough vocabularies to draw a line
    (three, or as many as any row count has): language-model heads run many rows."""
    vocabs: dict[int, set] = {}
    for by_size in backends.values():
        for rows, vocab in by_size:
            vocabs.setdefault(rows, set()).add(vocab)
    enough = min(_HEADLINE_VOCABS, max(len(v) for v in vocabs.values()))
    return max(rows for rows, v in vocabs.items() if len(v) >= enough)


def _share_of_copy(record: dict[str, Any]) -> Optional[float]:
    fraction = record.get("device_copy_fraction")
    return None if fraction is None else 100 * fraction


def headline_figures(records: Sequence[dict[str, Any]], styles: Optional[dict] = None) -> Iterator[_Drawn]:
    """One figure per op and pass: the share of the same-run copy against vocabulary (log), one line per
    backend, the copy as the 100% ceiling; a panel per machine, device, dtype and cache mode."""
    groups = {g: b for g, b in best_per_backend(records).items()
              if any(_share_of_copy(r) is not None for by_size in b.values() for r in by_size.values())}
    if not groups:
        return iter(())
    styles = styles or backend_styles(records)
    return _headline_figures(groups, styles)


def _draw_headline(title: str, panels: Sequence[tuple[tuple, dict]], styles: dict, columns: int,
                   machines: set) -> Any:
    """One headline figure: a panel per group, ``columns`` side by side, on one share-of-copy scale."""
    plt = _pyplot()
    where = HEADLINE_DIMS.index
    columns = min(columns, len(panels))
    rows_of_panels = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, squeeze=False, layout="constrained",
                             figsize=(0.5 + _HEADLINE_WIDTH * columns, 1.3 + _HEADLINE_HEIGHT * rows_of_panels))
    shown, shares = set(), []
    for ax, (group, backends) in zip(axes.flat, panels):
        rows = _headline_rows(backends)
        vocabs = sorted({v for by_size in backends.values() for (n, v) in by_size if n == rows})
        _vocab_axis(ax, vocabs)
        for backend in sorted(backends):
            points = sorted((v, _share_of_copy(r)) for (n, v), r in backends[backend].items()
                            if n == rows and _share_of_copy(r) is not None)
            if points:
                _line(ax, [p[0] for p in points], [p[1] for p in points], styles[backend], backend)
                shares += [p[1] for p in points]
                shown.add(backend)
        machine = f"{group[where('machine')]}\n" if len(machines) > 1 else ""
        ax.set_title(f"{machine}{group[where('device')]} {group[where('dtype')]} {group[where('mode')]}, "
                     f"{rows} row{'s' if rows != 1 else ''}", fontsize=9)
        ax.tick_params(axis="both", labelsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("vocabulary (log scale)", fontsize=9)
        ax.set_ylabel("% of same-run copy", fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    _share_axes([ax for ax in axes.flat if ax.get_visible()], shares)
    _legend(fig, styles, sorted(shown), [(_CEILING, "same-run copy = 100% (ceiling)")], fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def _headline_figures(groups: dict[tuple, dict], styles: dict) -> Iterator[_Drawn]:
    where = HEADLINE_DIMS.index
    machines = {g[where("machine")] for g in groups}
    for op, pass_ in sorted({(g[where("op")], g[where("pass")]) for g in groups},
                            key=lambda k: (order_key("op", k[0]), order_key("pass", k[1]))):
        panels = [(g, b) for g, b in groups.items() if (g[where("op")], g[where("pass")]) == (op, pass_)]
        title = f"{op} {pass_}: share of the memory-bound ceiling"
        caption = ("Share of the fastest plain copy on the same device in the same run (100%, black: the memory-bound "
                   "ceiling) against vocabulary (log), one line per backend at its fastest trusted time at its own "
                   "thread count; per machine, device, dtype and cache mode, its most rows measured at three or more "
                   "vocabularies. Every size: Bandwidth.")
        fig = _draw_headline(title, panels, styles, _HEADLINE_COLUMNS, machines)
        # The same figure one panel a row, for narrow screens (the page picks it by width).
        narrow = _draw_headline(title, panels, styles, 1, machines) if len(panels) > 1 else None
        yield _Drawn(_slug(["headline", op, pass_]), "headline", f"Headline: {op} {pass_}", caption, fig, narrow)


def peak_figures(records: Sequence[dict[str, Any]], styles: Optional[dict] = None) -> Iterator[_Drawn]:
    """Peak memory against vocabulary per backend for cross-entropy full passes (forward and backward)."""
    full = [r for r in speed_records(records) if r.get("op") == "cross_entropy" and r.get("pass") == "full"]
    if not any(r.get("peak_bytes") is not None for r in full):
        return iter(())
    styles = styles or backend_styles(records)
    dims = tuple(d for d in SPEED_DIMS if d not in ("op", "pass"))
    return _grid_figures(
        full, styles, dims, [("peak memory (MiB)", lambda r: r["peak_bytes"] / 2**20
                              if r.get("peak_bytes") is not None else None, False)],
        None, "peak", "Peak memory, cross_entropy full",
        "Peak memory of one cross-entropy forward and backward pass (op cross_entropy, pass full) beyond its inputs, "
        "against vocabulary, one panel per row count, log scale: how the memory a loss needs grows with the "
        "vocabulary. The worker's resident-set high-water mark (a lower bound).")


def error_figures(records: Sequence[dict[str, Any]], styles: Optional[dict] = None) -> Iterator[_Drawn]:
    """Worst softmax error vs logit scale per backend (log axes), one figure per machine/device/dtype.

    Uses max ULP, or max relative error in a panel with no ULP figure. A check
    that failed has no error figure worth drawing: an x at the bottom. An
    error of exactly 0 cannot sit on a log axis: a bar at the bottom.
    """
    dims = ("machine", "device", "dtype", "op")
    checks = [r for r in records if r["kind"] == "check" and isinstance(r.get("scale"), (int, float))
              and r["scale"] > 0 and not is_reference(r) and r.get("op", "softmax") == "softmax"]
    if not any(r.get("max_ulp") is not None or r.get("max_rel") is not None for r in checks):
        return iter(())
    styles = styles or backend_styles(records)
    return _error_figures(checks, dims, styles)


def _error_figures(checks: Sequence[dict[str, Any]], dims: Sequence[str], styles: dict) -> Iterator[_Drawn]:
    plt = _pyplot()
    from matplotlib.ticker import NullLocator

    varying, _ = split_dims(checks, dims)
    shown = [d for d in dims if d in varying or d in ("device", "dtype")]
    machines = sorted({str(r.get("machine")) for r in checks})
    for key, rs in _panels(checks, dims).items():
        metric = "max_ulp" if any(r.get("max_ulp") is not None for r in rs) else "max_rel"
        if not any(r.get(metric) is not None for r in rs):
            continue
        scales = sorted({r["scale"] for r in rs})
        worst: dict[str, dict[float, float]] = {}
        failed: dict[str, set] = {}
        exact: dict[str, set] = {}
        for r in rs:
            if r.get("passed") is False or r.get(metric) is None:
                failed.setdefault(r["backend"], set()).add(r["scale"])
            elif r[metric] == 0:
                exact.setdefault(r["backend"], set()).add(r["scale"])
            else:
                by_scale = worst.setdefault(r["backend"], {})
                by_scale[r["scale"]] = max(by_scale.get(r["scale"], 0.0), r[metric])
        title, slug_parts = _panel_name(dims, key, shown, machines)
        fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
        backends = sorted({r["backend"] for r in rs})
        plotted = []
        for i, backend in enumerate(backends):
            # Backends often agree to the digit: each is nudged sideways (a few percent on the log axis,
            # centred on the true scale) so that coinciding points stay visible, not drawn on top of each other.
            dodge = 10 ** (_DODGE * (i - (len(backends) - 1) / 2))
            # A failed scale is not an error figure: the line breaks there rather than joining across it.
            points = sorted((s, e) for s, e in worst.get(backend, {}).items() if s not in failed.get(backend, set()))
            if points:
                _line(ax, [p[0] * dodge for p in points], [p[1] for p in points], styles[backend], backend)
                plotted += [p[1] for p in points]
            for s in sorted(failed.get(backend, ())):
                _mark_missing(ax, s * dodge, styles[backend])
            for s in sorted(exact.get(backend, ())):
                _mark_missing_exact(ax, s * dodge, styles[backend])
        tolerance = _tolerance_line(rs, key[dims.index("dtype")]) if metric == "max_ulp" else {}
        if tolerance:
            ax.plot(sorted(tolerance), [tolerance[v] for v in sorted(tolerance)], label="tolerance", **_TOLERANCE)
        ax.set_xscale("log")
        ax.set_xticks(scales, [f"{v:g}" for v in scales])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(min(scales) / 1.4, max(scales) * 1.4)
        _log_y(ax, plotted + list(tolerance.values()), pad=2.0)
        ax.tick_params(axis="both", labelsize=8)
        ax.set_xlabel("logit scale (x = scale · randn)", fontsize=8)
        ax.set_ylabel("max error (ULP)" if metric == "max_ulp" else "max relative error", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        marks = ([(_TOLERANCE, "tolerance at each row's largest entry")] if tolerance else [])
        marks += ([(_MISSING_KEY[0], "x: the check failed, no error figure")] if failed else []) + (
            [({"marker": "_", "color": "0.3", "linestyle": "none", "markersize": 10}, "bar: error exactly 0")]
            if exact else [])
        _legend(fig, styles, backends, marks)
        flat = title.replace("\n", ", ")
        caption = ("Worst softmax error against the exact reference on the random-normal cases (x = scale · randn), "
                   f"against the scale, {'in ULP' if metric == 'max_ulp' else 'relative'}, log axes. Each backend's "
                   "points sit a little to the side of the scale they were measured at, so that equal errors "
                   "stay visible."
                   + (" Dashed: the check's tolerance at each row's largest entry, in the same ULP (entries further "
                      "below their row's maximum are allowed more; docs/correctness.md says how it is set)."
                      if tolerance else ""))
        if failed:
            where = [f"{b} at {join_words([f'{s:g}' for s in sorted(failed[b])])}" for b in sorted(failed)]
            caption += f" x at the bottom, the check failed there (no error figure): {join_words(where)}."
        if exact:
            caption += " A bar at the bottom: an error of exactly 0, which a log axis cannot show."
        yield _Drawn(_slug(["error", *slug_parts]), "correctness", f"Error vs logit scale: {flat}", caption, fig)


def _tolerance_line(checks: Sequence[dict[str, Any]], dtype: str) -> dict[float, float]:
    """Scale -> the softmax check's tolerance in ULP on that scale's case (from the catalog; cases it
    does not know, from another version, get no point)."""
    cases = {r["scale"]: find_case(r["case"]) for r in checks}
    return {scale: softmax_tolerance_ulp(case, dtype) for scale, case in sorted(cases.items())
            if case is not None and case.applies_to(dtype)}


def _mark_missing_exact(ax, x: float, style: dict[str, Any]) -> None:
    from matplotlib.transforms import blended_transform_factory

    ax.plot([x], [_MISSING_Y], marker="_", color=style["color"], markersize=10, linestyle="none", clip_on=False,
            transform=blended_transform_factory(ax.transData, ax.transAxes))


def drawn_tick_labels(fig: Any, draw: bool = True) -> list[tuple[str, Any]]:
    """Every tick label ``fig`` draws, with its box in pixels (after drawing it, unless ``draw`` is
    False because it was just drawn).

    A locator also places ticks just outside the view, which are not drawn:
    only labels whose tick lies within its axis's view interval count.
    """
    if draw:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = (high - low) * 1e-9
            for locs, labels in ((axis.get_majorticklocs(), axis.get_majorticklabels()),
                                 (axis.get_minorticklocs(), axis.get_minorticklabels())):
                for loc, label in zip(locs, labels):
                    if low - slack <= loc <= high + slack and label.get_visible() and label.get_text().strip():
                        found.append((label.get_text(), label.get_window_extent(renderer)))
    return found


def overlapping_labels(fig: Any, draw: bool = True) -> list[tuple[str, str]]:
    """Pairs of tick labels whose rendered boxes overlap anywhere in ``fig``."""
    boxes = drawn_tick_labels(fig, draw)
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


def write_plots(records: Sequence[dict[str, Any]], out_dir: Path) -> list[Figure]:
    """Every figure the records support, written to ``out_dir`` as PNG and SVG."""
    plt = _pyplot()
    styles = backend_styles(records)
    drawn = [*headline_figures(records, styles), *bandwidth_figures(records, styles), *peak_figures(records, styles),
             *error_figures(records, styles)]
    return [_save(plt, d, out_dir) for d in drawn]
