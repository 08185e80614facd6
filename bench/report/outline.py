"""What a report says, in order: the headline, a summary, then sections of tables and figures.

``build_report`` turns loaded runs and their merged records into a
``Report``: the headline (its figures, its numbers from ``headline``, the
fastest per size), the findings of the summary (what was run, the fastest backend per
size, which backends fail which cases, what is flagged), each pointing at the
section that holds the detail, and the sections themselves (speed, accuracy,
sources). The documents (``documents``: markdown, LaTeX; ``page``: HTML)
render the same ``Report``, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ..measure.cases import names as case_names
from ..core.formatting import format_size
from .headline import fastest_lines, fastest_table, memory_lines, worst_accuracy_lines
from .plots import Figure
from .runs import Run
from .tables import (SPEED_DIMS, Table, accuracy_table, bandwidth_table, dim_name, is_reference, is_suspect, join_words, order_key,
                     overflow_table, peak_table, short_commit, sources_table, speed_grid, speed_records, time_table)

_LISTED = 8  # items named in one summary line before "and N more"


@dataclass
class Section:
    """A part of the report under one heading: its findings, tables, then figures (an opening section,
    the headline, comes before the contents and the summary, in the order ``in_order`` says)."""

    id: str
    title: str
    tables: list[Table]
    figures: list[Figure] = field(default_factory=list)
    findings: list["Finding"] = field(default_factory=list)
    opens: bool = False

    def in_order(self, tables: list, figures: list, findings: list) -> list:
        """The section's parts, rendered, in the order they are shown. The opening section: its first figure,
        then its findings (the numbers), then its other figures and tables, so that one screen holds a
        figure and the numbers."""
        if self.opens:
            return figures[:1] + findings + figures[1:] + tables
        return findings + tables + figures

    @property
    def shown(self) -> bool:
        """Whether the section has anything to show (a report of checks only has no headline figures)."""
        return bool(self.tables or self.figures or self.findings)


@dataclass
class Finding:
    """One point of the summary: a label, what it says (lines), and where the detail is (title, anchor id)."""

    label: str
    lines: list[str]
    links: list[tuple[str, str]]


@dataclass
class Report:
    """Everything a report document shows."""

    runs: list[Run]
    records: list[dict[str, Any]]
    warnings: list[str]
    findings: list[Finding]
    sections: list[Section]

    def add_figures(self, figures: Sequence[Figure]) -> None:
        """Place each figure in the section its ``section`` names (after that section's tables)."""
        by_id = {s.id: s for s in self.sections}
        for fig in figures:
            by_id[fig.section].figures.append(fig)

    @property
    def opening(self) -> list[Section]:
        """The sections shown before the contents and the summary: the headline, where there is one."""
        return [s for s in self.sections if s.opens and s.shown]

    @property
    def body(self) -> list[Section]:
        """The sections shown after the summary."""
        return [s for s in self.sections if not s.opens and s.shown]

    @property
    def figures(self) -> list[Figure]:
        """Every figure, in section order."""
        return [f for s in self.sections for f in s.figures]


def _more(items: Sequence[str], limit: int = _LISTED) -> str:
    shown = list(items[:limit]) + ([f"{len(items) - limit} more"] if len(items) > limit else [])
    return join_words(shown)


def _values(records: Sequence[dict[str, Any]], key: str, dim: Optional[str] = None) -> list[str]:
    found = {r.get(key) for r in records if r.get(key) is not None}
    return [str(v) for v in sorted(found, key=lambda v: order_key(dim or key, v))]


def what_was_run(runs: Sequence[Run], records: Sequence[dict[str, Any]]) -> Finding:
    """Files, machines and devices; what was timed and what was checked."""
    machines = sorted({run.machine for run in runs})
    lines = [f"{len(runs)} results file{'s' if len(runs) != 1 else ''} from {len(machines)} machine"
             f"{'s' if len(machines) != 1 else ''} ({'; '.join(machines)}); "
             f"device{'s' if len(_values(records, 'device')) != 1 else ''} {join_words(_values(records, 'device'))}."]
    timings = speed_records(records)
    if timings:
        backends = _values(timings, "backend")
        sizes = {(r["rows"], r["vocab"]) for r in timings}
        ops = sorted({(r.get("op"), r.get("pass")) for r in timings}, key=lambda k: (order_key("op", k[0]), order_key("pass", k[1])))
        lines.append(f"{len(timings)} timings: {len(backends)} backends at {len(sizes)} sizes (rows×vocab); "
                     f"dtype{'s' if len(_values(timings, 'dtype')) != 1 else ''} {join_words(_values(timings, 'dtype'))}; "
                     f"{join_words([f'{op} {p}' for op, p in ops])}; "
                     f"cache {join_words(_values(timings, 'mode'))}.")
    checks = [r for r in records if r["kind"] == "check" and not is_reference(r)]
    if checks:
        lines.append(f"{len(checks)} checks: {len(_values(checks, 'backend'))} backends on "
                     f"{len({r['case'] for r in checks})} cases; dtypes {join_words(_values(checks, 'dtype'))}; "
                     f"operations {join_words(_values(checks, 'op'))}.")
    return Finding("What was run", lines, [("Sources", "sources")])


# The speed dimensions that split backends which were timed alike into separate groups.
_APART = ("threads", "world_size")
_APART_WORDS = {"threads": "thread count", "world_size": "world size"}


def fastest(records: Sequence[dict[str, Any]]) -> Optional[Finding]:
    """Per group of comparable timings: which backend is fastest at how many sizes."""
    grid = speed_grid(records)
    if not grid.fastest:
        return None
    wins: dict[tuple, dict[str, list]] = {}
    for (group, backend), by_size in grid.cells.items():
        for size, r in by_size.items():
            if grid.is_fastest(group, r):
                wins.setdefault(group, {}).setdefault(backend, []).append(size)
    lines = []
    for group in sorted(wins, key=lambda g: tuple(order_key(d, v) for d, v in zip(SPEED_DIMS, g))):
        compared = sum(1 for (g, s) in grid.fastest if g == group)
        label = " · ".join(f"{dim_name(d)} {v}" for d, v in zip(SPEED_DIMS, group) if d in grid.varying)
        parts = []
        for backend, sizes in sorted(wins[group].items(), key=lambda kv: (-len(kv[1]), kv[0])):
            sizes = sorted(sizes, key=lambda s: (s[1], s[0]))
            where = (f"at every size ({len(sizes)})" if len(sizes) == compared else
                     f"at {len(sizes)} of {compared} sizes" if len(sizes) > 3 else
                     f"at {join_words([format_size(*s) for s in sizes])}")
            parts.append(f"{backend} {where}")
        # Backends timed alike but with another thread count (NumPy ones run apart with their own,
        # say) never faced this group's winner: name who it won among, or "fastest" reads as overall.
        members = sorted({b for (g, b) in grid.cells if g == group})
        alike = [(g, b) for (g, b) in grid.cells if b not in members and g != group
                 and all(x == y for d, x, y in zip(SPEED_DIMS, g, group) if d not in _APART)]
        apart = sorted({b for _, b in alike})
        differ = [_APART_WORDS[d] for i, d in enumerate(SPEED_DIMS) if d in _APART and any(g[i] != group[i] for g, _ in alike)]
        among = (f" (among {join_words(members)} only; {join_words(apart)} ran with another {' and '.join(differ)})"
                 if apart else "")
        lines.append(f"{label + ': ' if label else ''}{'; '.join(parts)}{among}.")
    return Finding("Fastest", lines, [("Time per call", "time-per-call")])


def failures(records: Sequence[dict[str, Any]]) -> Optional[Finding]:
    """Which backends fail which checked cases (and in which dtypes), and which timings failed."""
    checks = [r for r in records if r["kind"] == "check" and not is_reference(r)]
    lines = []
    failed: dict[str, dict[str, set]] = {}
    for r in checks:
        if r.get("passed") is False:
            failed.setdefault(r["backend"], {}).setdefault(r["case"], set()).add(r["dtype"])
    dtypes_of = {b: {r["dtype"] for r in checks if r["backend"] == b} for b in failed}
    order = {c: i for i, c in enumerate(case_names())}
    for backend in sorted(failed, key=lambda b: (-len(failed[b]), b)):
        cases = sorted(failed[backend], key=lambda c: (order.get(c, len(order)), c))
        shown = [c if failed[backend][c] == dtypes_of[backend] else
                 f"{c} ({', '.join(sorted(failed[backend][c], key=lambda d: order_key('dtype', d)))})" for c in cases]
        lines.append(f"{backend} fails {len(cases)} case{'s' if len(cases) != 1 else ''}: {_more(shown)}.")
    clean = sorted({r["backend"] for r in checks} - set(failed))
    if clean:
        lines.append(f"Every judged check passed: {join_words(clean)}.")
    timing_failures = [r for r in speed_records(records) if r.get("failure")]
    if timing_failures:
        shown = [f"{r['backend']} {format_size(r['rows'], r['vocab'])} {r.get('mode')} ({r['failure']})"
                 for r in sorted(timing_failures, key=lambda r: (r["backend"], r["vocab"], r["rows"]))]
        lines.append(f"Timings that failed: {_more(shown)}.")
    if not lines:
        return None
    links = ([("Accuracy", "accuracy"), ("Overflow behaviour", "overflow-behaviour")] if checks else []) + (
        [("Time per call", "time-per-call")] if timing_failures else [])
    return Finding("Failures", lines, links)


def flagged(runs: Sequence[Run], records: Sequence[dict[str, Any]], warnings: Sequence[str]) -> Finding:
    """Suspect timings, files measured from a modified tree, and every warning the inputs raised."""
    lines = []
    suspects = [r for r in speed_records(records) if is_suspect(r)]
    if suspects:
        shown = [f"{r['backend']} {r.get('op')} {r.get('pass')} {r.get('dtype')} {format_size(r['rows'], r['vocab'])} "
                 f"{r.get('mode')} ({r['suspect']})" for r in suspects]
        lines.append(f"{len(suspects)} suspect timing{'s' if len(suspects) != 1 else ''}, shown but never "
                     f"counted fastest: {_more(shown, 4)}.")
    dirty = [f"{run.path.name} ({short_commit(run.environment.get('commit'))})" for run in runs
             if str(run.environment.get("commit") or "").endswith("+dirty")]
    if dirty:
        lines.append(f"Measured from a working tree with uncommitted changes: {join_words(dirty)}.")
    lines += [f"Warning: {w}" for w in warnings]
    if not lines:
        lines.append("Nothing: no suspect timing, no warning.")
    links = [("Time per call", "time-per-call")] if suspects else []
    return Finding("Flagged", lines, links + ([("Sources", "sources")] if dirty else []))


def headline(records: Sequence[dict[str, Any]]) -> Section:
    """The section a page opens with: a headline figure, the numbers, the other figures, the fastest per size."""
    table = fastest_table(records)
    findings = [Finding("Fastest at the largest size", fastest_lines(records), [("Fastest per size", "fastest-per-size")]),
                Finding("Worst accuracy finding per dtype", worst_accuracy_lines(records), [("Accuracy", "accuracy")]),
                Finding("Least memory, cross_entropy full", memory_lines(records), [("Peak memory", "peak-memory")])]
    return Section("headline", "Headline", [table] if table else [], findings=[f for f in findings if f.lines],
                   opens=True)


def build_report(runs: Sequence[Run], records: Sequence[dict[str, Any]], warnings: Sequence[str] = (),
                 base: Optional[Path] = None, made: Sequence[str] = ()) -> Report:
    """The summary and the sections of tables (figures are added by whoever draws them).

    ``base``: the folder the document is written to, for the links to the results files.
    ``made``: lines saying when and by which command the report was made (the report command's).
    """
    timings = speed_records(records)
    speed = [time_table(records)]
    if timings:
        speed.append(bandwidth_table(records))
        peak = peak_table(records)
        if peak is not None:
            speed.append(peak)
    sections = [
        headline(records),
        Section("speed", "Speed", speed),
        Section("correctness", "Correctness", [accuracy_table(records), overflow_table(records)]),
        Section("sources", "Sources", [sources_table(runs, base)]),
    ]
    findings = [what_was_run(runs, records), Finding("Made", list(made), [("Sources", "sources")]) if made else None,
                fastest(records), failures(records), flagged(runs, records, warnings)]
    return Report(list(runs), list(records), list(warnings), [f for f in findings if f], sections)

