"""Records read back into their dataclasses (``from_dict``) and written again byte for byte.

The committed results files are the evidence: every record of every one of
them (files of every age, with and without ``pass``/``op``, check and timing,
distributed and not) must come back unchanged through the dataclasses, so a
reader that goes through them loses nothing a file holds.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Optional

import pytest

from softmax_bench.core.records import CheckRecord, TimingRecord, Workpoint, from_dict
from softmax_bench.core.results import ResultsError, ResultsFile, dumps, field_rules, load

from golden import edited
from helpers import ROOT


def _results_files() -> list[Path]:
    """Every committed results file: the JSON under results/ and tests/data/ that has a schema."""
    found = sorted((ROOT / "results").rglob("*.json")) + sorted((ROOT / "tests" / "data").glob("*.json"))
    return [p for p in found if "schema" in json.loads(p.read_text())]


FILES = _results_files()
OLD = ROOT / "results" / "timing-cpu-default-a.json"  # written before timing records had `pass`


def _round_trip(document: dict) -> str:
    return dumps(document["environment"], [from_dict(r).as_dict() for r in document["records"]])


def test_every_committed_record_round_trips_byte_for_byte():
    total = 0
    for path in FILES:
        document = load(path)
        assert _round_trip(document) == path.read_text(), path
        total += len(document["records"])
    assert total > 7000, f"only {total} records in {len(FILES)} files: the evidence went missing"


def test_the_byte_comparison_sees_key_order():
    """Negative control: the same fields in the dataclass's own order are not the file."""
    document = load(OLD)
    reordered = [dataclasses.replace(from_dict(r), stored_order=None).as_dict() for r in document["records"]]
    assert dumps(document["environment"], reordered) != OLD.read_text()


def test_dumps_is_what_a_results_file_writes(tmp_path):
    document = load(OLD)
    written = ResultsFile(tmp_path / "again.json", env=document["environment"])
    written.add(document["records"])
    assert (tmp_path / "again.json").read_text() == dumps(document["environment"], document["records"])


def test_a_timing_without_pass_or_op_is_a_softmax_forward_and_stays_without_them():
    stored = load(OLD)["records"]
    old = [r for r in stored if r["kind"] == "timing"]
    assert old and all("pass" not in r for r in old), "the file no longer shows what it is here to show"
    for r in old:
        record = from_dict(r)
        assert isinstance(record, TimingRecord)
        assert (record.op, record.pass_) == ("softmax", "fwd")
        assert "pass" not in record.as_dict()
    bare = {key: value for key, value in old[0].items() if key != "op"}
    assert from_dict(bare).op == "softmax" and "op" not in from_dict(bare).as_dict()


def test_unknown_keys_keep_their_value_and_place():
    stored = load(OLD)["records"][-1]
    keys = list(stored)
    future = dict([*((k, stored[k]) for k in keys[:3]), ("from_the_future", {"a": [1, 2]}),
                   *((k, stored[k]) for k in keys[3:])])
    record = from_dict(future)
    assert record.extra == {"from_the_future": {"a": [1, 2]}}
    assert list(record.as_dict().items()) == list(future.items())


def test_a_field_given_after_reading_is_written_and_one_left_alone_is_not():
    stored = {"kind": "timing", "backend": "b", "device": "cpu", "dtype": "float32", "rows": 2, "vocab": 8,
              "mode": "warm", "median_s": 1.0, "iqr_s": 0.0}
    record = from_dict(stored)
    assert record.as_dict() == stored and list(record.as_dict()) == list(stored)
    record.device_copy_gbps = 5.0
    assert record.as_dict() == {**stored, "device_copy_gbps": 5.0}


def test_a_record_made_here_is_written_as_before():
    """No stored order: every field in the dataclass's order, optional ones only with a value."""
    record = TimingRecord(backend="b", device="cpu", dtype="float32", rows=2, vocab=8, mode="warm")
    written = record.as_dict()
    assert list(written)[:9] == ["backend", "device", "dtype", "rows", "vocab", "mode", "op", "pass", "library"]
    assert "world_size" not in written and written["median_s"] is None
    assert from_dict(written) == record


def test_check_records_of_files_before_special_and_judged_still_read():
    stored = [r for r in load(ROOT / "tests" / "data" / "results-small.json")["records"] if r["kind"] == "check"]
    assert stored and all("judged" not in r and "special" not in r for r in stored)
    record = from_dict(stored[0])
    assert isinstance(record, CheckRecord) and record.special is False and record.judged is None


