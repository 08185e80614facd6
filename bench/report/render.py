"""Tables as text: markdown (pipe or GitHub), an HTML fragment, or LaTeX (booktabs).

Names in a table come from results files anyone can edit, so every piece of
text is escaped for its format here, in one place: HTML-escaped (markdown
passes raw HTML through, so markdown is HTML-escaped too, and ``|``, which
ends a pipe-table cell, is escaped), LaTeX specials escaped. A ``Cell``'s
extras are rendered in each format's own way: bold as ``**x**``,
``<strong>``, ``\\textbf``; a note as ``[n]`` (HTML: a link to the note).
"""

from __future__ import annotations

import html
from typing import Optional, Sequence
from urllib.parse import quote

from ..errors import UsageError
from .tables import Cell, Table

FORMATS = ("markdown", "github", "html", "latex")
# tabulate's name for the two markdown formats; HTML and LaTeX are written here.
TABLEFMT = {"markdown": "pipe", "github": "github"}


def escape_html(text: str) -> str:
    """Text for HTML content and attribute values."""
    return html.escape(str(text), quote=True)


def md_escape(text: str) -> str:
    """Text for markdown: raw HTML passes through markdown, and '|' ends a pipe-table cell."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


def latex_escape(text: str) -> str:
    """Escape LaTeX specials with tabulate's own rules."""
    from tabulate import LATEX_ESCAPE_RULES

    return "".join(LATEX_ESCAPE_RULES.get(ch, ch) for ch in str(text))


def link_target(href: str) -> str:
    """A relative path as a URL: spaces and the like percent-encoded, slashes kept."""
    return quote(href, safe="/#:.-_~")


# ---------------------------------------------------------------- cells


def _text_cell(cell: str, escape, bold: str, link: bool) -> str:
    """A cell in a text format: ``escape`` for its text, ``bold`` a format string for the strong part."""
    if not isinstance(cell, Cell):
        return escape(cell)
    main = escape(cell.main)
    if cell.href and link:
        main = f"[{main}]({link_target(cell.href)})"
    if cell.strong:
        main = bold.format(main)
    return (main + (f" ({escape(cell.sub)})" if cell.sub else "") + (f" {escape(cell.flag)}" if cell.flag else "")
            + (f"[{cell.note}]" if cell.note else ""))


def _md_cell(cell: str) -> str:
    return _text_cell(cell, md_escape, "**{}**", link=True)


def _latex_cell(cell: str) -> str:
    return _text_cell(cell, latex_escape, "\\textbf{{{}}}", link=False)


def html_cell(cell: str, tag: str, numeric: bool, table_id: str, scope: Optional[str] = None) -> str:
    """One ``<td>``/``<th>``: classes for a number column and the cell's kind, its sort key, its parts."""
    classes = (["num"] if numeric else []) + ([f"k-{cell.kind}"] if isinstance(cell, Cell) and cell.kind else [])
    attrs = (f' scope="{scope}"' if scope else "") + (f' class="{" ".join(classes)}"' if classes else "")
    if not isinstance(cell, Cell):
        return f"<{tag}{attrs}>{escape_html(cell)}</{tag}>"
    if cell.sort is not None:
        attrs += f' data-sort="{cell.sort!r}"'
    if cell.kind:
        attrs += f' title="{escape_html(cell.kind)}"'
    inner = escape_html(cell.main)
    if cell.href:
        inner = f'<a href="{escape_html(link_target(cell.href))}">{inner}</a>'
    if cell.strong:
        inner = f"<strong>{inner}</strong>"
    if cell.sub:
        inner += f' <span class="sub">{escape_html(cell.sub)}</span>'
    if cell.flag:
        inner += f' <span class="flag">{escape_html(cell.flag)}</span>'
    if cell.note:
        inner += f'<sup><a href="#{table_id}-note-{cell.note}">{cell.note}</a></sup>'
    return f"<{tag}{attrs}>{inner}</{tag}>"


# ---------------------------------------------------------------- tables


