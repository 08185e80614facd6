"""The HTML report opened in a real browser (headless Chromium) at a phone's, a laptop's and a desktop's width.

A copy of the page gets a small script that, once the page and its images have
loaded, measures it and posts the figures as JSON to the page around it. That
outer page shows the copy in one ``<iframe>`` per width under test, side by
side, each exactly that wide (Chromium's headless window is at least 500 px
wide, wider than a phone), and writes what it receives into a ``<pre>``; one
``chromium --dump-dom --screenshot`` run returns the outer document and a
picture of all three, which is cut into one screenshot per width. The
page must never be wider than its window (wide tables scroll inside their own
wrapper), every image must load, every ``#anchor`` link must land on an
element, and the summary must be there. Screenshots are kept under pytest's
temporary folder (their paths are printed). Where no Chromium is installed
(``apt-get install chromium``) the tests skip, saying so.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from softmax_bench.report import documents, plots
from softmax_bench.report.render import render_table
from softmax_bench.report.runs import load_runs, merge
from softmax_bench.report.tables import time_table

from golden import GPU, OPS, SMALL, edited, timing
from helpers import ROOT

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (apt-get install chromium)")

WIDTHS = (360, 1024, 1920)
PUBLISHED = ROOT / "results" / "published" / "report.html"

# Runs on 'load' (after every image has loaded or failed) and posts what it measured to the outer page.
PROBE = """<script>
window.addEventListener("load", function () {
  var all = function (selector) { return Array.prototype.slice.call(document.querySelectorAll(selector)); };
  var oneLine = function (cell) {  // the cell's first piece of text (its number) sits on one line
    var text = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT).nextNode();
    if (!text) return true;
    var range = document.createRange();
    range.selectNodeContents(text);
    return range.getClientRects().length === 1;
  };
  var result = {
    innerWidth: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    images: all("img").map(function (img) { return [img.getAttribute("src"), img.complete && img.naturalWidth > 0]; }),
    figureWidths: all("figure img").map(function (img) { return [img.currentSrc, img.getBoundingClientRect().width]; }),
    links: all('a[href^="#"]').map(function (a) { return a.getAttribute("href").slice(1); }),
    ids: all("[id]").map(function (el) { return el.id; }),
    findings: all("#summary ~ ul.findings > li").length,
    wrappers: all(".table-wrap").map(function (el) { return getComputedStyle(el).overflowX; }),
    tables: all("table").length,
    wrapped: all("table").filter(function (t) { return !t.parentElement.classList.contains("table-wrap"); }).length,
    numbers: all("td.num").length,
    brokenNumbers: all("td.num").filter(function (cell) { return !oneLine(cell); }).map(function (c) { return c.textContent; }),
    stickyHeads: all("thead th").filter(function (th) { return getComputedStyle(th).position !== "sticky"; }).length,
    stickyRows: all("tbody th[scope=row]").filter(function (th) { return getComputedStyle(th).position !== "sticky"; }).length,
    headings: all("h1, h2, h3").map(function (h) { return [h.tagName, h.id]; })
  };
  // Where the headline's first figure and its numbers sit (px from the top of the page).
  var headline = document.querySelector("section[aria-labelledby=headline]");
  var top = function (el) { return el ? el.getBoundingClientRect().top + window.scrollY : null; };
  result.headlineFigure = headline && top(headline.querySelector("figure"));
  result.headlineNumbers = headline && top(headline.querySelector("ul.findings"));
  // Sorting: the page's script turns headers into buttons; a click on the first number column must
  // order the first group's rows by their numbers (measured last: it moves rows, not widths).
  var table = document.querySelector("table.sortable");
  var heads = table ? Array.prototype.slice.call(table.tHead.rows[0].cells) : [];
  var col = heads.findIndex(function (th) { return th.classList.contains("num"); });
  var button = col >= 0 && heads[col].querySelector("button");
  result.sorts = null;
  if (button) {
    button.click();
    var keys = Array.prototype.slice.call(table.tBodies[0].rows)
      .filter(function (r) { return !r.classList.contains("group") && r.cells[col].hasAttribute("data-sort"); })
      .map(function (r) { return parseFloat(r.cells[col].getAttribute("data-sort")); });
    result.sorts = keys.length > 1 && keys.every(function (k, i) { return i === 0 || keys[i - 1] <= k; });
  }
  parent.postMessage(JSON.stringify(result), "*");
});
</script>"""

GAP = 40  # px of grey between the frames
HEIGHT = 1400
# The window around the page: a frame per width, and a place for the answers, keyed by width.
FRAMES = """<!DOCTYPE html><html><head><meta charset="utf-8"></head>
<body style="margin:0; background:#888; display:flex; align-items:flex-start; gap:{gap}px">{frames}
<pre id="page-probe" style="display:none"></pre>
<script>
var seen = {{}};
window.addEventListener("message", function (e) {{
  var m = JSON.parse(e.data);
  seen[m.innerWidth] = m;
  document.getElementById("page-probe").textContent = JSON.stringify(seen);
}});
</script>
</body></html>"""
FRAME = '<iframe src="{src}" style="flex:none; width:{width}px; height:{height}px; border:0; background:#fff"></iframe>'


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", "--disable-extensions", *args],
                          capture_output=True, text=True, timeout=60)


def probe(page: Path, widths=WIDTHS, shots: Path | None = None) -> dict[int, dict]:
    """What the probe measured in ``page`` at each width, from one Chromium run (copies of the page
    carrying the probe and the frames go beside it, and are removed). With ``shots``, a folder,
    a screenshot per width is written there too (``PAGE-WIDTH.png``)."""
    probed = page.with_name(f".probe-{page.name}")
    probed.write_text(page.read_text().replace("</body>", PROBE + "\n</body>"))
    outer = page.with_name(f".frames-{page.name}")
    outer.write_text(FRAMES.format(gap=GAP, frames="".join(
        FRAME.format(src=probed.name, width=w, height=HEIGHT) for w in widths)))
    window = sum(widths) + GAP * (len(widths) - 1)
    picture = page.with_name(f".frames-{page.stem}.png")
    try:
        proc = _chromium(f"--window-size={max(window, 500)},{HEIGHT}", "--virtual-time-budget=8000",
                         "--dump-dom", *([f"--screenshot={picture}"] if shots else []), outer.as_uri())
        found = re.search(r'<pre id="page-probe" style="display:none">(.+?)</pre>', proc.stdout, re.S)
        assert found, f"the probe wrote nothing (chromium exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        measured = {int(w): m for w, m in json.loads(html.unescape(found.group(1))).items()}
        if shots:
            _cut(picture, widths, shots / page.stem)
        return measured
    finally:
        for path in (probed, outer, picture):
            path.unlink(missing_ok=True)


def _cut(picture: Path, widths, prefix: Path) -> None:
    """One screenshot per frame out of the picture of all of them."""
    from PIL import Image

    with Image.open(picture) as whole:
        left = 0
        for width in widths:
            whole.crop((left, 0, left + width, HEIGHT)).save(f"{prefix}-{width}.png")
            left += width + GAP


def assert_readable(measured: dict[int, dict]) -> None:
    for width, m in measured.items():
        assert m["innerWidth"] == width
        assert m["scrollWidth"] <= m["innerWidth"], f"the page is {m['scrollWidth']} px wide in a {width} px window"
        assert m["images"] and all(ok for _, ok in m["images"]), [src for src, ok in m["images"] if not ok]
        assert set(m["links"]) <= set(m["ids"]), f"links to nothing: {sorted(set(m['links']) - set(m['ids']))}"
        assert len(m["ids"]) == len(set(m["ids"])), "every id once"
        assert m["findings"] >= 3, "the summary comes first, with its findings"
        assert m["tables"] and m["wrapped"] == 0 and set(m["wrappers"]) == {"auto"}
        assert m["numbers"] > 50
        assert m["brokenNumbers"] == [], f"numbers broken across lines at {width} px: {m['brokenNumbers'][:5]}"
        assert m["stickyHeads"] == 0 and m["stickyRows"] == 0
        assert m["sorts"] is True, "a click on a column header sorts the table"
        tags = [tag for tag, _ in m["headings"]]
        assert tags[0] == "H1" and "H2" in tags and "H3" in tags and all(id_ for _, id_ in m["headings"])


MIN_TEXT_PX = 9


def smallest_text_px(page: Path, measured: dict) -> list[tuple[str, float]]:
    """(figure, the height of its smallest text as rendered, px) for every SVG figure on the page at one width:
    the SVG's smallest font size (in its viewBox units) scaled by the width the image is shown at."""
    found = []
    for src, shown in measured["figureWidths"]:  # the file the browser chose (a narrow layout, on a phone)
        src = unquote(urlparse(src).path).rsplit("/", 1)[-1]
        svg = (page.parent / src).read_text()
        view_width = float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1))
        sizes = [float(size) for size in re.findall(r"font-size:\s*([\d.]+)px", svg)]
        assert sizes, f"{src}: no text in the SVG (drawn as paths?), its size cannot be read"
        found.append((src, min(sizes) * shown / view_width))
    return found