def test_what_from_dict_refuses():
    with pytest.raises(ValueError, match="record kind 'speed'; valid: check, timing"):
        from_dict({"kind": "speed"})
    with pytest.raises(TypeError, match="lacks mode"):
        from_dict({"kind": "timing", "backend": "b", "device": "cpu", "dtype": "float32", "rows": 2, "vocab": 8})


# ---------------------------------------------------------------- validation derived from the dataclasses

SMALL = ROOT / "tests" / "data" / "results-small.json"


def _first(document: dict, kind: str) -> dict:
    return next(r for r in document["records"] if r["kind"] == kind)


def _delete(key: str):
    return lambda r: r.pop(key)


# Flaws the hand-kept tables never covered: each comes from a field's type hint or default.
REJECTED = {
    "timing inner as text": ("timing", lambda r: r.update(inner="many"), "field 'inner' is 'many', expected an integer"),
    "timing without mode": ("timing", _delete("mode"), "field 'mode' is missing, expected a string"),
    "timing without median": ("timing", _delete("median_s"), "field 'median_s' is missing, expected an integer or a number or null"),
    "timing skipped as null": ("timing", lambda r: r.update(skipped=None), "field 'skipped' is None, expected a boolean"),
    "timing threads a float": ("timing", lambda r: r.update(threads=1.5), "field 'threads' is 1.5, expected an integer or null"),
    "timing rows negative": ("timing", lambda r: r.update(rows=-1), "field 'rows' is -1, expected a number >= 0"),
    "check shape a number": ("check", lambda r: r.update(shape=3), "field 'shape' is 3, expected a list"),
    "check without case": ("check", _delete("case"), "field 'case' is missing, expected a string"),
    "check without passed": ("check", _delete("passed"), "field 'passed' is missing, expected a boolean or null"),
    "check axis as true": ("check", lambda r: r.update(axis=True), "field 'axis' is True, expected an integer"),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_a_record_against_its_dataclass_is_refused_in_one_line(tmp_path, cli, case):
    kind, edit, expected = REJECTED[case]
    path = edited(tmp_path, "bad.json", lambda d: edit(_first(d, kind)), source=SMALL)
    with pytest.raises(ResultsError, match=re.escape(expected)):
        load(path)
    status, out, err = cli("report", path)
    assert (status, out) == (2, "") and err.count("\n") == 1 and expected in err


def test_what_the_dataclasses_leave_optional_stays_optional(tmp_path):
    """The other side of the rules: a field with a default may be absent, an Optional one null, an unknown one anything."""
    def edit(document):
        timing_, check = _first(document, "timing"), _first(document, "check")
        for key in ("gbps", "library", "pass", "op", "skipped"):
            timing_.pop(key, None)
        timing_.update(suspect=None, from_the_future=[1, "x"])
        check.update(expected=None, max_ulp=None)
    load(edited(tmp_path, "fine.json", edit, source=SMALL))


def test_a_new_field_is_validated_without_a_new_table():
    """The rules are read off whatever dataclass they are given: a field added there is checked at once."""
    @dataclasses.dataclass(kw_only=True)
    class Grown(TimingRecord):
        hidden: int
        flops: Optional[float] = None

    rules = {rule.key: rule for rule in field_rules(Grown)}
    assert rules["hidden"].required and rules["hidden"].types == (int,)
    assert not rules["flops"].required and rules["flops"].types == (int, float, type(None))
    assert rules["pass"].types == (str,) and not rules["pass"].required
    assert "extra" not in rules and "stored_order" not in rules
    assert rules["hidden"].flaw({"hidden": "8"}) == "is '8', expected an integer"
    assert rules["flops"].flaw({"flops": -1.0}) is None and rules["median_s"].flaw({"median_s": -1.0})


# ---------------------------------------------------------------- one identity


def test_the_workpoint_is_the_resume_key_and_old_files_mean_a_forward_pass(tmp_path):
    stored = load(OLD)["records"]
    old = next(r for r in stored if r["kind"] == "timing")
    assert "pass" not in old
    assert Workpoint.of(old) == Workpoint.of({**old, "pass": "fwd"})
    assert Workpoint.of(old) != Workpoint.of({**old, "pass": "bwd"})  # negative control: pass is in the key
    assert Workpoint.of(old) != Workpoint.of({**old, "world_size": 2})
    check = next(r for r in stored if r["kind"] == "check")
    assert Workpoint.of(check).case == check["case"] and Workpoint.of(check).mode is None
    resumed = ResultsFile(tmp_path / "r.json", env=load(OLD)["environment"])
    resumed.add([old], write=False)
    assert resumed.has(from_dict(old).workpoint)
    assert not resumed.has(dataclasses.replace(from_dict(old).workpoint, mode="cold"))
