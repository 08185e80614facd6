"""The memory system a timing meets: the last-level cache cold mode must defeat, and peak memory.

``llc_bytes`` finds the cache (sysfs on CPU, device properties on CUDA, an
override in ``$SOFTMAX_BENCH_LLC_BYTES``); ``buffer_count`` says how many
inputs cold mode rotates through; ``peak_bytes`` measures what one call
allocates beyond what existed before it.
"""

from __future__ import annotations

import ctypes
import gc
import glob
import math
import os
import tracemalloc
from typing import Any, Callable, Optional

from ..core import adapters
from ..errors import UsageError
from ..core.formatting import parse_bytes

# Used where the last-level cache cannot be read: at least every CPU LLC and
# GPU L2 in common use (H100 50 MB, MI300X 256 MB Infinity Cache), so a cold
# run stays cold when we guess.
DEFAULT_LLC_BYTES = 256 * 2**20
# Cold mode rotates through inputs totalling at least this many LLCs. Every
# call also writes an output of the same size, so between two uses of one
# buffer at least 4 LLCs of data pass through the cache: even under random
# replacement about exp(-4) ~ 2% of it could survive.
COLD_FACTOR = 2
# Rotating millions of tiny arrays costs more memory in Python objects than in
# data; inputs that would need more buffers than this get no cold figure.
MAX_BUFFERS = 2**18
# Overrides the detected last-level cache size, in bytes (a wrong sysfs figure
# in a VM, or a short cold run in tests).
LLC_ENV = "SOFTMAX_BENCH_LLC_BYTES"


def cpu_llc_bytes(root: str = "/sys/devices/system/cpu/cpu0/cache") -> Optional[int]:
    """Size of CPU 0's highest-level data or unified cache, from sysfs."""
    best: tuple[int, int] = (0, 0)
    for index in glob.glob(os.path.join(root, "index*")):
        try:
            with open(os.path.join(index, "type")) as handle:
                if handle.read().strip() == "Instruction":
                    continue
            with open(os.path.join(index, "level")) as handle:
                level = int(handle.read())
            with open(os.path.join(index, "size")) as handle:
                size = parse_bytes(handle.read())
        except (OSError, ValueError):
            continue
        if size and (level, size) > best:
            best = (level, size)
    return best[1] or None


def cuda_l2_bytes() -> Optional[int]:
    """L2 size of CUDA device 0, from torch or CuPy, whichever is importable."""
    try:
        import torch

        if torch.cuda.is_available():
            size = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0)
            if size:
                return int(size)
    except Exception:  # torch missing or broken: try CuPy
        pass
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceProperties(0)["l2CacheSize"]) or None
    except Exception:
        return None


def llc_bytes(device: str) -> int:
    """The last-level cache the cold mode must defeat on ``device``.

    ``$SOFTMAX_BENCH_LLC_BYTES`` if set, else sysfs (CPU) or the device
    properties (CUDA), else ``DEFAULT_LLC_BYTES``.
    """
    override = os.environ.get(LLC_ENV, "").strip()
    if override:
        try:
            return max(int(float(override)), 1)
        except ValueError:
            raise UsageError(f"${LLC_ENV}={override!r} is not a number of bytes") from None
    found = cpu_llc_bytes() if device == "cpu" else cuda_l2_bytes()
    return found or DEFAULT_LLC_BYTES


def buffer_count(nbytes: int, mode: str, llc: int) -> int:
    """Inputs to rotate through: 1 warm; cold, enough to exceed ``COLD_FACTOR`` x LLC.

    A single input larger than the LLC is already cold: one buffer.
    """
    if mode == "warm" or nbytes <= 0 or nbytes > llc:
        return 1
    return math.ceil(COLD_FACTOR * llc / nbytes)


# ----------------------------------------------------------------- memory

def _rss_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes."""
    found = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    return found


def _release_free_heap() -> None:
    """Return freed heap memory to the OS so a new allocation shows up in the RSS."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def rss_peak(call: Callable[[], Any]) -> Optional[int]:
    """Bytes the resident set grew to during ``call()`` beyond what it held before; None if unreadable.

    Freed heap is returned to the OS first (so a new allocation shows up), and
    the high-water mark is reset through /proc/self/clear_refs right before
    the call. Memory an allocator already holds and reuses does not show: a
    lower bound, the same for every library.
    """
    try:
        _release_free_heap()
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current VmRSS
        before = _rss_status()["VmRSS"]
        result = call()
        peak = _rss_status()["VmHWM"] - before
    except (OSError, KeyError, ValueError):
        return None
    del result
    return max(int(peak), 0)


def tracemalloc_peak(call: Callable[[], Any]) -> int:
    """Peak bytes Python-visible allocations (NumPy's) reach during ``call()`` beyond those before it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    del result
    return max(int(peak), 0)


def peak_method(library: str, device: str) -> str:
    """How ``peak_bytes`` is measured: the resident set on a CPU, the allocator on a GPU."""
    return "rss" if device == "cpu" else "allocator"


def peak_memory(adapter: adapters.Adapter, device: str, call: Callable[[], Any],
                release: Optional[Callable[[], None]] = None,
                planned: Optional[Callable[[], Optional[int]]] = None) -> dict[str, Any]:
    """Peak memory of one completed ``call()`` beyond its inputs, by one method for every library.

    ``peak_bytes`` (``peak_method``): on a CPU the resident set's high-water
    mark (``rss_peak``), whatever the library, so figures set side by side
    compare; on a GPU the library allocator's peak. Beside it, where the
    library has its own figure, ``peak_library_bytes`` (``peak_library_method``):
    tracemalloc for NumPy on a CPU. Each is a separate call, each after
    ``release()`` (the backend's: memory it keeps between calls, which the
    call would otherwise reuse unseen). A GPU library without a resettable
    peak (JAX) gives the compiler's plan instead, ``planned()``: the
    outputs and temporaries XLA allocates for the call (``peak_method``
    "compiled plan").
    """
    release = release or (lambda: None)
    found: dict[str, Any] = {"peak_bytes": None, "peak_method": peak_method(adapter.library, device),
                             "peak_library_bytes": None, "peak_library_method": None}
    if device != "cpu":
        try:
            release()
            adapter.reset_peak_memory(device)
            call()
            peak = adapter.peak_memory(device)
        except Exception:  # a library without peak statistics
            peak = None
        if peak is None and planned is not None:
            try:
                peak = planned()
            except Exception:  # a call the compiler cannot lower on its own
                peak = None
            if peak is not None:
                found["peak_method"] = "compiled plan"
        found["peak_bytes"] = None if peak is None else max(int(peak), 0)
        return found
    release()
    found["peak_bytes"] = rss_peak(call)
    if adapter.library == "numpy":
        release()
        found.update(peak_library_bytes=tracemalloc_peak(call), peak_library_method="tracemalloc")
    return found
