"""The report's tables, built from merged records; ``render`` turns them into text.

- **sources**: one column per results file: machine, commit (with its dirty
  flag), package versions, Python, CPU, GPU, cores, memory, time;
- **time per call**: backend x size (x machine, device, dtype, mode, op,
  pass, threads, world size), the median and its spread (IQR), the fastest
  trusted backend per size in bold, suspect timings flagged;
- **bandwidth**: the same grid, the effective bandwidth as a share of the
  fastest copy on the device;
- **peak memory**: the same grid, where records carry it;
- **accuracy**: backend x dtype, worst ULP and relative error, counts of
  cases passed, failed and recorded without a verdict;
- **overflow behaviour**: backend x special case, the behaviour class,
  coloured by verdict, with the reference conventions as rows.

Every cell is text (``Cell`` is a ``str``), so the plain formats need nothing
more; a ``Cell`` also carries what rich formats add: bold, a second line, a
flag with a numbered note, a verdict class, a sort key, a link. Columns that
hold one value for every row are folded into the caption. ``compare`` builds
its tables from the same parts.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..backend import DEVICES, DTYPES
from ..measure.cases import SPECIAL_CASES
from ..core.formatting import (MISSING, format_gbps, format_peak, format_percent, format_relative, format_seconds,
                         format_size, format_ulp, human_bytes)
from .runs import Run

_ORDER = {"device": DEVICES, "dtype": DTYPES, "mode": ("warm", "cold"),
          "op": ("softmax", "log_softmax", "cross_entropy"), "pass": ("fwd", "fwd (incl. bwd)", "bwd", "full")}
SPEED_DIMS = ("machine", "device", "dtype", "mode", "op", "pass", "options", "threads", "world_size")
DIM_NAMES = {"world_size": "world size", "options": "loss options"}
_ACCURACY_DIMS = ("machine", "device")
_OVERFLOW_DIMS = ("machine", "device", "op")
INCLUDES_BWD = "fwd (incl. bwd)"

# Shown wherever warm and cold appear: the two cache states a time is taken in.
MODES_TEXT = ("warm: one input reused, so it stays in cache; cold: inputs rotated through more than twice "
              "the last-level cache, so each call reads its input from memory.")


class Cell(str):
    """A table cell: its text, which every format shows, and what rich formats add.

    The text is ``main``, then `` (sub)``, then `` flag``, then ``[note]``.
    ``strong`` marks the best of a column (bold); ``kind`` names a class
    (``failed``, ``correct``, ``recorded``, ``suspect`` ...) HTML colours by;
    ``sort`` is the number a column sorts by; ``href`` makes the text a link.
    """

    main: str
    sub: Optional[str]
    flag: Optional[str]
    note: Optional[int]
    strong: bool
    kind: Optional[str]
    sort: Optional[float]
    href: Optional[str]

    def __new__(cls, main: str, sub: Optional[str] = None, *, flag: Optional[str] = None, note: Optional[int] = None,
                strong: bool = False, kind: Optional[str] = None, sort: Optional[float] = None,
                href: Optional[str] = None) -> "Cell":
        text = main + (f" ({sub})" if sub else "") + (f" {flag}" if flag else "") + (f"[{note}]" if note else "")
        self = super().__new__(cls, text)
        self.main, self.sub, self.flag, self.note = main, sub, flag, note
        self.strong, self.kind, self.sort, self.href = strong, kind, sort, href
        return self


def slug(text: str) -> str:
    """An anchor id as GitHub makes one from a heading: lower case, spaces to hyphens, punctuation dropped."""
    return re.sub(r"[^a-z0-9 _-]", "", text.lower()).strip().replace(" ", "-")


@dataclass
class Table:
    """A table ready to render: every cell is already text (``str`` or ``Cell``)."""

    title: str
    caption: str
    headers: list[str]
    rows: list[list[str]]
    align: list[str]  # "left" or "right", one per column
    empty: str = "No records."
    group: int = 0  # leading columns that group the rows (HTML shows each group as a heading row)
    notes: list[str] = field(default_factory=list)  # numbered notes the cells' [n] refer to
    sortable: bool = False  # HTML: the columns may be sorted by clicking their headers
    id: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or slug(self.title)


class Notes:
    """Numbered notes of one table: the same text gets the same number."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def number(self, text: Optional[str]) -> Optional[int]:
        """The note's number (1-based), adding it the first time; ``None`` for no text."""
        if not text:
            return None
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


