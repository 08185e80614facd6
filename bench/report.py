"""Reports from results files: three tables in four formats, and plots.

``softmax-bench report FILE... [--format markdown|github|html|latex] [--out DIR] [--skip-bad]``

- **speed**: backend x size (x machine, device, dtype, mode, op), the median
  time per call and, in parentheses, the effective bandwidth as a share of a
  plain copy measured in the same run; the fastest backend per size is marked;
- **accuracy**: backend x dtype, worst ULP and relative error, and counts of
  cases passed, failed and recorded without a verdict;
- **overflow behaviour**: backend x special case, the behaviour class, with the
  reference conventions (``ref.torch``, ``ref.jax``, ``ref.scipy``) as rows.

Files from several machines merge into one set of tables, keyed by the machine
each file's environment records (CPU model, plus GPU model when present).
Columns that hold one value for every row are folded into the caption.

Without ``--out`` the tables go to stdout and no plot is made. With
``--out DIR``: ``DIR/report.md`` (and ``report.html`` or ``report.tex`` for
those formats) plus PNG and SVG plots, linked from ``report.md``. With
``--readme FILE`` as well, the same markdown replaces the text between the
``README_BEGIN`` and ``README_END`` markers in FILE (how ``results/README.md``
is published).
"""

from __future__ import annotations

import argparse
import html
import math
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from .backend import DEVICES, DTYPES
from .cli import UsageError
from .results import ResultsError, load, record_key, write_atomic

# Check cases whose behaviour class goes into the overflow table. A record may
# also mark itself with "special": true, so a new case needs no edit here.
SPECIAL_CASES = (
    "all_neg_inf",
    "pos_inf",
    "nan_entry",
    "overflow_threshold",
    "underflow_threshold",
    "masked_prefix",
    "subnormal_output",
)
FORMATS = ("markdown", "github", "html", "latex")
# tabulate's name for each format. Never "unsafehtml": backend names and case
# names come from files anyone can edit, so they must be escaped.
TABLEFMT = {"markdown": "pipe", "github": "github", "html": "html", "latex": "latex_booktabs"}
FASTEST = "*"  # plain text survives every format's escaping, unlike bold
MISSING = "—"
README_BEGIN = "<!-- begin softmax-bench report -->"
README_END = "<!-- end softmax-bench report -->"
# Plot files this module owns in an --out folder: stale ones are removed on rewrite.
PLOT_PATTERNS = ("bandwidth-*.png", "bandwidth-*.svg", "error-*.png", "error-*.svg")

_ORDER = {"device": DEVICES, "dtype": DTYPES, "mode": ("warm", "cold"), "op": ("softmax",)}
_SPEED_DIMS = ("machine", "device", "dtype", "mode", "op")
_ACCURACY_DIMS = ("machine", "device")
_OVERFLOW_DIMS = ("machine", "device", "op")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class Run:
    """One loaded results file."""

    path: Path
    environment: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def machine(self) -> str:
        return machine_label(self.environment)


@dataclass
class Table:
    """A table ready to render: every cell is already text."""

    title: str
    caption: str
    headers: list[str]
    rows: list[list[str]]
    align: list[str]  # "left" or "right", one per column
    empty: str = "No records."


@dataclass
class Figure:
    """A plot written as PNG and SVG, placed after the table it illustrates."""

    table: str  # title of that table
    title: str
    png: Path
    svg: Path


# ---------------------------------------------------------------- loading


def machine_label(environment: dict[str, Any]) -> str:
    """The machine a file ran on: its CPU model, plus the GPU model when there is one."""
    gpu = environment.get("gpu")
    gpu_name = gpu.get("name") if isinstance(gpu, dict) else gpu
    parts = [str(p).strip() for p in (environment.get("cpu"), gpu_name) if p not in (None, "")]
    return " + ".join(parts) if parts else str(environment.get("host") or "unknown machine")


