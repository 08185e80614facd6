"""The report as one self-contained HTML page: people open it, read it on a phone, and share it.

One file plus its plot files, nothing fetched from the network: a small
embedded stylesheet, a viewport tag, headings with anchors and a contents
list, the summary first. Wide tables scroll inside their own wrapper with the
header row and the row labels kept in view, number cells never wrap, images
shrink to the page. A few lines of inline script let a reader sort a table by
clicking a column header; without script the page reads the same, unsorted.
Every piece of text from a results file is escaped (``render.escape_html``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

from .outline import Finding, Report, Section
from .plots import Figure
from .render import escape_html, html_table, link_target

TITLE = "softmax-bench report"
MIN_TEXT_PX = 9  # the smallest text a figure may show, as rendered
NARROW_PX = 700  # windows up to this wide get a figure's narrow layout, where it has one

STYLE = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f6f8fa; --bg: #fff; --link: #0550ae;
        --good: #dafbe1; --bad: #ffebe9; --bad-fg: #82071e; --none: #eef1f4; --warn: #fff8c5; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: var(--bg);
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
/* No width cap on main: a 15-column table uses the whole window (a 76rem cap hid its largest sizes);
   prose keeps a readable measure instead. */
main { margin: 0 auto; padding: 1rem 1rem 3rem; }
main > p, main > ul, main > nav, section > p { max-width: 60rem; }
h1 { font-size: 1.75rem; margin: .5rem 0; }
h2 { font-size: 1.35rem; margin: 2.2rem 0 .6rem; padding-bottom: .25rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.1rem; margin: 1.6rem 0 .4rem; }
h1, h2, h3 { line-height: 1.25; scroll-margin-top: .5rem; }
p, li, figcaption, dd { overflow-wrap: anywhere; }
a { color: var(--link); }
.lede, .caption, figcaption, .notes { color: var(--muted); }
.caption { font-size: .9rem; margin: 0 0 .6rem; max-width: 60rem; }
nav.toc ol { margin: .2rem 0; padding-left: 1.4rem; }
nav.toc ol ol { display: inline; padding: 0; }
nav.toc ol ol::before { content: ": "; }
nav.toc ol ol li { display: inline; }
nav.toc ol ol li + li::before { content: " · "; }
ul.findings { padding-left: 1.2rem; }
ul.findings > li { margin: .45rem 0; }
ul.findings ul { margin: .2rem 0; padding-left: 1.2rem; }
li.warning { background: var(--warn); }
/* No max-height: an 85vh cap cut off the last rows (the winner's) in a 900 px window. */
.table-wrap { width: fit-content; max-width: 100%; overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: separate; border-spacing: 0; font-size: .85rem; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top;
         white-space: nowrap; background: var(--bg); }
.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { position: sticky; top: 0; z-index: 2; background: var(--head); }
thead th:first-child, tbody th[scope=row] { position: sticky; left: 0; z-index: 1; border-right: 1px solid var(--line); }
thead th:first-child { z-index: 3; }
tbody th[scope=row] { font-weight: 600; }
tr.group th { background: var(--head); font-weight: 600; padding-top: .5rem; }
tr.group th span { position: sticky; left: .6rem; }
.sub { display: block; font-size: .75rem; color: var(--muted); }
.flag { font-size: .75rem; font-weight: 600; }
sup a { text-decoration: none; padding: 0 .1rem; }
td.k-correct { background: var(--good); }
td.k-failed, td.k-suspect { background: var(--bad); color: var(--bad-fg); }
td.k-recorded { background: var(--none); }
td.k-skipped { color: var(--muted); }
td.k-dirty { color: var(--bad-fg); font-weight: 600; }
td.k-failed::before { content: "\\2717\\00a0"; }
td.k-correct::before { content: "\\2713\\00a0"; }
td.k-recorded::before { content: "\\25cb\\00a0"; }
ol.notes { font-size: .85rem; margin: .4rem 0 0; padding-left: 1.6rem; }
figure { margin: 1.2rem 0; }
.figure-wrap { max-width: 100%; overflow-x: auto; }
.figure-wrap img { min-width: var(--min, 0); }
img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); }
figcaption { font-size: .9rem; margin-top: .4rem; max-width: 60rem; }
th button { font: inherit; color: inherit; background: none; border: 0; padding: 0; cursor: pointer; text-align: inherit; }
th[aria-sort=ascending] button::after { content: " \\25b2"; }
th[aria-sort=descending] button::after { content: " \\25bc"; }
footer { margin-top: 3rem; font-size: .85rem; color: var(--muted); }
@media (max-width: 600px) { main { padding: .6rem .6rem 2rem; } h1 { font-size: 1.4rem; } }
""" + f"@media (max-width: {NARROW_PX}px) {{ .figure-wrap img {{ min-width: var(--min-narrow, var(--min, 0)); }} }}\n"

# Sort a table by a column on click: numbers by their data-sort key, text otherwise; rows
# without a value last; each <tbody> (a group of rows) on its own. Without it the page still reads.
SCRIPT = """
(function () {
  function value(row, col) {
    var cell = row.cells[col];
    if (!cell) return null;
    var key = cell.getAttribute("data-sort");
    return key !== null ? parseFloat(key) : (cell.textContent === "\\u2014" ? null : cell.textContent);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = document.createElement("button");
      button.type = "button";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        Array.prototype.forEach.call(table.tBodies, function (body) {
          var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("group"); });
          rows.sort(function (a, b) {
            var x = value(a, col), y = value(b, col);
            if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
            var order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
            return up ? order : -order;
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
  });
})();
"""


