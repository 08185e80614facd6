"""Layout faults of the page (issue 24) that can be checked without a browser."""

from __future__ import annotations

import re

from softmax_bench.report import page
from softmax_bench.core.formatting import format_peak


def test_a_zero_resident_set_growth_is_not_measurable_not_at_least_zero():
    assert format_peak(0, "rss") == "not measurable (RSS did not grow)"
    assert format_peak(1024, "rss").startswith("≥ ")  # the control: a real lower bound keeps its sign
    assert format_peak(0, "tracemalloc") == "0 B" or "≥" not in format_peak(0, "tracemalloc")


def test_no_css_cap_hides_table_rows_or_columns():
    source = open(page.__file__).read()
    assert not re.search(r"max-height:\s*\d+vh", source), "a height cap on tables cuts off their last rows"
    assert not re.search(r"main\s*\{[^}]*max-width", source), "a width cap on main hides wide tables' columns"


def _page_with_figure(tmp_path, width_pt: float, smallest_pt: float) -> str:
    from pathlib import Path

    from softmax_bench.report.outline import build_report
    from softmax_bench.report.plots import Figure
    from softmax_bench.report.runs import load_runs, merge

    from golden import SMALL

    runs = load_runs([SMALL])
    report = build_report(runs, merge(runs, warn=lambda m: None), base=tmp_path)
    report.add_figures([Figure("headline", "Headline: softmax fwd", "caption", Path(tmp_path / "h.png"),
                               Path(tmp_path / "h.svg"), width_pt, smallest_pt)])
    return page.render_page(report, tmp_path)


def test_the_headline_figure_and_numbers_open_the_page_before_the_contents(tmp_path):
    html = _page_with_figure(tmp_path, 600, 9)
    order = [html.index(s) for s in ('id="headline"', 'src="h.svg"', "Fastest at the largest size",
                                     'id="fastest-per-size"', 'id="contents"', 'id="summary"', 'id="speed"')]
    assert order == sorted(order)


def test_a_figure_is_never_narrower_than_its_smallest_text_allows(tmp_path):
    # 600 pt wide, smallest text 8 pt: 9 px text needs 600 * 9 / 8 = 675 px.
    assert 'style="--min: 675px"' in _page_with_figure(tmp_path, 600, 8)
    assert page.legible_width(page.Figure("s", "t", "c", None, None)) is None  # sizes unknown: no rule