def load_runs(paths: Sequence[str | Path], skip_bad: bool = False,
              warn: Callable[[str], None] = _warn) -> list[Run]:
    """Load results files in order; a bad one raises ``ResultsError``, or with
    ``skip_bad`` gets one warning and is left out. The same path twice loads once."""
    runs: list[Run] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            document = load(path)
        except ResultsError as exc:
            if not skip_bad:
                raise
            warn(f"{exc}; skipped")
            continue
        runs.append(Run(path, document["environment"], document["records"]))
    if not runs:
        raise UsageError(f"none of the {len(seen)} results file(s) could be read")
    return runs


def merge(runs: Sequence[Run], warn: Callable[[str], None] = _warn) -> list[dict[str, Any]]:
    """All records, each copied with a ``machine`` field.

    A unit of work that a later file records again for the same machine (a
    rerun) is taken from the later file, with one warning per pair of files,
    so no table cell silently mixes two runs.
    """

    def key(run: Run, record: dict[str, Any]) -> tuple:
        return (run.machine, *record_key(record), record.get("scale"), record.get("reference"))

    owner: dict[tuple, int] = {}
    for index, run in enumerate(runs):
        for record in run.records:
            owner[key(run, record)] = index
    merged: list[dict[str, Any]] = []
    replaced: Counter = Counter()
    for index, run in enumerate(runs):
        for record in run.records:
            later = owner[key(run, record)]
            if later != index:
                replaced[(index, later)] += 1
                continue
            merged.append({**record, "machine": run.machine})
    for (earlier, later), count in replaced.items():
        warn(f"{runs[later].path} repeats {count} record(s) of {runs[earlier].path} on the same machine "
             f"(CPU and GPU model); using {runs[later].path.name}'s")
    return merged


# ---------------------------------------------------------------- formatting


