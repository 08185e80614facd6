"""The two kinds of record a run writes, defined once: ``CheckRecord`` and ``TimingRecord``.

A record is made here, filled by the step that measures it, and written as a
plain dict (``as_dict``) into the results file (schema 1, see ``results``).
Fields that only some records carry (the figures of a check that ran, the
case's anchor) are left out of the dict when they are ``None``, so files keep
the shape they always had.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional


def _optional(default: Any = None) -> Any:
    """A field written only when it has a value."""
    return field(default=default, metadata={"omit_none": True})


class _Record:
    def as_dict(self) -> dict[str, Any]:
        """The record as it is stored: every field, less the optional ones without a value.

        A field named for a Python keyword (``pass_``) is stored under the keyword.
        """
        omit = {f.name for f in fields(self) if f.metadata.get("omit_none")}
        return {k.rstrip("_"): v for k, v in asdict(self).items() if not (k in omit and v is None)}


def copy_fraction(gbps: Optional[float], copy_gbps: Optional[float]) -> Optional[float]:
    """Effective bandwidth as a share of a copy's; ``None`` unless both are known."""
    return gbps / copy_gbps if gbps and copy_gbps else None


@dataclass
class TimingRecord(_Record):
    """One timed (backend, device, dtype, size, mode, op, pass): what was measured and how.

    ``gbps`` is ``bytes`` (what ``byte_model`` says one call must move) over
    the median; ``copy_gbps`` a copy with the backend's own library in the
    same unit; ``device_copy_gbps`` the fastest copy on the device in the
    same run (the ceiling ``device_copy_fraction`` is taken against).
    ``suspect`` says why the engine does not trust the time, when it does not.
    """

    backend: str
    device: str
    dtype: str
    rows: int
    vocab: int
    mode: str
    op: str = "softmax"
    pass_: str = "fwd"
    library: Optional[str] = None
    route: Optional[str] = None
    includes_bwd: bool = False
    threads: Optional[int] = None
    kind: str = "timing"
    median_s: Optional[float] = None
    iqr_s: Optional[float] = None
    repeats: int = 0
    inner: int = 0
    gbps: Optional[float] = None
    bytes: Optional[int] = None
    byte_model: Optional[str] = None
    copy_gbps: Optional[float] = None
    copy_fraction: Optional[float] = None
    device_copy_gbps: Optional[float] = None
    device_copy_fraction: Optional[float] = None
    # The compute ceiling (issue 23): exps one call computes (None: unknown for this backend),
    # the same-run exp rate (exps/s), and the roofline max(bytes / copy, exps / exp rate).
    exps: Optional[int] = _optional()
    exp_rate: Optional[float] = _optional()
    roofline_s: Optional[float] = _optional()
    roofline_fraction: Optional[float] = _optional()
    roofline_binds: Optional[str] = _optional()
    peak_bytes: Optional[int] = None
    peak_method: Optional[str] = None
    peak_library_bytes: Optional[int] = None
    peak_library_method: Optional[str] = None
    first_call_s: Optional[float] = None
    buffers: Optional[int] = None
    llc_bytes: Optional[int] = None
    skipped: bool = False
    world_size: Optional[int] = _optional()
    collectives: Optional[int] = _optional()
    comm_bytes: Optional[int] = _optional()
    comm_median_s: Optional[float] = _optional()
    in_place: Optional[bool] = _optional()  # the backend declared that it writes into its inputs
    suspect: Optional[str] = None
    reason: Optional[str] = None
    failure: Optional[str] = None

    def measured(self, figures: dict[str, Any]) -> "TimingRecord":
        """Fill in what the worker measured; the copy fraction follows from it."""
        for name, value in figures.items():
            setattr(self, name, value)
        self.copy_fraction = copy_fraction(self.gbps, self.copy_gbps)
        return self


@dataclass
class CheckRecord(_Record):
    """One (backend, device, dtype, case, op) of the correctness suite and its verdict."""

    backend: str
    device: str
    dtype: str
    rows: int
    vocab: int
    shape: list
    axis: int
    case: str
    op: str
    special: bool
    expected: Optional[str]
    judged: bool
    kind: str = "check"
    world_size: Optional[int] = _optional()
    scale: Optional[float] = _optional()
    anchor: Optional[int] = _optional()
    reference: Optional[bool] = _optional()
    path: Optional[str] = _optional()
    passed: Optional[bool] = None
    behaviour: Optional[str] = None
    reason: Optional[str] = None
    failure: Optional[str] = None
    seconds: Optional[float] = _optional()
    max_ulp: Optional[float] = _optional()
    max_rel: Optional[float] = _optional()
    max_abs: Optional[float] = _optional()
    norm_err_u: Optional[float] = _optional()
    sum_err: Optional[float] = _optional()
    subnormal: Optional[str] = _optional()
    error_ratio: Optional[float] = _optional()