def order_key(dim: str, value: Any) -> tuple:
    """Sort key of a dimension's value: the known order (float64 before float32, warm before cold), then text."""
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


def dim_name(dim: str) -> str:
    """A dimension as a header says it: world_size is 'world size'."""
    return DIM_NAMES.get(dim, dim)


def constant_text(constant: dict[str, Any]) -> str:
    """Caption text for folded columns: 'Machine: X. Every row: device cpu, op softmax.'"""
    text = ""
    if constant.get("machine") is not None:
        text += f" Machine: {constant['machine']}."
    rest = [f"{dim_name(d)} {v}" for d, v in constant.items() if d != "machine" and v is not None]
    if rest:
        text += f" Every row: {', '.join(rest)}."
    return text


def join_words(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def fold_constant_columns(table: Table, names: Sequence[str]) -> Table:
    """``table`` with each column of ``names`` that holds one value in every row (of two or more)
    moved into the caption: a column of 4, 4, 4 says one thing, once."""
    if len(table.rows) < 2:
        return table
    folded = []
    for name in names:
        if name not in table.headers:
            continue
        i = table.headers.index(name)
        values = {str(row[i]) for row in table.rows}
        if len(values) == 1:
            folded.append(f"{name} {values.pop()}")
            del table.headers[i], table.align[i]
            for row in table.rows:
                del row[i]
    if folded:
        table.caption += f" In every row: {', '.join(folded)}."
    return table


def is_reference(record: dict[str, Any]) -> bool:
    """Whether a check record is a reference library's convention, not a backend's result."""
    return record.get("reference") is True


def pass_label(record: dict[str, Any]) -> Optional[str]:
    """The pass as shown: a forward timed through a fused forward+backward says so."""
    timed = record.get("pass")
    return INCLUDES_BWD if timed == "fwd" and record.get("includes_bwd") else timed


def speed_records(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timing records the speed tables and plots show, with ``pass`` as it is shown.

    Where some records are distributed, the others ran as one process: world size 1.
    Host threads say nothing of a GPU kernel: GPU records show none (files
    from before recorded the host's).
    """
    timings = [r for r in records if r["kind"] == "timing" and not is_reference(r)]
    distributed = any(r.get("world_size") is not None for r in timings)
    return [{**r, "pass": pass_label(r), **({"world_size": r.get("world_size") or 1} if distributed else {}),
             **({"threads": None} if r.get("device", "cpu") != "cpu" else {})}
            for r in timings]


def is_suspect(record: dict[str, Any]) -> bool:
    """Whether the engine marked a timing as one it does not trust (``suspect``: its reason)."""
    return bool(record.get("suspect"))


# ---------------------------------------------------------------- sources


def short_commit(commit: Optional[str]) -> str:
    """The first 12 hex digits, keeping the ``+dirty`` flag: a dirty tree is not the commit."""
    if not commit:
        return MISSING
    sha, plus, flag = str(commit).partition("+")
    return sha[:12] + plus + flag


def _gpu_text(gpu: Any) -> str:
    if not gpu:
        return "none"
    if isinstance(gpu, dict):
        extra = ([f"driver {gpu['driver']}"] if gpu.get("driver") else []) + ([str(gpu["memory"])] if gpu.get("memory") else [])
        return f"{gpu.get('name') or MISSING}" + (f" ({', '.join(extra)})" if extra else "")
    return str(gpu)


def _simd_text(info: Any) -> str:
    """The SIMD flags a file records (files from before cpu_info: missing)."""
    if not isinstance(info, dict) or "simd_flags" not in info:
        return MISSING
    return " ".join(info["simd_flags"]) or "none of the SIMD flags recorded"


def _cache_text(info: Any) -> str:
    if not isinstance(info, dict):
        return MISSING
    parts = [f"{label} {human_bytes(info[key])}" for label, key in
             (("L1d", "l1_data_cache_size"), ("L2", "l2_cache_size"), ("L3", "l3_cache_size"))
             if isinstance(info.get(key), int) and info[key] > 0]
    return ", ".join(parts) or MISSING


def _threads_text(settings: Any) -> str:
    if not isinstance(settings, dict) or not settings:
        return MISSING
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def sources_table(runs: Sequence[Run], base: Optional[Path] = None) -> Table:
    """One column per results file: where it ran, with what, and a link to the file.

    ``base`` is the folder of the page the table goes in: links are relative to it.
    """
    base = base if base is not None else Path.cwd()
    headers = ["", *(Cell(run.path.name, href=Path(os.path.relpath(run.path.resolve(), base.resolve())).as_posix())
                     for run in runs)]
    envs = [run.environment for run in runs]
    dirty = Notes()

    def commit(env: dict[str, Any]) -> str:
        text = short_commit(env.get("commit"))
        if text.endswith("+dirty"):
            return Cell(text, kind="dirty", note=dirty.number(
                "+dirty: the working tree had uncommitted changes when the file was written, "
                "so the commit alone does not reproduce it."))
        return text

    def counts(run: Run) -> str:
        kinds = Counter(r["kind"] for r in run.records)
        return f"{len(run.records)} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else "0"

    rows = [
        ["machine", *(run.machine for run in runs)],
        ["commit", *(commit(env) for env in envs)],
        ["time", *(str(env.get("time") or MISSING) for env in envs)],
        ["host", *(str(env.get("host") or MISSING) for env in envs)],
        ["CPU", *(str(env.get("cpu") or MISSING) for env in envs)],
        ["CPU flags", *(_simd_text(env.get("cpu_info")) for env in envs)],
        ["caches", *(_cache_text(env.get("cpu_info")) for env in envs)],
        ["cores", *(str(env.get("cpu_count") or MISSING) for env in envs)],
        ["threads", *(_threads_text(env.get("threads")) for env in envs)],
        ["memory", *(human_bytes(env["memory_bytes"]) if env.get("memory_bytes") else MISSING for env in envs)],
        ["GPU", *(_gpu_text(env.get("gpu")) for env in envs)],
        ["Python", *(str(env.get("python") or MISSING) for env in envs)],
        ["platform", *(str(env.get("platform") or MISSING) for env in envs)],
        ["records", *(counts(run) for run in runs)],
    ]
    packages = sorted({name for env in envs for name in (env.get("packages") or {})})
    rows += [[name, *(str((env.get("packages") or {}).get(name) or MISSING) for env in envs)] for name in packages]
    return Table(
        title="Results files",
        caption="The results files in this report (each links to its JSON) and what each ran on: the commit "
                "of the measured code, package versions, interpreter and hardware. Machine is the CPU model "
                "(and GPU model) a file records; files from the same machine share its rows in the tables.",
        headers=headers,
        rows=rows,
        align=["left"] * len(headers),
        notes=dirty.texts,
    )


# ---------------------------------------------------------------- speed


@dataclass
class _SpeedGrid:
    """Timing records laid out as the speed tables show them: (group, backend) x size."""

    sizes: list[tuple[int, int]]
    varying: list[str]
    constant: dict[str, Any]
    cells: dict[tuple, dict[tuple, dict[str, Any]]]
    fastest: dict[tuple, float]  # (group, size) -> the fastest trusted median

    def keys(self) -> list[tuple]:
        """(group, backend) of every row, in table order."""

        def order(item: tuple) -> tuple:
            group, backend = item
            return (*(order_key(d, v) for d, v in zip(SPEED_DIMS, group)), backend)

        return sorted(self.cells, key=order)

    def is_fastest(self, group: tuple, record: dict[str, Any]) -> bool:
        """Whether ``record`` is the fastest trusted time of its group at its size."""
        size = (record["rows"], record["vocab"])
        return (not is_suspect(record) and record.get("median_s") is not None
                and record["median_s"] == self.fastest.get((group, size)))

    def label(self, group: tuple, backend: str) -> list[str]:
        """The row's label cells: the varying dimensions, then the backend."""
        return [MISSING if v is None else str(v) for d, v in zip(SPEED_DIMS, group) if d in self.varying] + [backend]

    def within(self) -> str:
        """Caption words saying which rows the fastest is judged among."""
        return f" among rows with the same {join_words([dim_name(d) for d in self.varying])}" if self.varying else ""


def speed_grid(records: Sequence[dict[str, Any]]) -> _SpeedGrid:
    """The layout all speed tables share, and the fastest trusted time of each (group, size).

    The fastest is judged among rows that differ only in backend (a float64
    time against a float32 one, or warm against cold, says nothing), only
    where two or more backends have a time, and never on a suspect timing.
    """
    timings = speed_records(records)
    sizes = sorted({(r["rows"], r["vocab"]) for r in timings}, key=lambda s: (s[1], s[0]))
    varying, constant = split_dims(timings, SPEED_DIMS)
    cells: dict[tuple, dict[tuple, dict[str, Any]]] = {}
    for r in timings:
        group = tuple(r.get(d) for d in SPEED_DIMS)
        cells.setdefault((group, r["backend"]), {})[(r["rows"], r["vocab"])] = r
    timed: dict[tuple, list[dict[str, Any]]] = {}
    for (group, _), by_size in cells.items():
        for size, r in by_size.items():
            if r.get("median_s") is not None:
                timed.setdefault((group, size), []).append(r)
    fastest = {}
    for key, rs in timed.items():
        trusted = [r["median_s"] for r in rs if not is_suspect(r)]
        if len(rs) > 1 and trusted:
            fastest[key] = min(trusted)
    return _SpeedGrid(sizes, varying, constant, cells, fastest)


def _untimed_cell(record: dict[str, Any], notes: Notes) -> Cell:
    """A record with no time: failed (with its failure kind) or skipped; the reason as a note."""
    if record.get("failure"):
        return Cell(f"failed ({record['failure']})", note=notes.number(record.get("reason")), kind="failed")
    return Cell("skipped", note=notes.number(record.get("reason")), kind="skipped")


def _suspect_note(record: dict[str, Any], notes: Notes) -> Optional[int]:
    return notes.number(f"suspect: {record['suspect']}") if is_suspect(record) else None


def _grid_table(grid: _SpeedGrid, title: str, caption: str, cell, notes: Notes, extra: Optional[dict] = None) -> Table:
    """One speed-grid table: label columns (group dims, backend, then ``extra`` columns) and a cell per size."""
    extra = extra or {}
    rows = []
    for group, backend in grid.keys():
        by_size = grid.cells[(group, backend)]
        row = grid.label(group, backend) + [values(by_size) for values in extra.values()]
        for size in grid.sizes:
            r = by_size.get(size)
            row.append(MISSING if r is None else cell(group, r))
        rows.append(row)
    headers = [dim_name(d) for d in grid.varying] + ["backend", *extra] + [format_size(*s) for s in grid.sizes]
    table = Table(
        title=title,
        caption=caption + constant_text(grid.constant),
        headers=headers,
        rows=rows,
        align=["left"] * (len(grid.varying) + 1 + len(extra)) + ["right"] * len(grid.sizes),
        empty="No timing records.",
        group=len(grid.varying),
        notes=notes.texts,
        sortable=True,
    )
    return fold_constant_columns(table, list(extra))


def _routes(by_size: dict[tuple, dict[str, Any]]) -> str:
    routes = sorted({str(r["route"]) for r in by_size.values() if r.get("route")})
    return "/".join(routes) if routes else MISSING


def _route_column(timings: Sequence[dict[str, Any]]) -> dict:
    """The route (explicit, derived, autodiff, fused) as a column, where records carry one."""
    return {"route": _routes} if any(r.get("route") for r in timings) else {}


def _communication(record: dict[str, Any]) -> Optional[str]:
    """What a distributed record communicated per call, where it says."""
    if (record.get("world_size") or 1) <= 1 or record.get("comm_bytes") is None:
        return None
    collectives = f"{record['collectives']} collectives" if record.get("collectives") is not None else "collectives"
    return (f"{record['backend']} at {format_size(record['rows'], record['vocab'])}, world size "
            f"{record['world_size']}: {collectives} moving {human_bytes(record['comm_bytes'])} per call.")


def time_table(records: Sequence[dict[str, Any]]) -> Table:
    """Backend x size: median time per call and its spread; the fastest trusted backend per size in bold."""
    grid = speed_grid(records)
    notes = Notes()

    def cell(group: tuple, r: dict[str, Any]) -> Cell:
        median = r.get("median_s")
        if median is None:
            return _untimed_cell(r, notes)
        iqr = r.get("iqr_s")
        spread = f"IQR {format_percent(iqr / median)}" if iqr is not None and median > 0 else None
        suspect = _suspect_note(r, notes)
        note = suspect or notes.number(_communication(r))
        return Cell(format_seconds(median), spread, flag="suspect" if suspect else None, note=note,
                    strong=grid.is_fastest(group, r), kind="suspect" if suspect else None, sort=median)

    caption = ("Median time per call over the timed samples, and the spread: IQR, the interquartile range of the "
               f"samples as a share of the median. {MODES_TEXT} Bold: the fastest backend for that size"
               f"{grid.within()}, among timings the engine trusts; suspect: a timing it does not trust (the reason "
               f"is in the notes), never counted fastest. Columns are rows×vocab; {MISSING}: not measured.")
    return _grid_table(grid, "Time per call", caption, cell, notes, _route_column(speed_records(records)))


def bandwidth_table(records: Sequence[dict[str, Any]]) -> Table:
    """Backend x size: effective bandwidth as a share of the device's fastest copy (and in GB/s)."""
    grid = speed_grid(records)
    notes = Notes()
    timings = speed_records(records)

    def cell(group: tuple, r: dict[str, Any]) -> Cell:
        if r.get("median_s") is None:
            return _untimed_cell(r, notes)
        suspect = _suspect_note(r, notes)
        fraction = r.get("device_copy_fraction")
        second = format_gbps(r.get("gbps")) if r.get("gbps") is not None else None
        if r.get("roofline_fraction") and second:
            # The compute ceiling beside the copy's: a kernel bound by exp is at its limit below 100% of copy.
            second += f"; {format_percent(r['roofline_fraction'])} of roofline ({r.get('roofline_binds')}-bound)"
        return Cell(format_percent(fraction), second,
                    flag="suspect" if suspect else None, note=suspect, strong=grid.is_fastest(group, r),
                    kind="suspect" if suspect else None, sort=fraction)

    models: dict[str, list[str]] = {}
    for r in sorted(timings, key=lambda r: (order_key("op", r.get("op")), order_key("pass", r.get("pass")))):
        if r.get("byte_model"):
            what = f"{r.get('op')} {r.get('pass')}"
            if what not in models.setdefault(r["byte_model"], []):
                models[r["byte_model"]].append(what)
    bytes_text = ("2 × rows × vocab × itemsize for a forward softmax (one read, one write)" if not models else
                  "the bytes the op's byte model says one call must move (" +
                  "; ".join(f"{', '.join(ops)}: {model}" for model, ops in models.items()) + ")")
    caption = (f"Effective bandwidth, {bytes_text} / median, as a share of the fastest plain copy measured on the "
               "same device in the same run (any library) at the same dtype, size and cache mode: how close a "
               "backend comes to the memory-bound floor. Files that do not record that copy get it from their own "
               f"copy timings. With it, the bandwidth in GB/s, and where the backend's exps per element are known, "
               "the share of the roofline max(bytes / copy, exps / same-run exp rate) and which ceiling binds. Bold: the fastest trusted time, as in Time per call. "
               f"{MODES_TEXT}")
    return _grid_table(grid, "Bandwidth", caption, cell, notes)


def peak_table(records: Sequence[dict[str, Any]]) -> Optional[Table]:
    """Backend x size: peak memory of one call beyond its inputs; ``None`` when no record has it."""
    timings = speed_records(records)
    if not any(r.get("peak_bytes") is not None for r in timings):
        return None
    grid = speed_grid(records)
    notes = Notes()

    def cell(group: tuple, r: dict[str, Any]) -> str:
        if r.get("peak_bytes") is None:
            return MISSING
        library = (f"{r.get('peak_library_method') or 'library'} {human_bytes(r['peak_library_bytes'])}"
                   if r.get("peak_library_bytes") is not None else None)
        # The peak comes from the same worker call: a timing not trusted is flagged here too.
        suspect = _suspect_note(r, notes)
        return Cell(format_peak(r["peak_bytes"], r.get("peak_method")), library, flag="suspect" if suspect else None,
                    note=suspect, kind="suspect" if suspect else None, sort=r["peak_bytes"])

    methods = sorted({str(r["peak_method"]) for r in timings if r.get("peak_method")})
    caption = ("Peak memory of one call beyond its inputs (one more call, untimed). ≥: the worker's resident-set "
               "high-water mark (rss), a lower bound, since memory the library's allocator already held does not "
               "show; otherwise the method named (tracemalloc for NumPy, the device allocator on CUDA). With it, "
               "where recorded: the library's own figure and its method."
               + (f" Methods in these records: {', '.join(methods)}." if methods else "")
               + f" {MISSING}: not measured.")
    return _grid_table(grid, "Peak memory", caption, cell, notes)


# ---------------------------------------------------------------- accuracy


def _flushed(record: dict[str, Any]) -> bool:
    """Whether a record's relative error of 1 (or near it) is a subnormal output flushed to zero."""
    return record.get("subnormal") in ("flushed", "partly flushed") and (record.get("max_rel") or 0) >= 0.5


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

    notes = Notes()
    rows = []
    for key in sorted(groups, key=order):
        *dims, backend, dtype = key
        rs = groups[key]
        # Error magnitudes of what passed (failures are counted, and their reasons are in the check output);
        # softmax only, since gradient errors are measured against a different scale.
        passing = [r for r in rs if r.get("passed") is True and r.get("op", "softmax") == "softmax"]
        ulp = max((r["max_ulp"] for r in passing if r.get("max_ulp") is not None), default=None)
        worst_rel = max((r for r in passing if r.get("max_rel") is not None), key=lambda r: r["max_rel"], default=None)
        rel = worst_rel["max_rel"] if worst_rel else None
        ftz = notes.number(
            "FTZ: the worst relative error is a subnormal output flushed to zero (FTZ, as JAX on CPU does): the "
            "exact value is below the smallest normal number and the backend returned 0, all of the value "
            "lost (relative error 1) yet less than one ULP, the spacing floored at the smallest normal. The suite "
            "allows it: the row still sums to 1 within its tolerance.") if worst_rel and _flushed(worst_rel) else None
        verdicts = Counter(r["passed"] for r in rs)
        rows.append([str(v) for d, v in zip(_ACCURACY_DIMS, dims) if d in varying] + [
            backend, dtype,
            Cell(format_ulp(ulp), sort=ulp),
            Cell(format_relative(rel), flag="FTZ" if ftz else None, note=ftz, sort=rel),
            Cell(str(verdicts[True]), sort=verdicts[True]),
            Cell(str(verdicts[False]), kind="failed" if verdicts[False] else None, sort=verdicts[False]),
            Cell(str(verdicts[None]), sort=verdicts[None]),
        ])
    table = Table(
        title="Accuracy",
        caption=("Worst softmax error over the cases that passed, against the exact reference: in ULP (units in "
                 "the last place of the dtype, the spacing floored at the smallest normal number) and componentwise "
                 "relative. Then the count of checks (every case and operation) passed, failed, and recorded: "
                 "cases with no single right answer (a fully masked row, +inf), whose output is recorded without a "
                 f"verdict. {MISSING}: no finite error figure." + constant_text(constant)),
        headers=[dim_name(d) for d in varying] + ["backend", "dtype", "worst ULP", "worst rel. error", "passed",
                                                  "failed", "recorded"],
        rows=rows,
        align=["left"] * (len(varying) + 2) + ["right"] * 5,
        empty="No check records.",
        group=len(varying),
        notes=notes.texts,
        sortable=True,
    )
    return fold_constant_columns(table, ["recorded"])


def is_special(record: dict[str, Any]) -> bool:
    """Whether a check record belongs in the overflow table: its case says so (files from
    before the ``special`` field are matched on the catalog's special cases)."""
    return record["kind"] == "check" and (record.get("special") is True or record["case"] in SPECIAL_CASES)


def _verdict(records: Sequence[dict[str, Any]]) -> Optional[str]:
    """The cell's colour: failed if any record failed, else recorded if any has no verdict, else correct."""
    passed = {r.get("passed") for r in records}
    return "failed" if False in passed else "recorded" if None in passed else "correct" if passed else None


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

    found: dict[tuple, dict[str, list]] = {}
    expected: dict[str, set] = {}
    for r in special:
        key = (is_reference(r), *(r.get(d) for d in dims), r["backend"])
        found.setdefault(key, {}).setdefault(r["case"], []).append(r)
        if r.get("expected") is not None and not is_reference(r):
            expected.setdefault(r["case"], set()).add(r["expected"])

    def order(key: tuple) -> tuple:  # backends first, then the reference rows
        reference, *values, backend = key
        return (reference, *(order_key(d, v) for d, v in zip(dims, values)), backend)

    def cell(rs: Optional[list], reference: bool) -> str:
        if not rs:
            return MISSING
        # One class per record; several shapes of one case may differ.
        text = "/".join(sorted({r.get("behaviour") or MISSING for r in rs}))
        return text if reference else Cell(text, kind=_verdict(rs))

    rows = []
    for key in sorted(found, key=order):
        reference, *values, backend = key
        label = f"{backend} (reference)" if reference else backend
        rows.append([str(v) for d, v in zip(dims, values) if d in varying] + [label]
                    + [cell(found[key].get(c), reference) for c in cases])
    if expected:
        rows.append([""] * len(varying) + ["expected"]
                    + ["/".join(sorted(expected[c])) if c in expected else MISSING for c in cases])
    which = f"dtype {dtype}" if dtype else "every dtype"
    return Table(
        title="Overflow behaviour",
        caption=(f"What each backend returns on special inputs ({which}): the class of its output (correct, nan-row, "
                 "zeros, ...), marked by its verdict: passed, failed, or recorded (no single right answer, so no "
                 "verdict). Reference rows are the conventions of the reference libraries on the same inputs; "
                 "the expected row is what a correct implementation returns, where there is one answer."
                 + constant_text({d: v for d, v in constant.items() if d != "dtype"})),
        headers=[dim_name(d) for d in varying] + ["backend"] + cases,
        rows=rows,
        align=["left"] * (len(varying) + 1 + len(cases)),
        empty="No special-case check records.",
        group=len(varying),
    )
