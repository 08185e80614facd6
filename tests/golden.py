"""Fixture files and golden-output comparison shared by the report and compare tests.

The fixtures in tests/data are hand-made: invented numbers in the schema of
docs/reports.md "Results files", not measurements.

Regenerate the golden files after an intended change of output, then review
the diff like code:

    SOFTMAX_BENCH_UPDATE_GOLDEN=1 python -m pytest tests/test_report.py tests/test_compare.py
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"
SMALL = DATA / "results-small.json"  # one CPU machine: 4 NumPy backends, 2 dtypes, warm and cold
GPU = DATA / "results-gpu.json"      # a second machine with a GPU: torch-fused on cpu and cuda
# A GPU machine with the newer timing fields: op and pass (softmax fwd/bwd, log_softmax, cross_entropy
# fwd/full), route, includes_bwd, bytes and byte_model, threads, a suspect timing, device copy figures,
# peak memory by rss with the allocator's own figure, a failed full pass, a distributed backend.
OPS = DATA / "results-ops.json"
UPDATE = "SOFTMAX_BENCH_UPDATE_GOLDEN"


def check_golden(name: str, text: str) -> None:
    """Assert ``text`` equals tests/data/golden/NAME, or rewrite it when $SOFTMAX_BENCH_UPDATE_GOLDEN is set."""
    path = GOLDEN / name
    if os.environ.get(UPDATE):
        path.write_text(text)
        pytest.skip(f"rewrote {path.name}; review the diff")
    assert path.exists(), f"no golden file {path}; create it with {UPDATE}=1"
    assert text == path.read_text(), (
        f"output differs from {path}; if the change is intended, regenerate with "
        f"{UPDATE}=1 python -m pytest tests/test_report.py tests/test_compare.py")


def load_fixture(path: Path = SMALL) -> dict[str, Any]:
    return json.loads(path.read_text())


def edited(tmp_path: Path, name: str, edit: Callable[[dict[str, Any]], Any], source: Path = SMALL) -> Path:
    """A copy of a fixture, changed by ``edit`` (which mutates the document), written as tmp_path/NAME."""
    document = copy.deepcopy(load_fixture(source))
    edit(document)
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def timing(document: dict[str, Any], backend: str, dtype: str = "float32", mode: str = "warm",
           vocab: int = 32768) -> dict[str, Any]:
    """The one timing record of a fixture with these fields."""
    found = [r for r in document["records"] if r["kind"] == "timing" and r["backend"] == backend
             and r["dtype"] == dtype and r["mode"] == mode and r["vocab"] == vocab]
    assert len(found) == 1, found
    return found[0]
