"""One measurement, as every front end takes it: the CLI's worker, asv and pytest-benchmark.

``prepare`` generates inputs on the device through the library's adapter
(``randn``), replicated into distinct buffers for the cold-cache mode, and
returns a ``PreparedCall``: the backend's op ready to call, its completion
(``wait``) and its contract check. Nothing of that is timed.

``measure`` is the task the isolated worker runs for ``softmax-bench run``:
a plain copy of the same bytes with the same library (the bandwidth
ceiling), the first call (checked against the contract: a backend returning
garbage is not timed), the timer's samples (``timer.time_calls``), and the
peak memory of one call, measured apart from the timing.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import adapters, registry
from .backend import Backend
from .execute import check_output
from .memory import MAX_BUFFERS, buffer_count, llc_bytes, peak_bytes, peak_method
from .selection import unavailable
from .sizes import Size
from .timer import DEFAULT_BUDGET, Budget, time_calls

MODES = ("warm", "cold")


class Unavailable(NotImplementedError):
    """The backend cannot run on this device here (asv skips on NotImplementedError)."""


@dataclass
class PreparedCall:
    """One backend ready to call on device inputs of one size: what every front end times."""

    backend: Backend
    adapter: adapters.Adapter
    device: str
    dtype: str
    size: Size
    inputs: list

    @property
    def fn(self) -> Callable:
        """The backend's softmax, ``fn(x, axis=-1)``: what is timed."""
        return self.backend.softmax

    def wait(self, result: Any) -> Any:
        """Block until ``result`` (an output or a list of them) is computed on the device."""
        return self.adapter.wait(result, self.device)

    def call(self, x: Any = None) -> Any:
        """One completed call on ``x`` (default: the first input); returns the output."""
        return self.wait(self.fn(self.inputs[0] if x is None else x, axis=-1))

    def check(self, out: Any) -> None:
        """``BackendFailure`` unless ``out`` honours the contract for this call."""
        check_output(self.adapter, out, (self.size.rows, self.size.vocab), self.dtype, self.device)

    def to_numpy(self, y: Any) -> np.ndarray:
        """An output (or input) of this call as a NumPy array on the host."""
        return self.adapter.to_numpy(y)


def prepare(
    backend_name: str,
    device: str,
    dtype: str,
    size: Size,
    buffers: int = 1,
    plugin_files: Sequence[str] = (),
    seed: int = 0,
) -> PreparedCall:
    """Generate ``buffers`` distinct standard-normal inputs on the device, nothing timed.

    Raises ``Unavailable`` when the backend cannot run on ``device`` with
    ``dtype`` here, with the reason.
    """
    reg = registry.cached(plugin_files)
    backend = reg.get(backend_name)
    reason = unavailable(reg, backend_name, device, dtype)
    if reason:
        raise Unavailable(f"{backend_name} on {device} {dtype}: {reason}")
    adapter = adapters.get(backend.library)
    first = adapter.randn((size.rows, size.vocab), dtype, device, seed)
    adapter.wait(first, device)
    inputs = [first] if buffers == 1 else adapter.replicate(first, buffers)
    adapter.wait(inputs, device)
    return PreparedCall(backend, adapter, device, dtype, size, inputs)


def gbps(size: Size, dtype: str, seconds: Optional[float]) -> Optional[float]:
    """Effective bandwidth: read and write each element once, 2 x rows x vocab x itemsize / time."""
    if not seconds or seconds <= 0:
        return None
    return 2 * size.nbytes(dtype) / seconds / 1e9


def copy_budget(budget: Budget) -> Budget:
    """The copy's budget: a plain copy is steady, so a shorter warm-up and fewer samples do."""
    return dataclasses.replace(budget, warmup_s=budget.warmup_s / 2, repeats=max(budget.min_repeats, budget.repeats // 2))


def measure(
    backend_name: str,
    device: str,
    dtype: str,
    rows: int,
    vocab: int,
    mode: str,
    budget: Budget = DEFAULT_BUDGET,
    with_copy: bool = True,
    llc: Optional[int] = None,
    plugin_files: Sequence[str] = (),
) -> dict[str, Any]:
    """Time one (backend, device, dtype, size, mode); runs inside the isolated worker.

    Returns the timing record's measured fields, and (``with_copy``) the
    bandwidth of a plain copy of the same inputs with the same library,
    measured here, just before: each unit carries its own ceiling, whatever
    ran before it. A backend that raises or returns the wrong thing raises
    ``BackendFailure``.
    """
    size = Size(rows, vocab)
    llc = llc or llc_bytes(device)
    buffers = buffer_count(size.nbytes(dtype), mode, llc)
    if buffers > MAX_BUFFERS:
        raise ValueError(f"cold mode at {size.label} {dtype} needs {buffers} buffers (more than {MAX_BUFFERS})")
    prepared = prepare(backend_name, device, dtype, size, buffers=buffers, plugin_files=plugin_files)
    adapter = prepared.adapter

    copy_gbps = None
    if with_copy:
        op = adapter.copy_op(prepared.inputs[0])
        copy_time = time_calls(lambda x, axis=-1: op(x), prepared.inputs, prepared.wait, copy_budget(budget), adapter.ordered)
        copy_gbps = gbps(size, dtype, copy_time.median_s)

    start = time.perf_counter()
    out = prepared.call()
    first = time.perf_counter() - start
    prepared.check(out)
    del out
    timing = time_calls(prepared.fn, prepared.inputs, prepared.wait, budget, adapter.ordered, first=first)

    # Peak memory apart from the timing; the cold inputs are released first so
    # that the process's own high-water mark is not made of them.
    if buffers > 1:
        prepared.inputs = adapter.replicate(prepared.inputs[0], 1)
    peak = peak_bytes(adapter, device, prepared.call)
    fields = asdict(timing)
    fields.pop("samples_s")
    fields.update(
        gbps=gbps(size, dtype, timing.median_s), copy_gbps=copy_gbps, peak_bytes=peak,
        peak_method=peak_method(adapter.library, device), buffers=buffers, llc_bytes=llc,
    )
    return fields