def _finding(finding: Finding) -> str:
    links = ", ".join(f'<a href="#{escape_html(target)}">{escape_html(text)}</a>' for text, target in finding.links)
    see = f" <span class=\"see\">(details: {links})</span>" if links else ""
    lines = "".join(('<li class="warning">' if line.startswith("Warning:") else "<li>") + f"{escape_html(line)}</li>"
                    for line in finding.lines)
    return f"<li><strong>{escape_html(finding.label)}.</strong>{see}<ul>{lines}</ul></li>"


def legible_width(fig: Figure) -> Optional[int]:
    """The narrowest a figure may be shown (CSS px) with its smallest text still ``MIN_TEXT_PX`` high;
    ``None`` where its sizes are unknown. SVG user units are points, so text of s pt shown w px wide is
    s * w / width_pt px high."""
    if not fig.width_pt or not fig.smallest_text_pt:
        return None
    return math.ceil(fig.width_pt * MIN_TEXT_PX / fig.smallest_text_pt)


def _href(path: Path, base: Path) -> str:
    return escape_html(link_target(Path(os.path.relpath(path, base)).as_posix()))


def _figure(fig: Figure, base: Path) -> str:
    svg, png = _href(fig.svg, base), _href(fig.png, base)
    # Never narrower than its text allows: on a phone a wide figure scrolls sideways in its frame, as tables
    # do; one with a narrow layout (one panel a row) shows that instead, below NARROW_PX.
    widths = [f"--min: {legible_width(fig)}px"] if legible_width(fig) else []
    source = ""
    if fig.narrow is not None:
        source = f'<source media="(max-width: {NARROW_PX}px)" srcset="{_href(fig.narrow.svg, base)}">'
        widths += [f"--min-narrow: {legible_width(fig.narrow)}px"] if legible_width(fig.narrow) else []
    style = f' style="{"; ".join(widths)}"' if widths else ""
    return (f'<figure id="{escape_html(fig.id)}"><div class="figure-wrap" tabindex="0"><a href="{svg}"><picture>'
            f'{source}<img src="{svg}" alt="{escape_html(fig.title)}"{style}></picture></a></div><figcaption>'
            f'<strong>{escape_html(fig.title)}.</strong> {escape_html(fig.caption)} '
            f'(<a href="{svg}">SVG</a>, <a href="{png}">PNG</a>)</figcaption></figure>\n')


def _section(section: Section, base: Path) -> str:
    """One section, its parts in the order ``Section.in_order`` gives."""
    tables = [html_table(table, 3) for table in section.tables]
    figures = [_figure(fig, base) for fig in section.figures]
    findings = (['<ul class="findings">' + "".join(_finding(f) for f in section.findings) + "</ul>"]
                if section.findings else [])
    body = section.in_order(tables, figures, findings)
    return "\n".join([f'<section aria-labelledby="{escape_html(section.id)}">'
                      f'<h2 id="{escape_html(section.id)}">{escape_html(section.title)}</h2>', *body, "</section>"])


def _contents(report: Report) -> str:
    items = ['<li><a href="#summary">Summary</a></li>']
    for section in report.opening + report.body:
        subs = "".join(f'<li><a href="#{escape_html(t.id)}">{escape_html(t.title)}</a></li>' for t in section.tables)
        if section.figures:
            subs += f'<li><a href="#{escape_html(section.figures[0].id)}">Figures</a></li>'
        items.append(f'<li><a href="#{escape_html(section.id)}">{escape_html(section.title)}</a><ol>{subs}</ol></li>')
    return f'<nav class="toc" aria-labelledby="contents"><h2 id="contents">Contents</h2><ol>{"".join(items)}</ol></nav>'


def render_page(report: Report, base: Optional[Path] = None) -> str:
    """The whole page; links to plots and results files are relative to ``base`` (the page's folder)."""
    base = base if base is not None else Path.cwd()
    machines = sorted({run.machine for run in report.runs})
    files = ", ".join(run.path.name for run in report.runs)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape_html(TITLE)}: {escape_html('; '.join(machines))}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<main>",
        f'<header><h1 id="top">{escape_html(TITLE)}</h1>'
        f'<p class="lede">{escape_html("; ".join(machines))}. From {escape_html(files)}.</p></header>',
        # The headline (a figure, then the numbers) opens the page, above the contents: the first screen shows it.
        *[_section(section, base) for section in report.opening],
        _contents(report),
        '<section aria-labelledby="summary"><h2 id="summary">Summary</h2>',
        '<ul class="findings">' + "".join(_finding(f) for f in report.findings) + "</ul>",
        "</section>",
    ]
    parts += [_section(section, base) for section in report.body]
    parts += [
        '<footer>Made by <code>softmax-bench report</code> from the results files listed under '
        '<a href="#sources">Sources</a>. <a href="#top">Back to the top</a>.</footer>',
        "</main>",
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"