def assert_legible_figures(page: Path, measured: dict[int, dict]) -> None:
    for width, m in measured.items():
        assert m["figureWidths"], "figures on the page"
        small = [(src, round(px, 1)) for src, px in smallest_text_px(page, m) if px < MIN_TEXT_PX]
        assert small == [], f"figure text under {MIN_TEXT_PX} px at {width} px: {small}"


FIRST_SCREEN = 900  # px: the window height the issue measured the page in


def assert_headline_on_the_first_screen(measured: dict[int, dict]) -> None:
    """At a laptop's and a desktop's width the headline figure and its numbers start on the first screen;
    on a phone the figure has its one-panel-a-row layout."""
    for width in (1024, 1920):
        m = measured[width]
        assert m["headlineFigure"] is not None and m["headlineFigure"] < m["headlineNumbers"] < FIRST_SCREEN, (
            f"at {width} px the headline figure starts at {m['headlineFigure']} px, its numbers at "
            f"{m['headlineNumbers']} px")
    assert measured[360]["figureWidths"][0][0].endswith("-narrow.svg")


@pytest.fixture(scope="module")
def fresh_page(tmp_path_factory) -> Path:
    """A page made now from three fixtures (two machines, the newer fields) and a rerun's warning.

    Only the GPU fixture's three plots are drawn, to keep this quick; the
    published page has every kind.
    """
    folder = tmp_path_factory.mktemp("page")
    rerun = edited(folder, "rerun.json", lambda d: timing(d, "lse").update(median_s=1.0))
    runs = load_runs([SMALL, GPU, OPS, rerun])
    warnings: list[str] = []
    records = merge(runs, warn=warnings.append)
    gpu = runs[1].machine
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(documents, "write_plots",
                      lambda records, out: plots.write_plots([r for r in records if r["machine"] == gpu], out))
        documents.write_report(runs, records, folder / "out", "html", warnings=warnings)
    return folder / "out" / "report.html"


