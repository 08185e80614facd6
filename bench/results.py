"""Results files (schema 1): the environment, the records, atomic writes, validation.

``{"schema": 1, "environment": {...}, "records": [...]}``. A run rewrites its
file after every finished unit of work through a temporary file, fsync and
rename, so a run killed at any moment leaves valid JSON holding everything
finished before the kill. Files are data only: JSON in, JSON out, no pickle.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import ResultsError

SCHEMA = 1

# Fields every record has, and their JSON types; check and timing records add theirs.
COMMON_FIELDS = {"kind": str, "backend": str, "device": str, "dtype": str, "rows": int, "vocab": int}
KIND_FIELDS = {
    "check": {"case": str, "passed": (bool, type(None))},
    "timing": {"median_s": (int, float, type(None)), "iqr_s": (int, float, type(None))},
}
_NUMBER = (int, float, type(None))
_TEXT = (str, type(None))
# Optional fields the report and compare read: when present they must have these
# types, so a hand-edited file fails here with one line instead of deep inside a table.
OPTIONAL_FIELDS = {
    "check": {"op": _TEXT, "behaviour": _TEXT, "expected": _TEXT, "max_ulp": _NUMBER, "max_rel": _NUMBER,
              "scale": _NUMBER, "reference": bool, "special": bool, "reason": _TEXT, "failure": _TEXT},
    "timing": {"op": _TEXT, "pass": _TEXT, "mode": _TEXT, "gbps": _NUMBER, "copy_gbps": _NUMBER, "copy_fraction": _NUMBER,
               "device_copy_gbps": _NUMBER, "device_copy_fraction": _NUMBER, "peak_bytes": _NUMBER,
               "suspect": _TEXT, "reason": _TEXT, "failure": _TEXT},
}
# Figures that are never negative: a negative one is a hand edit, not a measurement.
NON_NEGATIVE = ("median_s", "iqr_s", "gbps", "copy_gbps", "copy_fraction", "max_ulp", "max_rel")
# Fields that name one unit of work: a resumed run skips units already recorded.
IDENTITY = ("kind", "backend", "device", "dtype", "case", "op", "pass", "rows", "hidden", "vocab", "mode", "world_size")
# Environment fields that must match for --resume to continue a file.
RESUME_MUST_MATCH = ("python", "platform", "cpu", "gpu", "packages", "commit")

_PACKAGES = ("softmax-bench", "numpy", "ml_dtypes", "mpmath", "torch", "jax", "jaxlib", "cupy-cuda12x", "cupy-cuda13x", "triton", "scipy",
             "liger-kernel", "gmpy2", "numba")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> Optional[dict[str, str]]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    name, driver, memory = (part.strip() for part in out.splitlines()[0].split(","))
    return {"name": name, "driver": driver, "memory": memory}


COMMIT_ENV = "SOFTMAX_BENCH_COMMIT"


def _commit() -> Optional[str]:
    """The git commit of the measured code, when it runs from a checkout, else ``$SOFTMAX_BENCH_COMMIT``
    (a copy of a checkout without its .git, as a GPU machine may be sent)."""
    given = os.environ.get(COMMIT_ENV, "").strip()
    if given:
        return given
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def environment() -> dict[str, Any]:
    """What a result depends on: versions, interpreter, CPU, GPU, commit, host, time."""
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": mem,
        "gpu": _gpu(),
        "packages": _versions(),
        "commit": _commit(),
        "host": socket.gethostname(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def default_path(directory: str | Path = "results") -> Path:
    """results/<UTC time>-<host>.json, a new name for every run."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
    return Path(directory) / f"{stamp}-{host}.json"


