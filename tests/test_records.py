"""Records read back into their dataclasses (``from_dict``) and written again byte for byte.

The committed results files are the evidence: every record of every one of
them (files of every age, with and without ``pass``/``op``, check and timing,
distributed and not) must come back unchanged through the dataclasses, so a
reader that goes through them loses nothing a file holds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from softmax_bench.records import CheckRecord, TimingRecord, from_dict
from softmax_bench.results import ResultsFile, dumps, load

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
    with pytest.raises(ValueError, match="record kind 'speed'; valid: timing, check"):
        from_dict({"kind": "speed"})
    with pytest.raises(TypeError, match="lacks mode"):
        from_dict({"kind": "timing", "backend": "b", "device": "cpu", "dtype": "float32", "rows": 2, "vocab": 8})