def format_seconds(seconds: Optional[float]) -> str:
    """Three significant digits in ns, µs, ms or s: 0.00123 -> '1.23 ms'."""
    if seconds is None:
        return MISSING
    if seconds == 0:
        return "0 s"
    for unit, scale in (("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        value = float(f"{seconds / scale:.3g}")
        if value < 1000 or unit == "s":
            decimals = max(0, 2 - math.floor(math.log10(value)))
            return f"{value:.{decimals}f} {unit}"
    raise AssertionError("unreachable")


def format_number(value: Optional[float]) -> str:
    """Error figures: plain between 0.01 and 1e6 (ULP counts), scientific outside (relative errors)."""
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    if 0.01 <= abs(value) < 100:
        return f"{value:.3g}"
    if 100 <= abs(value) < 1e6:
        return f"{value:.0f}"
    return f"{value:.2e}"


def format_size(rows: int, vocab: int) -> str:
    """'rows×vocab', exact: vocabularies are known by their exact size (256000, not 250k)."""
    return f"{rows}×{vocab}"


def _order(dim: str, value: Any) -> tuple:
    known = _ORDER.get(dim, ())
    return (known.index(value) if value in known else len(known), str(value))


def _split_dims(records: Iterable[dict[str, Any]], dims: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Dims whose value varies across records (they become columns), and the constant ones."""
    values: dict[str, set] = {d: set() for d in dims}
    for record in records:
        for d in dims:
            values[d].add(record.get(d))
    varying = [d for d in dims if len(values[d]) > 1]
    constant = {d: next(iter(values[d])) for d in dims if len(values[d]) == 1}
    return varying, constant


def _constant_text(constant: dict[str, Any]) -> str:
    """Caption text for folded columns: 'Machine: X. Every row: device cpu, op softmax.'"""
    text = ""
    if constant.get("machine") is not None:
        text += f" Machine: {constant['machine']}."
    rest = [f"{d} {v}" for d, v in constant.items() if d != "machine" and v is not None]
    if rest:
        text += f" Every row: {', '.join(rest)}."
    return text


def _join(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def latex_escape(text: str) -> str:
    """Escape LaTeX specials with tabulate's own rules, as its table cells are."""
    from tabulate import LATEX_ESCAPE_RULES

    return "".join(LATEX_ESCAPE_RULES.get(ch, ch) for ch in text)


def _md_escape(text: str) -> str:
    # Markdown passes raw HTML through, and '|' ends a pipe-table cell.
    return html.escape(text, quote=False).replace("|", "\\|")


def render_table(table: Table, fmt: str) -> str:
    """The table with its caption line, in one of ``FORMATS``; all text escaped for the format."""
    from tabulate import tabulate

    if fmt not in TABLEFMT:
        raise UsageError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    headers, rows = table.headers, table.rows
    if fmt in ("markdown", "github"):
        headers = [_md_escape(h) for h in headers]
        rows = [[_md_escape(c) for c in row] for row in rows]
    body = None
    if rows:
        # Cells are preformatted text: numparse would reformat "3.2e+03" into "3200".
        body = str(tabulate(rows, headers=headers, tablefmt=TABLEFMT[fmt], colalign=table.align,
                            disable_numparse=True))
    if fmt == "html":
        head = f"<p><strong>{html.escape(table.title)}.</strong> {html.escape(table.caption)}</p>"
        return f"{head}\n{body or '<p>' + html.escape(table.empty) + '</p>'}\n"
    if fmt == "latex":
        caption = latex_escape(f"{table.title}. {table.caption}")
        inner = body or latex_escape(table.empty)
        return f"\\begin{{table}}[htbp]\n\\centering\n\\caption{{{caption}}}\n{inner}\n\\end{{table}}\n"
    return f"**{_md_escape(table.title)}.** {_md_escape(table.caption)}\n\n{body or _md_escape(table.empty)}\n"


# ---------------------------------------------------------------- tables


def _is_reference(record: dict[str, Any]) -> bool:
    return record.get("reference") is True


def _copy_fraction(record: dict[str, Any]) -> Optional[float]:
    if record.get("copy_fraction") is not None:
        return record["copy_fraction"]
    if record.get("gbps") is not None and record.get("copy_gbps"):
        return record["gbps"] / record["copy_gbps"]
    return None


def sources_table(runs: Sequence[Run]) -> Table:
    """Which files the report is made from, and the machine each ran on."""
    rows = []
    for run in runs:
        env = run.environment
        commit = env.get("commit")
        rows.append([run.path.name, run.machine, str(env.get("host") or MISSING),
                     str(commit)[:12] if commit else MISSING, str(env.get("time") or MISSING)])
    return Table(
        title="Sources",
        caption="The results files in this report. Machine is the CPU model (and GPU model) each file records; "
                "files from the same machine share its rows in the tables below.",
        headers=["file", "machine", "host", "commit", "time"],
        rows=rows,
        align=["left"] * 5,
    )


def speed_table(records: Sequence[dict[str, Any]]) -> Table:
    """Backend x size: median time per call, % of copy bandwidth, fastest per column marked."""
    timings = [r for r in records if r["kind"] == "timing" and not _is_reference(r)]
    sizes = sorted({(r["rows"], r["vocab"]) for r in timings}, key=lambda s: (s[1], s[0]))
    varying, constant = _split_dims(timings, _SPEED_DIMS)
    cells: dict[tuple, dict[tuple, dict[str, Any]]] = {}
    for r in timings:
        group = tuple(r.get(d) for d in _SPEED_DIMS)
        cells.setdefault((group, r["backend"]), {})[(r["rows"], r["vocab"])] = r
    # The fastest is judged among rows that differ only in backend: comparing a
    # float64 time with a float32 one, or warm with cold, says nothing.
    times: dict[tuple, list[float]] = {}
    for (group, _), by_size in cells.items():
        for size, r in by_size.items():
            if r.get("median_s") is not None:
                times.setdefault((group, size), []).append(r["median_s"])
    fastest = {k: min(v) for k, v in times.items() if len(v) > 1}

    def order(item: tuple) -> tuple:
        group, backend = item
        return (*(_order(d, v) for d, v in zip(_SPEED_DIMS, group)), backend)

    rows = []
    for group, backend in sorted(cells, key=order):
        row = [str(v) for d, v in zip(_SPEED_DIMS, group) if d in varying] + [backend]
        for size in sizes:
            row.append(_speed_cell(cells[(group, backend)].get(size), fastest.get((group, size))))
        rows.append(row)
    within = f" among rows with the same {_join(varying)}" if varying else ""
    return Table(
        title="Speed",
        caption=("Median time per call; in parentheses the effective bandwidth (2 x rows x vocab x itemsize / median) "
                 "as a share of a plain copy of the same bytes measured in the same run. Columns are rows×vocab. "
                 f"A trailing {FASTEST} marks the fastest backend for that size{within}; "
                 f"{MISSING} means not measured." + _constant_text(constant)),
        headers=varying + ["backend"] + [format_size(*s) for s in sizes],
        rows=rows,
        align=["left"] * (len(varying) + 1) + ["right"] * len(sizes),
        empty="No timing records.",
    )


def _speed_cell(record: Optional[dict[str, Any]], fastest: Optional[float]) -> str:
    if record is None:
        return MISSING
    median = record.get("median_s")
    if median is None:  # the reason is too long for a cell; the results file keeps it
        return f"failed ({record['failure']})" if record.get("failure") else "skipped"
    text = format_seconds(median)
    fraction = _copy_fraction(record)
    if fraction is not None:
        text += f" ({fraction * 100:.0f}%)"
    if fastest is not None and median == fastest:
        text += f" {FASTEST}"
    return text


def accuracy_table(records: Sequence[dict[str, Any]]) -> Table:
    """Backend x dtype: worst ULP, worst relative error, passed/failed/recorded counts."""
    checks = [r for r in records if r["kind"] == "check" and not _is_reference(r)]
    varying, constant = _split_dims(checks, _ACCURACY_DIMS)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in checks:
        key = (*(r.get(d) for d in _ACCURACY_DIMS), r["backend"], r["dtype"])
        groups.setdefault(key, []).append(r)

    def order(key: tuple) -> tuple:
        *dims, backend, dtype = key
        return (*(_order(d, v) for d, v in zip(_ACCURACY_DIMS, dims)), backend, _order("dtype", dtype))

    rows = []
    for key in sorted(groups, key=order):
        *dims, backend, dtype = key
        rs = groups[key]
        # Error magnitudes of what passed (failures are counted, and their reasons are in the check output);
        # softmax only, since gradient errors are measured against a different scale.
        passing = [r for r in rs if r.get("passed") is True and r.get("op", "softmax") == "softmax"]
        ulps = [r["max_ulp"] for r in passing if r.get("max_ulp") is not None]
        rels = [r["max_rel"] for r in passing if r.get("max_rel") is not None]
        verdicts = Counter(r["passed"] for r in rs)
        rows.append([str(v) for d, v in zip(_ACCURACY_DIMS, dims) if d in varying] + [
            backend, dtype, format_number(max(ulps, default=None)), format_number(max(rels, default=None)),
            str(verdicts[True]), str(verdicts[False]), str(verdicts[None]),
        ])
    return Table(
        title="Accuracy",
        caption=("Worst softmax error over the cases that passed, against the exact reference: in units in the last "
                 "place of the dtype (ULP, spacing floored at the smallest normal) and componentwise relative. Cases "
                 "(every operation) passed, failed, and recorded without a verdict (no single right answer). "
                 f"{MISSING}: no finite error figure." + _constant_text(constant)),
        headers=varying + ["backend", "dtype", "worst ULP", "worst rel. error", "passed", "failed", "recorded"],
        rows=rows,
        align=["left"] * (len(varying) + 2) + ["right"] * 5,
        empty="No check records.",
    )


def is_special(record: dict[str, Any]) -> bool:
    """Whether a check record belongs in the overflow table."""
    return record["kind"] == "check" and (record["case"] in SPECIAL_CASES or record.get("special") is True)


def overflow_table(records: Sequence[dict[str, Any]], dtype: Optional[str] = "float32") -> Table:
    """Backend x special case: the behaviour class, with reference rows and the expected class.

    ``dtype`` picks the records shown; ``None`` shows every dtype, in a dtype
    column. When the files hold no special-case record of ``dtype`` at all,
    every dtype is shown rather than an empty table.
    """
    # The matrix is about what softmax itself returns; log_softmax and gradients are in the accuracy table.
    special = [r for r in records if is_special(r) and r.get("op", "softmax") == "softmax"]
    if dtype is not None and any(r["dtype"] == dtype for r in special):
        special = [r for r in special if r["dtype"] == dtype]
    else:
        dtype = None
    dims = _OVERFLOW_DIMS + (("dtype",) if dtype is None else ())
    varying, constant = _split_dims(special, dims)
    present = {r["case"] for r in special}
    cases = [c for c in SPECIAL_CASES if c in present] + sorted(present - set(SPECIAL_CASES))

    behaviours: dict[tuple, dict[str, set]] = {}
    expected: dict[str, set] = {}
    for r in special:
        key = (_is_reference(r), *(r.get(d) for d in dims), r["backend"])
        behaviours.setdefault(key, {}).setdefault(r["case"], set()).add(r.get("behaviour") or MISSING)
        if r.get("expected") is not None and not _is_reference(r):
            expected.setdefault(r["case"], set()).add(r["expected"])

    def order(key: tuple) -> tuple:  # backends first, then the reference rows
        reference, *values, backend = key
        return (reference, *(_order(d, v) for d, v in zip(dims, values)), backend)

    def cell(found: Optional[set]) -> str:
        # One class per record; several shapes of one case may differ.
        return "/".join(sorted(found)) if found else MISSING

    rows = []
    for key in sorted(behaviours, key=order):
        reference, *values, backend = key
        label = f"{backend} (reference)" if reference else backend
        rows.append([str(v) for d, v in zip(dims, values) if d in varying] + [label]
                    + [cell(behaviours[key].get(c)) for c in cases])
    if expected:
        rows.append([""] * len(varying) + ["expected"] + [cell(expected.get(c)) for c in cases])
    which = f"dtype {dtype}" if dtype else "every dtype"
    return Table(
        title="Overflow behaviour",
        caption=(f"What each backend returns on special inputs ({which}): the class of its output (correct, nan-row, "
                 "zeros, ...). Reference rows are the conventions of the reference libraries on the same inputs; "
                 "the expected row is what a correct implementation returns, where there is one answer."
                 + _constant_text({d: v for d, v in constant.items() if d != "dtype"})),
        headers=varying + ["backend"] + cases,
        rows=rows,
        align=["left"] * (len(varying) + 1 + len(cases)),
        empty="No special-case check records.",
    )


def build_tables(runs: Sequence[Run], records: Sequence[dict[str, Any]]) -> list[Table]:
    """Sources, speed, accuracy and overflow behaviour, in report order."""
    return [sources_table(runs), speed_table(records), accuracy_table(records), overflow_table(records)]


def render_tables(tables: Sequence[Table], fmt: str) -> str:
    """Every table with its caption, separated by blank lines."""
    return "\n".join(render_table(t, fmt) for t in tables)


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
    return dict(sorted(panels.items(), key=lambda kv: tuple(_order(d, v) for d, v in zip(dims, kv[0]))))


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
    timings = [r for r in records if r["kind"] == "timing" and r.get("gbps") is not None and not _is_reference(r)]
    if not timings:
        return []
    plt = _pyplot()
    varying, _ = _split_dims(timings, _SPEED_DIMS)
    shown = [d for d in _SPEED_DIMS if d in varying or d in ("device", "dtype", "mode")]
    machines = sorted({str(r.get("machine")) for r in timings})
    figures = []
    for key, rs in _panels(timings, _SPEED_DIMS).items():
        title, slug_parts = _panel_name(_SPEED_DIMS, key, shown, machines)
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
              and r["scale"] > 0 and not _is_reference(r) and r.get("op", "softmax") == "softmax"
              and (r.get("max_ulp") is not None or r.get("max_rel") is not None)]
    if not checks:
        return []
    plt = _pyplot()
    varying, _ = _split_dims(checks, dims)
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


# ---------------------------------------------------------------- documents


def render_markdown(tables: Sequence[Table], figures: Sequence[Figure], fmt: str, base: Path) -> str:
    """Tables (markdown or github) each followed by its plots, linked relative to ``base``."""
    parts = []
    for table in tables:
        parts.append(render_table(table, fmt))
        for fig in (f for f in figures if f.table == table.title):
            png = Path(os.path.relpath(fig.png, base)).as_posix()
            svg = Path(os.path.relpath(fig.svg, base)).as_posix()
            parts.append(f"![{_md_escape(fig.title)}]({png}) ([SVG]({svg}))\n")
    return "\n".join(parts)


def render_html(tables: Sequence[Table], figures: Sequence[Figure], base: Path) -> str:
    """A standalone HTML page: escaped tables, each followed by its SVG plots."""
    parts = ['<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>softmax-bench report</title></head><body>',
             "<h1>softmax-bench report</h1>"]
    for table in tables:
        parts.append(render_table(table, "html"))
        for fig in (f for f in figures if f.table == table.title):
            src = html.escape(Path(os.path.relpath(fig.svg, base)).as_posix())
            parts.append(f'<figure><img src="{src}" alt="{html.escape(fig.title)}">'
                         f"<figcaption>{html.escape(fig.title)}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def splice_readme(text: str, block: str, source: str) -> str:
    """``text`` with everything between the README markers replaced by ``block``."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise UsageError(f"--readme {source}: needs the lines {README_BEGIN} and {README_END} (in that order) "
                         "around the place for the report")
    return f"{text[:begin + len(README_BEGIN)]}\n{block}\n{text[end:]}"


def write_report(runs: Sequence[Run], records: Sequence[dict[str, Any]], out_dir: str | Path, fmt: str,
                 readme: Optional[str | Path] = None, warn: Callable[[str], None] = _warn) -> list[Path]:
    """Write report.md (and report.html or report.tex), the plots, and the README block; returns what was written."""
    out = Path(out_dir)
    readme_text = None
    if readme is not None:  # check before writing anything, so a bad README leaves no half-done report
        try:
            readme_text = Path(readme).read_text()
        except OSError as exc:
            raise UsageError(f"--readme {readme}: cannot be read ({exc.strerror or type(exc).__name__})") from None
        splice_readme(readme_text, "", str(readme))
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    tables = build_tables(runs, records)
    written: list[Path] = []
    figures: list[Figure] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for pattern in PLOT_PATTERNS:
            for stale in out.glob(pattern):
                stale.unlink()
        try:
            figures = plot_bandwidth(records, out) + plot_error_vs_scale(records, out)
        except ImportError:
            warn("matplotlib is not installed (pip install 'softmax-bench[report]'); tables written without plots")
        md_fmt = "github" if fmt == "github" else "markdown"
        document = "# softmax-bench report\n\n" + render_markdown(tables, figures, md_fmt, out)
        write_atomic(out / "report.md", document)
        written.append(out / "report.md")
        if fmt == "html":
            write_atomic(out / "report.html", render_html(tables, figures, out))
            written.append(out / "report.html")
        elif fmt == "latex":
            write_atomic(out / "report.tex", render_tables(tables, "latex"))
            written.append(out / "report.tex")
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write ({exc.strerror or type(exc).__name__})") from None
    if readme is not None:
        block = render_markdown(tables, figures, md_fmt, Path(readme).parent)
        try:
            write_atomic(Path(readme), splice_readme(readme_text, block, str(readme)))
        except OSError as exc:
            raise UsageError(f"--readme {readme}: cannot write ({exc.strerror or type(exc).__name__})") from None
        written.append(Path(readme))
    return written + [p for f in figures for p in (f.png, f.svg)]


def cmd_report(args: argparse.Namespace) -> int:
    """``softmax-bench report``: print the tables, or with ``--out`` write the report and plots."""
    runs = load_runs(args.files, skip_bad=args.skip_bad)
    records = merge(runs)
    readme = getattr(args, "readme", None)
    if args.out is None:
        if readme is not None:
            raise UsageError("--readme needs --out DIR, where the plots it links are written")
        print(render_tables(build_tables(runs, records), args.format), end="")
        return 0
    for path in write_report(runs, records, args.out, args.format, readme=readme):
        print(path)
    return 0
