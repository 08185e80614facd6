"""The two kinds of record a run writes, defined once: ``CheckRecord`` and ``TimingRecord``.

A record is made here, filled by the step that measures it, and written as a
plain dict (``as_dict``) into the results file (schema 1, see ``results``).
Fields that only some records carry (the figures of a check that ran, the
case's anchor) are left out of the dict when they are ``None``, so files keep
the shape they always had.

A stored record is read back with ``from_dict`` (or the class's own
``from_dict``): the fields this version knows become attributes, and what it
does not know (a field of a newer version) and the stored key order are kept,
so ``from_dict(d).as_dict() == d`` key for key, in the same order. A field a
file lacks (one older than the field) takes the dataclass default, which is
what such files meant: a timing record without ``pass`` is a forward pass.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any, Mapping, Optional, TypeVar

R = TypeVar("R", bound="_Record")


def _optional(default: Any = None, **rules: bool) -> Any:
    """A field written only when it has a value."""
    return field(default=default, metadata={"omit_none": True, **rules})


def _always(default: Any = None, **rules: bool) -> Any:
    """A field every results file of schema 1 holds (it may be null), though it is filled after the record is made."""
    return field(default=default, metadata={"required": True, **rules})


# What results.validate checks beyond a field's type hint is the field's metadata:
# "required" (see _always; a field without a default is required anyway) and
# "non_negative": a figure that is never below zero, so a negative one in a file is a hand edit.
NON_NEGATIVE = {"non_negative": True}


def _kept(**default: Any) -> Any:
    """Bookkeeping of a record read back from a file: not a field of the schema, never compared or shown."""
    return field(**default, repr=False, compare=False, metadata={"schema": False})


def stored_name(f: Field) -> str:
    """The key a field is stored under: a field named for a Python keyword (``pass_``) is stored as the keyword."""
    return f.name.rstrip("_")


def schema_fields(cls_or_record: Any) -> tuple[Field, ...]:
    """The fields of a record class (or record) that are stored in results files, in their stored order."""
    return tuple(f for f in fields(cls_or_record) if f.metadata.get("schema", True))


def is_required(f: Field) -> bool:
    """Whether every stored record must hold the field: it has no default, or is marked ``_always``."""
    return not has_default(f) or bool(f.metadata.get("required"))


def has_default(f: Field) -> bool:
    """Whether a record can be made without the field (a file that lacks it gets the default)."""
    return f.default is not MISSING or f.default_factory is not MISSING


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


@dataclass(frozen=True)
class Workpoint:
    """One unit of work, spelled out once: the planner's unit, a record's identity and the resume key.

    A timing has a ``mode`` and a ``pass_`` and no ``case``; a check has a
    ``case`` and neither of the others, so the two never collide.
    ``world_size`` is set for distributed backends only.
    """

    backend: str
    device: str
    dtype: str
    rows: int
    vocab: int
    op: str = "softmax"
    pass_: Optional[str] = None
    mode: Optional[str] = None
    case: Optional[str] = None
    world_size: Optional[int] = None
    hidden: Optional[int] = None  # linear_cross_entropy's H (kept in a record's extra fields)
    options: Optional[str] = None  # the loss options' label (``CrossEntropyOptions.label``); None: the plain loss

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> "Workpoint":
        """The unit of work a stored record belongs to (through its dataclass, so old files get its defaults)."""
        return from_dict(stored).workpoint


class _Record:
    """What both kinds of record share: the stored form, the way back from it, the identity."""

    # Set by from_dict (see _kept): the keys this version does not know, and the stored key order.
    extra: dict[str, Any]
    stored_order: Optional[tuple[str, ...]]

    def as_dict(self) -> dict[str, Any]:
        """The record as it is stored.

        A record made in this run: every field, less the optional ones without
        a value. A record read back (``from_dict``): the keys it was read from,
        in their order, with the current values and the unknown keys kept;
        then any field it lacked that has since been given a value other than
        its default.
        """
        values = asdict(self)  # a deep copy: the dict shares no list with the record
        known = {stored_name(f): (f, values[f.name]) for f in schema_fields(self)}
        if self.stored_order is None:
            stored = {key: value for key, (f, value) in known.items()
                      if not (f.metadata.get("omit_none") and value is None)}
            return {**stored, **values["extra"]}
        stored = {}
        for key in self.stored_order:
            if key in known:
                stored[key] = known[key][1]
            elif key in values["extra"]:
                stored[key] = values["extra"][key]
        for key, (f, value) in known.items():
            if key not in stored and value is not None and value != _default(f):
                stored[key] = value
        for key, value in values["extra"].items():
            stored.setdefault(key, value)
        return stored

    @property
    def workpoint(self) -> Workpoint:
        """The unit of work this record belongs to: the record's fields of ``Workpoint``'s names."""
        values = {f.name: getattr(self, f.name) if hasattr(self, f.name) else self.extra.get(f.name)
                  for f in fields(Workpoint)}
        values["options"] = options_label(values["options"])
        return Workpoint(**values)

    @classmethod
    def from_dict(cls: type[R], stored: Mapping[str, Any]) -> R:
        """The record a stored dict holds (see the module's docstring); ``TypeError`` when a required field is absent.

        Values are taken as stored, not converted: ``results.validate`` is what checks their types.
        """
        by_key = {stored_name(f): f for f in schema_fields(cls)}
        known = {by_key[key].name: value for key, value in stored.items() if key in by_key}
        missing = [key for key, f in by_key.items() if not has_default(f) and f.name not in known]
        if missing:
            raise TypeError(f"a stored {cls.kind} record lacks {', '.join(missing)}")
        extra = {key: value for key, value in stored.items() if key not in by_key}
        return cls(**known, extra=extra, stored_order=tuple(stored))


def options_label(stored: Optional[Mapping[str, Any] | str]) -> Optional[str]:
    """The label of a record's ``options`` (a dict of the active loss options), None for the plain loss.

    A dict this version cannot read (a hand edit, a newer option) keeps a label of its own, sorted keys.
    """
    if not stored:
        return None
    if isinstance(stored, str):  # already a label (a Workpoint's field, as an in-memory record holds it)
        return stored
    from ..loss_options import CrossEntropyOptions, OptionsError

    try:
        return CrossEntropyOptions.from_record(dict(stored)).label()
    except (OptionsError, TypeError, ValueError):
        return ",".join(f"{k}={stored[k]!r}" for k in sorted(stored))


def copy_fraction(gbps: Optional[float], copy_gbps: Optional[float]) -> Optional[float]:
    """Effective bandwidth as a share of a copy's; ``None`` unless both are known."""
    return gbps / copy_gbps if gbps and copy_gbps else None


@dataclass(kw_only=True)
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
    rows: int = field(metadata=NON_NEGATIVE)
    vocab: int = field(metadata=NON_NEGATIVE)
    mode: str
    op: str = "softmax"
    pass_: str = "fwd"
    # The loss options the unit ran with (``CrossEntropyOptions.to_record``: the active ones); absent: the plain loss.
    options: Optional[dict] = _optional()
    library: Optional[str] = None
    route: Optional[str] = None
    includes_bwd: bool = False
    threads: Optional[int] = None
    kind: str = "timing"
    median_s: Optional[float] = _always(**NON_NEGATIVE)
    iqr_s: Optional[float] = _always(**NON_NEGATIVE)
    repeats: int = 0
    inner: int = 0
    gbps: Optional[float] = field(default=None, metadata=NON_NEGATIVE)
    bytes: Optional[int] = None
    byte_model: Optional[str] = None
    copy_gbps: Optional[float] = field(default=None, metadata=NON_NEGATIVE)
    copy_fraction: Optional[float] = field(default=None, metadata=NON_NEGATIVE)
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
    extra: dict[str, Any] = _kept(default_factory=dict)
    stored_order: Optional[tuple[str, ...]] = _kept(default=None)

    def measured(self, figures: dict[str, Any]) -> "TimingRecord":
        """Fill in what the worker measured; the copy fraction follows from it."""
        for name, value in figures.items():
            setattr(self, name, value)
        self.copy_fraction = copy_fraction(self.gbps, self.copy_gbps)
        return self


@dataclass(kw_only=True)
class CheckRecord(_Record):
    """One (backend, device, dtype, case, op) of the correctness suite and its verdict."""

    backend: str
    device: str
    dtype: str
    rows: int = field(metadata=NON_NEGATIVE)
    vocab: int = field(metadata=NON_NEGATIVE)
    # Not required of a stored record (DESIGN.md's minimum is kind, backend, device, dtype,
    # rows, vocab, case, passed): the suite always writes them.
    shape: Optional[list] = None
    axis: Optional[int] = None
    case: str
    op: str
    # The loss options of a cross-entropy check (``CrossEntropyOptions.to_record``: the active ones); absent: the plain loss.
    options: Optional[dict] = _optional()
    special: bool = False  # files from before the field: not a column of the overflow matrix
    expected: Optional[str] = None
    judged: Optional[bool] = None  # files from before the field: judged when ``expected`` is not None
    kind: str = "check"
    world_size: Optional[int] = _optional()
    scale: Optional[float] = _optional()
    anchor: Optional[int] = _optional()
    reference: Optional[bool] = _optional()
    path: Optional[str] = _optional()
    passed: Optional[bool] = _always()
    behaviour: Optional[str] = None
    reason: Optional[str] = None
    failure: Optional[str] = None
    seconds: Optional[float] = _optional()
    max_ulp: Optional[float] = _optional(**NON_NEGATIVE)
    max_rel: Optional[float] = _optional(**NON_NEGATIVE)
    max_abs: Optional[float] = _optional()
    norm_err_u: Optional[float] = _optional()
    sum_err: Optional[float] = _optional()
    subnormal: Optional[str] = _optional()
    error_ratio: Optional[float] = _optional()
    extra: dict[str, Any] = _kept(default_factory=dict)
    stored_order: Optional[tuple[str, ...]] = _kept(default=None)


RECORD_TYPES: dict[str, type[_Record]] = {"check": CheckRecord, "timing": TimingRecord}


def from_dict(stored: Mapping[str, Any]) -> TimingRecord | CheckRecord:
    """A stored record read back into its dataclass, chosen by its ``kind`` (see ``_Record.from_dict``).

    ``ValueError`` for a kind this version does not know.
    """
    kind = stored.get("kind")
    if kind not in RECORD_TYPES:
        raise ValueError(f"record kind {kind!r}; valid: {', '.join(RECORD_TYPES)}")
    return RECORD_TYPES[kind].from_dict(stored)  # type: ignore[return-value]
