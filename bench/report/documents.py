"""The report as documents: markdown (with plot links), LaTeX, the HTML page, and the README block.

``render_document`` gives the text of one format (what ``report`` prints);
``write_report`` writes ``DIR/report.md`` (plus ``report.html`` or
``report.tex`` for those formats) and the plots; with a README path, the same
markdown replaces the text between the ``README_BEGIN`` and ``README_END``
markers in it (how ``results/README.md`` is published).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..errors import UsageError
from .outline import Finding, Report, Section, build_report
from .page import TITLE, render_page
from .plots import PLOT_PATTERNS, Figure, write_plots
from .render import FORMATS, latex_escape, link_target, md_escape, render_table
from ..core.results import write_atomic
from .runs import Run, warn_stderr

README_BEGIN = "<!-- begin softmax-bench report -->"
README_END = "<!-- end softmax-bench report -->"


def _md_finding(finding: Finding) -> str:
    links = ", ".join(f"[{md_escape(text)}](#{target})" for text, target in finding.links)
    lines = "".join(f"  - {md_escape(line)}\n" for line in finding.lines)
    return f"- **{md_escape(finding.label)}.**" + (f" (details: {links})" if links else "") + f"\n{lines}"


def _md_figure(fig: Figure, base: Path) -> str:
    png = link_target(Path(os.path.relpath(fig.png, base)).as_posix())
    svg = link_target(Path(os.path.relpath(fig.svg, base)).as_posix())
    return f"![{md_escape(fig.title)}]({png})\n\n{md_escape(fig.caption)} ([SVG]({svg}))\n"


def _md_section(section: Section, fmt: str, base: Path, level: int) -> list[str]:
    """A section's heading and its parts, in the order ``Section.in_order`` gives."""
    tables = [render_table(table, fmt, heading=level + 1) for table in section.tables]
    figures = [_md_figure(fig, base) for fig in section.figures]
    findings = ["".join(_md_finding(f) for f in section.findings)] if section.findings else []
    body = section.in_order(tables, figures, findings)
    return [f"{'#' * level} {md_escape(section.title)}\n", *body]


def render_markdown(report: Report, fmt: str, base: Path, level: int = 2) -> str:
    """The headline, the summary, then each section's tables (markdown or github) and plots, linked
    relative to ``base``.

    ``level`` is the heading level of the summary and the sections; tables get the next one.
    """
    summary = f"{'#' * level} Summary\n\n" + "".join(_md_finding(f) for f in report.findings)
    parts = [p for section in report.opening for p in _md_section(section, fmt, base, level)] + [summary]
    parts += [p for section in report.body for p in _md_section(section, fmt, base, level)]
    return "\n".join(parts)


def render_latex(report: Report) -> str:
    """The summary as a list, then every table (booktabs); plots are files beside it."""
    def items(findings: Sequence[Finding]) -> str:
        return "".join(f"\\item \\textbf{{{latex_escape(f.label)}.}} {latex_escape(' '.join(f.lines))}\n"
                       for f in findings)

    parts = [f"\\section*{{Summary}}\n\\begin{{itemize}}\n{items(report.findings)}\\end{{itemize}}\n"]
    for section in report.opening + report.body:
        parts.append(f"\\section*{{{latex_escape(section.title)}}}\n")
        if section.findings:
            parts.append(f"\\begin{{itemize}}\n{items(section.findings)}\\end{{itemize}}\n")
        parts += [render_table(table, "latex") for table in section.tables]
    return "\n".join(parts)


def render_document(report: Report, fmt: str, base: Optional[Path] = None) -> str:
    """The whole report in one of ``FORMATS`` (the HTML one a page), links relative to ``base``."""
    base = base if base is not None else Path.cwd()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "html":
        return render_page(report, base)
    if fmt == "latex":
        return render_latex(report)
    return f"# {TITLE}\n\n" + render_markdown(report, fmt, base)


def splice_readme(text: str, block: str, source: str) -> str:
    """``text`` with everything between the README markers replaced by ``block``."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise UsageError(f"--readme {source}: needs the lines {README_BEGIN} and {README_END} (in that order) "
                         "around the place for the report")
    return f"{text[:begin + len(README_BEGIN)]}\n{block}\n{text[end:]}"


def write_report(runs: Sequence[Run], records: Sequence[dict[str, Any]], out_dir: str | Path, fmt: str,
                 readme: Optional[str | Path] = None, warnings: Sequence[str] = (),
                 warn: Callable[[str], None] = warn_stderr, made: Sequence[str] = ()) -> list[Path]:
    """Write report.md (and report.html or report.tex), the plots, and the README block; returns what was written.

    ``warnings`` (from loading and merging the files) are shown in the report's
    summary, with any raised here (no matplotlib), which also go to ``warn``.
    """
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
    shown = list(warnings)
    written: list[Path] = []
    figures: list[Figure] = []
    md_fmt = "github" if fmt == "github" else "markdown"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for pattern in PLOT_PATTERNS:
            for stale in out.glob(pattern):
                stale.unlink()
        try:
            figures = write_plots(records, out)
        except ImportError:
            message = "matplotlib is not installed (pip install 'softmax-bench[report]'); tables written without plots"
            warn(message)
            shown.append(message)
        report = build_report(runs, records, shown, out, made)
        report.add_figures(figures)
        write_atomic(out / "report.md", f"# {TITLE}\n\n" + render_markdown(report, md_fmt, out))
        written.append(out / "report.md")
        if fmt == "html":
            write_atomic(out / "report.html", render_page(report, out))
            written.append(out / "report.html")
        elif fmt == "latex":
            write_atomic(out / "report.tex", render_latex(report))
            written.append(out / "report.tex")
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write ({exc.strerror or type(exc).__name__})") from None
    if readme is not None:
        # Built again for the README's folder: the links to results files are relative to it.
        where = Path(readme).parent
        placed = build_report(runs, records, shown, where, made)
        placed.add_figures(figures)
        block = render_markdown(placed, md_fmt, where, level=3)
        try:
            write_atomic(Path(readme), splice_readme(readme_text, block, str(readme)))
        except OSError as exc:
            raise UsageError(f"--readme {readme}: cannot write ({exc.strerror or type(exc).__name__})") from None
        written.append(Path(readme))
    return written + [p for f in figures for each in (f, f.narrow) if each for p in (each.png, each.svg)]