def test_a_fresh_page_reads_at_every_width(fresh_page):
    measured = probe(fresh_page)
    assert_readable(measured)
    assert_legible_figures(fresh_page, measured)
    assert_headline_on_the_first_screen(measured)
    assert len(measured[360]["images"]) == 4


def test_the_published_page_reads_at_every_width_and_its_screenshots_are_kept(tmp_path_factory):
    if not PUBLISHED.exists():
        pytest.skip(f"{PUBLISHED} is not there")
    folder = tmp_path_factory.mktemp("screenshots")
    measured = probe(PUBLISHED, shots=folder)
    assert_readable(measured)
    assert_legible_figures(PUBLISHED, measured)
    assert_headline_on_the_first_screen(measured)
    assert len(measured[1920]["images"]) >= 6
    for width in WIDTHS:
        shot = folder / f"report-{width}.png"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot: {shot}")


def test_the_checks_catch_the_old_unstyled_page(tmp_path):
    """Negative control: the old page (a bare 15-column table, no wrapper, no viewport tag), a dead
    link and a missing image fail the same checks."""
    records = merge(load_runs([ROOT / "results" / "timing-cpu-default-a.json"]), warn=lambda m: None)
    table = render_table(time_table(records), "html")
    old = re.sub(r'</?div[^>]*>', "", table)  # no scrolling wrapper
    page = tmp_path / "old.html"
    page.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><h1>report</h1>'
                    f'<a href="#nowhere">x</a><img src="missing.png" alt="gone">{old}</body></html>')
    m = probe(page, widths=(360,))[360]
    assert m["scrollWidth"] > 1000, "the bare table spills far beyond a phone's width"
    assert m["images"] == [["missing.png", False]] and "nowhere" not in m["ids"]
    with pytest.raises(AssertionError, match="wide in a 360 px window"):
        assert_readable({360: m})


def test_the_checks_catch_numbers_that_wrap(fresh_page):
    """Negative control: the same page with its cells allowed to wrap breaks numbers at a phone's width."""
    wrapping = fresh_page.with_name("wrapping.html")
    wrapping.write_text(fresh_page.read_text().replace(
        "</head>", "<style>th, td { white-space: normal !important; }</style></head>"))
    m = probe(wrapping, widths=(360,))[360]
    assert m["brokenNumbers"], "some number cells wrap"
    with pytest.raises(AssertionError, match="numbers broken across lines at 360 px"):
        assert_readable({360: m})


def test_the_text_size_check_catches_figures_shrunk_to_a_phone(fresh_page):
    """Negative control: without the page's minimum widths, the figures shrink to 360 px and their text
    with them, below 9 px."""
    shrunk = fresh_page.with_name("shrunk.html")
    shrunk.write_text(re.sub(r' style="--min[^"]*"', "", fresh_page.read_text()))
    m = probe(shrunk, widths=(360,))
    with pytest.raises(AssertionError, match="figure text under 9 px at 360 px"):
        assert_legible_figures(shrunk, m)
