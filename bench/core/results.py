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
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..errors import ResultsError
from . import adapters
from .records import RECORD_TYPES, Workpoint, is_required, schema_fields, stored_name

SCHEMA = 1

# Environment fields that must match for --resume to continue a file.
RESUME_MUST_MATCH = ("python", "platform", "cpu", "gpu", "packages", "commit")

# Beside each array library's own (its adapter names them): what the engine and the built-ins use.
_PACKAGES = ("softmax-bench", "ml_dtypes", "mpmath", "gmpy2", "scipy", "triton", "liger-kernel", "numba", "llvmlite", "py-cpuinfo")
# CPU flags that decide which vector code numba/LLVM, torch and XLA can emit; the other ~100 flags are noise.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
              "avx512_fp16", "avx_vnni", "amx_bf16", "amx_tile", "neon", "asimd", "sve")
# Variables that set the threads of OpenMP, MKL, OpenBLAS, numba and XLA at their start (threads.py sets them).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "XLA_FLAGS")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _proc_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def _sys_caches() -> dict[str, int]:
    """Cache sizes of CPU 0 from sysfs (Linux), by level: what py-cpuinfo would give, without it."""
    sizes: dict[str, int] = {}
    from .formatting import parse_bytes

    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = parse_bytes((index / "size").read_text().strip())
        except (OSError, ValueError):
            continue
        key = f"l{level}_data_cache_size" if kind == "Data" else (
            f"l{level}_instruction_cache_size" if kind == "Instruction" else f"l{level}_cache_size")
        sizes[key] = size
    return sizes


def cpu_details() -> dict[str, Any]:
    """The CPU beyond its model name: brand, SIMD flags, cache sizes, clock; from py-cpuinfo when installed.

    py-cpuinfo (the library pytest-benchmark uses) is optional and imported
    here, lazily: it costs a fraction of a second. Without it, /proc/cpuinfo
    and sysfs give the flags and caches on Linux; ``source`` says which.
    """
    try:
        import cpuinfo  # py-cpuinfo
    except ImportError:
        cpuinfo = None
    if cpuinfo is not None:
        try:
            info = cpuinfo.get_cpu_info()
        except Exception:  # py-cpuinfo probes the CPU in a subprocess; a failure must not stop a run
            info = None
        if info:
            keep = ("brand_raw", "vendor_id_raw", "arch", "count", "hz_advertised_friendly")
            details = {k: info[k] for k in keep if info.get(k) not in (None, "")}
            # Cache sizes from sysfs where there is one: on this project's AMD EPYC VMs py-cpuinfo
            # gave an L3 of 512 KiB where the kernel says 8 MiB; py-cpuinfo's only without sysfs.
            caches = _sys_caches() or {k: info[k] for k in ("l1_data_cache_size", "l2_cache_size", "l3_cache_size")
                                       if isinstance(info.get(k), int)}
            details.update(caches)
            details["simd_flags"] = [f for f in SIMD_FLAGS if f in set(info.get("flags") or ())]
            details["source"] = "py-cpuinfo"
            return details
    details = {"brand_raw": _cpu_model(), "arch": platform.machine(), "count": os.cpu_count()}
    details.update(_sys_caches())
    flags = set(_proc_flags())
    details["simd_flags"] = [f for f in SIMD_FLAGS if f in flags]
    details["source"] = "proc"
    return details


