"""The report as documents: markdown (with plot links), HTML, LaTeX, and the README block.

``write_report`` writes ``DIR/report.md`` (plus ``report.html`` or
``report.tex`` for those formats) and the plots; with a README path, the same
markdown replaces the text between the ``README_BEGIN`` and ``README_END``
markers in it (how ``results/README.md`` is published).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .errors import UsageError
from .plots import PLOT_PATTERNS, Figure, plot_bandwidth, plot_error_vs_scale
from .results import write_atomic
from .runs import Run, warn_stderr
from .tables import Table, build_tables, md_escape, render_table, render_tables

README_BEGIN = "<!-- begin softmax-bench report -->"
README_END = "<!-- end softmax-bench report -->"


def render_markdown(tables: Sequence[Table], figures: Sequence[Figure], fmt: str, base: Path) -> str:
    """Tables (markdown or github) each followed by its plots, linked relative to ``base``."""
    parts = []
    for table in tables:
        parts.append(render_table(table, fmt))
        for fig in (f for f in figures if f.table == table.title):
            png = Path(os.path.relpath(fig.png, base)).as_posix()
            svg = Path(os.path.relpath(fig.svg, base)).as_posix()
            parts.append(f"![{md_escape(fig.title)}]({png}) ([SVG]({svg}))\n")
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
                 readme: Optional[str | Path] = None, warn: Callable[[str], None] = warn_stderr) -> list[Path]:
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
