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


def format_number(value: Optional[float]) -> str:
    """Error figures: plain between 0.01 and 1e6 (ULP counts), scientific outside (relative errors)."""
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    if 0.01 <= abs(value) < 100:
        return f"{value:.3g}"
    if 100 <= abs(value) < 1e6:
        return f"{value:.0f}"
    return f"{value:.2e}"


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
