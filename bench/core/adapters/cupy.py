"""CuPy arrays on a CUDA device; the memory pool's high-water mark for peak memory."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, Optional

import numpy as np

from ...errors import first_line
from .. import dtypes as dt
from .base import Adapter


class CupyAdapter(Adapter):
    library = "cupy"
    packages = ("cupy-cuda12x", "cupy-cuda13x")

    @cached_property
    def cupy(self):
        import cupy

        return cupy

    def unavailable(self, device: str) -> Optional[str]:
        if device != "cuda":
            return "cupy arrays live on CUDA devices only"
        try:
            count = self.cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError without a driver or device
            return f"cupy sees no CUDA device ({first_line(exc)})"
        return None if count > 0 else "cupy sees no CUDA device"

    def from_numpy(self, x: np.ndarray, device: str, dtype: str, strided: bool = False) -> Any:
        host = Adapter.from_numpy(self, x, "cpu", dtype, strided=False)
        arr = self.cupy.asarray(host)
        if strided:
            wide = self.cupy.zeros(arr.shape[:-1] + (2 * arr.shape[-1],), dtype=arr.dtype)
            wide[..., ::2] = arr
            return wide[..., ::2]
        return arr

    def to_numpy(self, y: Any) -> np.ndarray:
        return self.cupy.asnumpy(y)

    def is_array(self, y: Any) -> bool:
        return isinstance(y, self.cupy.ndarray)

    def device_of(self, y: Any) -> str:
        return "cuda"

    def sync(self, device: str) -> None:
        self.cupy.cuda.get_current_stream().synchronize()

    def replicate(self, x: Any, n: int) -> list:
        block = self.cupy.empty((n,) + tuple(x.shape), dtype=x.dtype)
        block[...] = x
        return list(block)

    def copy_op(self, like: Any) -> Callable[[Any], Any]:
        out = self.cupy.empty_like(like)
        return lambda x: self.cupy.copyto(out, x)

    @property
    def xp(self) -> Any:
        return self.cupy

    def index_array(self, index: np.ndarray, device: str) -> Any:
        return self.cupy.asarray(np.asarray(index, dtype=np.int64))

    def randn(self, shape: tuple, dtype: str, device: str, seed: int) -> Any:
        rng = self.cupy.random.default_rng(seed)
        return rng.standard_normal(shape, dtype=self.cupy.float32).astype(dt.np_dtype(dtype))

    def reset_peak_memory(self, device: str) -> None:
        self.cupy.get_default_memory_pool().free_all_blocks()
        self._base = self.cupy.get_default_memory_pool().total_bytes()

    def release_cached(self, device: str) -> None:
        import gc

        gc.collect()
        self.cupy.get_default_memory_pool().free_all_blocks()

    def peak_memory(self, device: str) -> Optional[int]:
        # CuPy keeps no peak counter; the pool's high-water mark is the closest figure.
        return int(self.cupy.get_default_memory_pool().total_bytes() - getattr(self, "_base", 0))


ADAPTER = CupyAdapter
