"""The report's tables: sources, speed, accuracy and overflow behaviour, in four formats.

- **speed**: backend x size (x machine, device, dtype, mode, op), the median
  time per call and, in parentheses, the effective bandwidth as a share of a
  plain copy measured in the same run; the fastest backend per size is marked;
- **accuracy**: backend x dtype, worst ULP and relative error, and counts of
  cases passed, failed and recorded without a verdict;
- **overflow behaviour**: backend x special case, the behaviour class, with the
  reference conventions (``ref.torch``, ``ref.jax``, ``ref.scipy``) as rows.

Columns that hold one value for every row are folded into the caption.
``compare`` builds its tables from the same parts.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from .backend import DEVICES, DTYPES
from .cases import SPECIAL_CASES
from .errors import UsageError
from .formatting import MISSING, format_number, format_seconds, format_size
from .records import copy_fraction
from .runs import Run

FORMATS = ("markdown", "github", "html", "latex")
# tabulate's name for each format. Never "unsafehtml": backend names and case
# names come from files anyone can edit, so they must be escaped.
TABLEFMT = {"markdown": "pipe", "github": "github", "html": "html", "latex": "latex_booktabs"}
FASTEST = "*"  # plain text survives every format's escaping, unlike bold

_ORDER = {"device": DEVICES, "dtype": DTYPES, "mode": ("warm", "cold"), "op": ("softmax",)}
SPEED_DIMS = ("machine", "device", "dtype", "mode", "op")
_ACCURACY_DIMS = ("machine", "device")
_OVERFLOW_DIMS = ("machine", "device", "op")


@dataclass
class Table:
    """A table ready to render: every cell is already text."""

    title: str
    caption: str
    headers: list[str]
    rows: list[list[str]]
    align: list[str]  # "left" or "right", one per column
    empty: str = "No records."


def order_key(dim: str, value: Any) -> tuple:
    known = _ORDER.get(dim, ())
    return (known.index(value) if value in known else len(known), str(value))


def split_dims(records: Iterable[dict[str, Any]], dims: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Dims whose value varies across records (they become columns), and the constant ones."""
    values: dict[str, set] = {d: set() for d in dims}
    for record in records:
        for d in dims:
            values[d].add(record.get(d))
    varying = [d for d in dims if len(values[d]) > 1]
    constant = {d: next(iter(values[d])) for d in dims if len(values[d]) == 1}
    return varying, constant


def constant_text(constant: dict[str, Any]) -> str:
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


def md_escape(text: str) -> str:
    # Markdown passes raw HTML through, and '|' ends a pipe-table cell.
    return html.escape(text, quote=False).replace("|", "\\|")


def render_table(table: Table, fmt: str) -> str:
    """The table with its caption line, in one of ``FORMATS``; all text escaped for the format."""
    from tabulate import tabulate

    if fmt not in TABLEFMT:
        raise UsageError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    headers, rows = table.headers, table.rows
    if fmt in ("markdown", "github"):
        headers = [md_escape(h) for h in headers]
        rows = [[md_escape(c) for c in row] for row in rows]
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
    return f"**{md_escape(table.title)}.** {md_escape(table.caption)}\n\n{body or md_escape(table.empty)}\n"


# ---------------------------------------------------------------- tables


def is_reference(record: dict[str, Any]) -> bool:
    return record.get("reference") is True


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
    timings = [r for r in records if r["kind"] == "timing" and not is_reference(r)]
    sizes = sorted({(r["rows"], r["vocab"]) for r in timings}, key=lambda s: (s[1], s[0]))
    varying, constant = split_dims(timings, SPEED_DIMS)
    cells: dict[tuple, dict[tuple, dict[str, Any]]] = {}
    for r in timings:
        group = tuple(r.get(d) for d in SPEED_DIMS)
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
        return (*(order_key(d, v) for d, v in zip(SPEED_DIMS, group)), backend)

    rows = []
    for group, backend in sorted(cells, key=order):
        row = [str(v) for d, v in zip(SPEED_DIMS, group) if d in varying] + [backend]
        for size in sizes:
            row.append(_speed_cell(cells[(group, backend)].get(size), fastest.get((group, size))))
        rows.append(row)
    within = f" among rows with the same {_join(varying)}" if varying else ""
    return Table(
        title="Speed",
        caption=("Median time per call; in parentheses the effective bandwidth (2 x rows x vocab x itemsize / median) "
                 "as a share of a plain copy of the same bytes measured in the same run. Columns are rows×vocab. "
                 f"A trailing {FASTEST} marks the fastest backend for that size{within}; "
                 f"{MISSING} means not measured." + constant_text(constant)),
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
    fraction = record.get("copy_fraction") if record.get("copy_fraction") is not None else copy_fraction(record.get("gbps"), record.get("copy_gbps"))
    if fraction is not None:
        text += f" ({fraction * 100:.0f}%)"
    if fastest is not None and median == fastest:
        text += f" {FASTEST}"
    return text


def accuracy_table(records: Sequence[dict[str, Any]]) -> Table:
    """Backend x dtype: worst ULP, worst relative error, passed/failed/recorded counts."""
    checks = [r for r in records if r["kind"] == "check" and not is_reference(r)]
    varying, constant = split_dims(checks, _ACCURACY_DIMS)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in checks:
        key = (*(r.get(d) for d in _ACCURACY_DIMS), r["backend"], r["dtype"])
        groups.setdefault(key, []).append(r)

    def order(key: tuple) -> tuple:
        *dims, backend, dtype = key
        return (*(order_key(d, v) for d, v in zip(_ACCURACY_DIMS, dims)), backend, order_key("dtype", dtype))

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
                 f"{MISSING}: no finite error figure." + constant_text(constant)),
        headers=varying + ["backend", "dtype", "worst ULP", "worst rel. error", "passed", "failed", "recorded"],
        rows=rows,
        align=["left"] * (len(varying) + 2) + ["right"] * 5,
        empty="No check records.",
    )


def is_special(record: dict[str, Any]) -> bool:
    """Whether a check record belongs in the overflow table: its case says so (files from
    before the ``special`` field are matched on the catalog's special cases)."""
    return record["kind"] == "check" and (record.get("special") is True or record["case"] in SPECIAL_CASES)


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
    varying, constant = split_dims(special, dims)
    present = {r["case"] for r in special}
    cases = [c for c in SPECIAL_CASES if c in present] + sorted(present - set(SPECIAL_CASES))

    behaviours: dict[tuple, dict[str, set]] = {}
    expected: dict[str, set] = {}
    for r in special:
        key = (is_reference(r), *(r.get(d) for d in dims), r["backend"])
        behaviours.setdefault(key, {}).setdefault(r["case"], set()).add(r.get("behaviour") or MISSING)
        if r.get("expected") is not None and not is_reference(r):
            expected.setdefault(r["case"], set()).add(r["expected"])

    def order(key: tuple) -> tuple:  # backends first, then the reference rows
        reference, *values, backend = key
        return (reference, *(order_key(d, v) for d, v in zip(dims, values)), backend)

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
                 + constant_text({d: v for d, v in constant.items() if d != "dtype"})),
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