def _markdown(table: Table, fmt: str, heading: Optional[int]) -> str:
    from tabulate import tabulate

    head = (f"{'#' * heading} {md_escape(table.title)}\n\n{md_escape(table.caption)}" if heading
            else f"**{md_escape(table.title)}.** {md_escape(table.caption)}")
    if not table.rows:
        return f"{head}\n\n{md_escape(table.empty)}\n"
    # Cells are preformatted text: numparse would reformat "3.2e+03" into "3200".
    body = tabulate([[_md_cell(c) for c in row] for row in table.rows], headers=[_md_cell(h) for h in table.headers],
                    tablefmt=TABLEFMT[fmt], colalign=table.align, disable_numparse=True)
    notes = "".join(f"{n}. {md_escape(text)}\n" for n, text in enumerate(table.notes, 1))
    return f"{head}\n\n{body}\n" + (f"\nNotes:\n\n{notes}" if notes else "")


def _latex(table: Table) -> str:
    caption = latex_escape(f"{table.title}. {table.caption}")
    if not table.rows:
        inner = latex_escape(table.empty)
    else:
        spec = "".join("r" if a == "right" else "l" for a in table.align)
        lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", " & ".join(_latex_cell(h) for h in table.headers) + " \\\\",
                 "\\midrule"]
        lines += [" & ".join(_latex_cell(c) for c in row) + " \\\\" for row in table.rows]
        lines += ["\\bottomrule", "\\end{tabular}"]
        inner = "\n".join(lines)
    notes = "".join(f"\n\\par\\footnotesize [{n}] {latex_escape(text)}" for n, text in enumerate(table.notes, 1))
    return f"\\begin{{table}}[htbp]\n\\centering\n\\caption{{{caption}}}\n{inner}{notes}\n\\end{{table}}\n"


def _group_label(headers: Sequence[str], values: Sequence[str]) -> str:
    return " · ".join(f"{h} {v}" for h, v in zip(headers, values) if v != "")


def html_table(table: Table, heading: int = 3) -> str:
    """The table as an HTML fragment: heading with its anchor, caption, a scrolling wrapper, notes.

    The first ``table.group`` columns become a heading row above each run of
    rows that share them (one ``<tbody>`` each, so sorting stays within a
    group); the next column is the row's header, which CSS keeps in view.
    """
    tid = escape_html(table.id)
    parts = [f'<h{heading} id="{tid}">{escape_html(table.title)}</h{heading}>',
             f'<p class="caption">{escape_html(table.caption)}</p>']
    if not table.rows:
        parts.append(f"<p>{escape_html(table.empty)}</p>")
        return "\n".join(parts) + "\n"
    g = table.group
    numeric = [a == "right" for a in table.align]
    sortable = ' class="sortable"' if table.sortable else ""
    out = [f'<div class="table-wrap" role="region" aria-labelledby="{tid}" tabindex="0">', f"<table{sortable}>",
           "<thead><tr>" + "".join(html_cell(h, "th", numeric[i], tid, "col")
                                   for i, h in enumerate(table.headers) if i >= g) + "</tr></thead>"]
    current: Optional[list] = None
    for row in table.rows:
        if current is None or [str(c) for c in row[:g]] != current:
            if current is not None:
                out.append("</tbody>")
            current = [str(c) for c in row[:g]]
            out.append("<tbody>")
            label = _group_label(table.headers[:g], current)
            if label:
                # The label in a span that CSS keeps in view while the table scrolls sideways.
                out.append(f'<tr class="group"><th colspan="{len(table.headers) - g}" scope="rowgroup">'
                           f"<span>{escape_html(label)}</span></th></tr>")
        cells = [html_cell(row[g], "th", numeric[g], tid, "row")]
        cells += [html_cell(c, "td", numeric[i], tid) for i, c in enumerate(row) if i > g]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>", "</div>"]
    parts.append("\n".join(out))
    if table.notes:
        parts.append(f'<ol class="notes" aria-label="Notes to {escape_html(table.title)}">' + "".join(
            f'<li id="{tid}-note-{n}">{escape_html(text)}</li>' for n, text in enumerate(table.notes, 1)) + "</ol>")
    return "\n".join(parts) + "\n"


def render_table(table: Table, fmt: str, heading: Optional[int] = None) -> str:
    """The table with its caption (and notes), in one of ``FORMATS``; all text escaped for the format.

    ``heading``: a markdown or HTML heading level for the title; without it,
    markdown leads with the title in bold (as a console shows it best).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "html":
        return html_table(table, heading or 3)
    if fmt == "latex":
        return _latex(table)
    return _markdown(table, fmt, heading)
