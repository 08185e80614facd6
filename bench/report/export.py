"""Results records as CSV: one row per record, for pandas, spreadsheets and peers' tooling.

Liger-Kernel publishes one CSV of all its benchmark data and tritonbench has
``--csv``; this is the same idea over our records. The leading columns are the
ones those users look for first (who, where, what size, how fast); every other
field a record carries follows, sorted, so nothing a results file holds is
dropped. A field a record lacks is an empty cell; lists and dicts are JSON.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, Mapping

# The identifying columns, then the timing figures, then the check figures.
LEADING = ("machine", "kind", "backend", "device", "dtype", "op", "pass", "mode", "rows", "vocab",
           "median_s", "iqr_s", "gbps", "copy_gbps", "copy_fraction", "device_copy_fraction", "peak_bytes",
           "case", "passed", "max_ulp", "max_rel", "max_abs")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def records_csv(records: Iterable[Mapping[str, Any]]) -> str:
    """The records as CSV text with a header row (``pandas.read_csv`` reads it as is)."""
    rows = list(records)
    present = {key for record in rows for key in record}
    columns = [c for c in LEADING if c in present] + sorted(present - set(LEADING))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in rows:
        writer.writerow([_cell(record.get(c)) for c in columns])
    return out.getvalue()