def _clean(value: Any) -> Any:
    """JSON has no NaN or inf; store them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a NumPy scalar
        return _clean(value.item())
    return value


def write_atomic(path: str | Path, document: dict[str, Any] | str) -> None:
    """Write JSON to ``path`` so that readers only ever see the old or the new file.

    The text goes to a temporary file in the same folder, is fsynced, and
    replaces ``path`` by rename; a process killed at any moment leaves one or
    the other whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = document if isinstance(document, str) else json.dumps(_clean(document), indent=1, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def record_key(record: dict[str, Any]) -> tuple:
    """The unit of work a record belongs to (see ``IDENTITY``).

    A timing record from before passes existed is a forward pass.
    """
    key = tuple(record.get(field) for field in IDENTITY)
    if record.get("kind") == "timing" and record.get("pass") is None:
        key = tuple("fwd" if field == "pass" else value for field, value in zip(IDENTITY, key))
    return key


def _type_name(types: Any) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {bool: "a boolean", str: "a string", int: "an integer", float: "a number", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def validate(document: Any, source: str) -> dict[str, Any]:
    """Check the structure of a loaded results document; ``ResultsError`` names the flaw."""
    if not isinstance(document, dict):
        raise ResultsError(f"{source}: not a softmax-bench results file (top level is {type(document).__name__}, not an object)")
    schema = document.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise ResultsError(f"{source}: not a softmax-bench results file (no integer 'schema' field)")
    if schema > SCHEMA:
        raise ResultsError(f"{source}: schema {schema} is newer than this softmax-bench reads (schema {SCHEMA}); upgrade softmax-bench")
    if schema < 1:
        raise ResultsError(f"{source}: schema {schema} is not a valid schema number")
    if not isinstance(document.get("environment"), dict):
        raise ResultsError(f"{source}: 'environment' must be an object")
    records = document.get("records")
    if not isinstance(records, list):
        raise ResultsError(f"{source}: 'records' must be a list")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ResultsError(f"{source}: record {index} is {type(record).__name__}, not an object")
        kind = record.get("kind")
        if not isinstance(kind, str) or kind not in KIND_FIELDS:
            raise ResultsError(f"{source}: record {index} has kind {kind!r}; valid: {', '.join(KIND_FIELDS)}")
        required = {**COMMON_FIELDS, **KIND_FIELDS[kind]}
        for field, types in {**required, **OPTIONAL_FIELDS[kind]}.items():
            value = record.get(field, ...)
            if value is ... and field not in required:
                continue
            # bool is an int to isinstance; `true` is no number of seconds.
            is_bool_as_number = isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))
            if value is ... or not isinstance(value, types) or is_bool_as_number:
                shown = "missing" if value is ... else repr(value)[:40]
                raise ResultsError(f"{source}: record {index} field {field!r} is {shown}, expected {_type_name(types)}")
        for field, value in record.items():
            # json.loads accepts NaN, Infinity and 1e999; results files store non-finite numbers as null.
            if isinstance(value, float) and not math.isfinite(value):
                raise ResultsError(f"{source}: record {index} field {field!r} is {value!r}; non-finite numbers are stored as null")
        for field in ("rows", "vocab"):
            if record[field] < 0:
                raise ResultsError(f"{source}: record {index} field {field!r} is negative")
        for field in NON_NEGATIVE:
            value = record.get(field)
            if isinstance(value, (int, float)) and value < 0:
                raise ResultsError(f"{source}: record {index} field {field!r} is {value!r}, expected a number >= 0")
    return document


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate a results file; ``ResultsError`` with one clear line otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultsError(f"{path}: is a directory, not a results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot be read ({type(exc).__name__})") from None
    if not text.strip():
        raise ResultsError(f"{path}: empty file")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(text.rstrip()) else "not valid JSON"
        raise ResultsError(f"{path}: {what} (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise ResultsError(f"{path}: nested too deeply to be a results file") from None
    return validate(document, str(path))


class ResultsFile:
    """A results file being written: records accumulate and the file is rewritten atomically.

    With ``resume=True`` an existing file's records are kept and its
    environment block is reused; ``has(record)`` says whether a unit of work is
    already recorded. The environment must match (``RESUME_MUST_MATCH``).
    """

    def __init__(self, path: str | Path, env: Optional[dict[str, Any]] = None, resume: bool = False):
        self.path = Path(path)
        current = env if env is not None else environment()
        self.records: list[dict[str, Any]] = []
        if resume:
            document = load(self.path)
            previous = document["environment"]
            differs = [k for k in RESUME_MUST_MATCH if previous.get(k) != current.get(k)]
            if differs:
                detail = "; ".join(f"{k}: recorded {previous.get(k)!r}, now {current.get(k)!r}" for k in differs)
                raise ResultsError(f"{self.path}: cannot resume, the environment differs ({detail})")
            self.environment = previous
            self.records = list(document["records"])
        else:
            self.environment = current
        self._keys = {record_key(r) for r in self.records}
        # Each record is encoded once; a rewrite joins the encoded lines, so the
        # per-record cost stays small however long the run gets.
        self._lines = [json.dumps(r, allow_nan=False) for r in self.records]

    def has(self, identity: dict[str, Any]) -> bool:
        return record_key(identity) in self._keys

    def add(self, records: Iterable[dict[str, Any]], write: bool = True) -> None:
        """Append records and (by default) rewrite the file at once."""
        for record in records:
            record = _clean(record)
            self._lines.append(json.dumps(record, allow_nan=False))
            self.records.append(record)
            self._keys.add(record_key(record))
        if write:
            self.write()

    def rewrite(self) -> None:
        """Write the file again after records already added were changed in place."""
        self.records = [_clean(r) for r in self.records]
        self._lines = [json.dumps(r, allow_nan=False) for r in self.records]
        self.write()

    def write(self) -> None:
        env = json.dumps(_clean(self.environment), allow_nan=False)
        body = ",\n".join(self._lines)
        write_atomic(self.path, f'{{"schema": {SCHEMA},\n"environment": {env},\n"records": [\n{body}\n]}}\n')
