"""Numbers as people read them, and byte sizes as people write them: said once.

Every table (the console's and the reports') formats through these, so a
time reads the same wherever it appears.
"""

from __future__ import annotations

import math
from typing import Optional

MISSING = "—"
_BYTE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def format_seconds(seconds: Optional[float], missing: str = MISSING) -> str:
    """Three significant digits in ns, µs, ms or s: 0.00123 -> '1.23 ms'."""
    if seconds is None:
        return missing
    if seconds == 0:
        return "0 s"
    value, unit = float(f"{seconds:.3g}"), "s"
    for smaller, scale in (("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3)):
        if float(f"{seconds / scale:.3g}") < 1000:
            value, unit = float(f"{seconds / scale:.3g}"), smaller
            break
    decimals = max(0, 2 - math.floor(math.log10(value)))
    return f"{value:.{decimals}f} {unit}"


def format_figure(value: float) -> str:
    """An error figure in a sentence: three significant digits."""
    return f"{value:.3g}"


def _plain(value: float) -> str:
    """Three significant digits in plain decimal, never scientific; from 1000 up, the whole number."""
    if value == 0:
        return "0"
    # Large figures stay whole and exact: a column never switches to scientific notation.
    if abs(value) >= 999.5:
        return f"{round(value):d}"
    value = float(f"{value:.3g}")  # round first: 99.96 is '100', not '100.0'
    decimals = 2 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}" if decimals > 0 else f"{round(value):d}"


def format_ulp(value: Optional[float]) -> str:
    """An error in ULP, plain decimal: 0.493, 64.3, 507, 8388608."""
    return MISSING if value is None else _plain(value)


def format_relative(value: Optional[float]) -> str:
    """A relative error, always scientific with three significant digits: 4.78e-03, 1.00e+00."""
    if value is None:
        return MISSING
    return "0" if value == 0 else f"{value:.2e}"


def format_percent(fraction: Optional[float]) -> str:
    """A share as a percentage: whole from 1% (0.624 -> '62%'), one decimal below it (0.0041 -> '0.4%')."""
    if fraction is None:
        return MISSING
    if 0 < fraction < 0.0095:
        return f"{fraction * 100:.1f}%"
    return f"{fraction * 100:.0f}%"


def format_gbps(value: Optional[float]) -> str:
    """A bandwidth in GB/s, plain decimal: 0.424, 18.9, 160, 3350."""
    return MISSING if value is None else f"{_plain(value)} GB/s"


def format_peak(n: Optional[float], method: Optional[str]) -> str:
    """Peak memory: '7.8 MiB', or '≥ 3.9 MiB' for a resident-set figure (a lower bound)."""
    if n is None:
        return MISSING
    # A resident-set figure misses memory the allocator already held.
    if method == "rss" and n <= 0:
        # "≥ 0 B" says nothing: the process's RSS did not grow because the call reused memory it already held.
        return "not measurable (RSS did not grow)"
    return ("≥ " if method == "rss" else "") + human_bytes(n)


def format_size(rows: int, vocab: int) -> str:
    """'rows×vocab', exact: vocabularies are known by their exact size (256000, not 250k)."""
    return f"{rows}×{vocab}"


def human_bytes(n: Optional[float]) -> str:
    """``1.5 GiB``-style text for a byte count."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "-"
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} TiB"


def parse_bytes(text: str) -> int:
    """Bytes from '512M', '2G', '1.5GiB', '48K' or a plain integer; ``ValueError`` otherwise.

    Units are binary (K = 1024), as sysfs cache sizes and memory limits are meant.
    """
    clean = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = clean, ""
    if clean and clean[-1] in "kmgt":
        number, unit = clean[:-1], clean[-1]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a size (examples: 4G, 512M, 1000000)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} must be a size >= 0")
    return int(value * _BYTE_UNITS[unit])