def thread_settings() -> dict[str, Any]:
    """The thread variables as this process has them, and the CPUs it may run on."""
    settings: dict[str, Any] = {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}
    try:
        settings["affinity_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    return settings


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
    for name in _PACKAGES + adapters.packages():
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
        "cpu_info": cpu_details(),
        "threads": thread_settings(),
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


def _json_types(hint: Any) -> tuple[type, ...]:
    """The JSON values a field's type hint admits: ``Optional`` admits null, a float admits an integer
    (a whole number is stored without its ``.0``), ``list[int]`` is a list."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _json_types(arg))
    if hint is float:
        return (int, float)
    return (typing.get_origin(hint) or hint,)


@dataclass(frozen=True)
class FieldRule:
    """What a stored record's field must be, read off its dataclass field (see ``records``)."""

    key: str
    types: tuple[type, ...]
    required: bool
    non_negative: bool

    def flaw(self, record: dict[str, Any]) -> Optional[str]:
        """Why ``record``'s value for this field is not acceptable, or ``None``."""
        value = record.get(self.key, ...)
        if value is ...:
            return f"is missing, expected {_type_name(self.types)}" if self.required else None
        # bool is an int to isinstance; `true` is no number of seconds.
        if not isinstance(value, self.types) or (isinstance(value, bool) and bool not in self.types):
            return f"is {repr(value)[:40]}, expected {_type_name(self.types)}"
        if self.non_negative and isinstance(value, (int, float)) and value < 0:
            return f"is {value!r}, expected a number >= 0"
        return None


def field_rules(record_type: type) -> tuple[FieldRule, ...]:
    """One rule per stored field of a record dataclass: its type from the hint, required when it has no default."""
    hints = typing.get_type_hints(record_type)
    return tuple(FieldRule(stored_name(f), _json_types(hints[f.name]), is_required(f), bool(f.metadata.get("non_negative")))
                 for f in schema_fields(record_type))


# The schema as validate reads it: derived from the record dataclasses, never written out here.
RULES = {kind: field_rules(record_type) for kind, record_type in RECORD_TYPES.items()}


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "a boolean", str: "a string", int: "an integer", float: "a number", list: "a list",
             type(None): "null"}
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
        if not isinstance(kind, str) or kind not in RULES:
            raise ResultsError(f"{source}: record {index} has kind {kind!r}; valid: {', '.join(RULES)}")
        for field, value in record.items():
            # json.loads accepts NaN, Infinity and 1e999; results files store non-finite numbers as null.
            if isinstance(value, float) and not math.isfinite(value):
                raise ResultsError(f"{source}: record {index} field {field!r} is {value!r}; non-finite numbers are stored as null")
        for rule in RULES[kind]:
            flaw = rule.flaw(record)
            if flaw:
                raise ResultsError(f"{source}: record {index} field {rule.key!r} {flaw}")
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


def _text(environment: dict[str, Any], lines: Sequence[str]) -> str:
    """A results file's text: one line of environment, one line per (already encoded) record."""
    env = json.dumps(_clean(environment), allow_nan=False)
    body = ",\n".join(lines)
    return f'{{"schema": {SCHEMA},\n"environment": {env},\n"records": [\n{body}\n]}}\n'


def dumps(environment: dict[str, Any], records: Iterable[dict[str, Any]]) -> str:
    """The text ``ResultsFile`` writes for these environment and records, byte for byte."""
    return _text(environment, [json.dumps(_clean(r), allow_nan=False) for r in records])


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
        self._keys = {Workpoint.of(r) for r in self.records}
        # Each record is encoded once; a rewrite joins the encoded lines, so the
        # per-record cost stays small however long the run gets.
        self._lines = [json.dumps(r, allow_nan=False) for r in self.records]

    def has(self, point: Workpoint) -> bool:
        """Whether a record of this unit of work is already in the file (a resumed run skips it)."""
        return point in self._keys

    def add(self, records: Iterable[dict[str, Any]], write: bool = True) -> None:
        """Append records and (by default) rewrite the file at once."""
        for record in records:
            record = _clean(record)
            self._lines.append(json.dumps(record, allow_nan=False))
            self.records.append(record)
            self._keys.add(Workpoint.of(record))
        if write:
            self.write()

    def rewrite(self) -> None:
        """Write the file again after records already added were changed in place."""
        self.records = [_clean(r) for r in self.records]
        self._lines = [json.dumps(r, allow_nan=False) for r in self.records]
        self.write()

    def write(self) -> None:
        write_atomic(self.path, _text(self.environment, self._lines))
