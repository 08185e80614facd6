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
