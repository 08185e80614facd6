"""The adapter contract, with NumPy's behaviour as the defaults (``numpy.py`` adds nothing)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .. import dtypes as dt


class Adapter:
    """What the engine needs of an array library; the defaults are NumPy's, each library overrides what differs.

    A library is one module of this package defining ``ADAPTER`` (a subclass)
    and its name in ``softmax_bench.backend.LIBRARIES``.
    """

    library = "numpy"
    # The distributions whose versions a results file records for this library.
    packages: tuple[str, ...] = ("numpy",)
    # Whether the library differentiates a backend's forward (the "autodiff" route).
    autodiff = False
    # Whether finishing the last of several calls means every earlier one has
    # finished too (one in-order stream). The timer then waits once per sample.
    ordered = True

    def unavailable(self, device: str) -> Optional[str]:
        """``None`` when arrays of this library can live on ``device``, else why not."""
        if device != "cpu":
            return f"{self.library} arrays live on the cpu only"
        return None

    def from_numpy(self, x: np.ndarray, device: str, dtype: str, strided: bool = False) -> Any:
        """``x`` (any float dtype) as a ``dtype`` array on ``device``.

        With ``strided`` the result is a non-contiguous view (every other
        element of a buffer twice as wide along the last axis), for testing
        layouts a backend may not expect.
        """
        x = np.asarray(x).astype(dt.np_dtype(dtype))
        if strided:
            wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
            wide[..., ::2] = x
            return wide[..., ::2]
        return x

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(y)

    def is_array(self, y: Any) -> bool:
        return isinstance(y, np.ndarray)

    def dtype_name(self, y: Any) -> str:
        return dt.name_of(y.dtype)

    def device_of(self, y: Any) -> str:
        return "cpu"

    def sync(self, device: str) -> None:
        """Block until all work queued on ``device`` has finished."""

    def wait(self, result: Any, device: str) -> Any:
        """Block until ``result`` (an array or a list of them) is computed.

        The timer calls this before reading the clock: NumPy is done when it
        returns, torch and CuPy synchronise the device, JAX blocks on the arrays.
        """
        self.sync(device)
        return result

    def replicate(self, x: Any, n: int) -> list:
        """``n`` arrays equal to ``x`` in distinct memory (the cold-cache rotation).

        One contiguous block holds them all, so making thousands of small ones
        costs one copy rather than thousands of allocations.
        """
        block = np.empty((n,) + tuple(x.shape), dtype=x.dtype)
        block[...] = x
        return list(block)

    def copy_op(self, like: Any) -> Callable[[Any], Any]:
        """``f(x)`` copying any array shaped like ``like`` into one preallocated buffer.

        It moves the same bytes a one-pass softmax must move (read x, write an
        array of the same size), so its bandwidth is the practical ceiling.
        """
        out = np.empty_like(like)
        return lambda x: np.copyto(out, x)

    def copier(self, x: Any) -> Callable[[], Any]:
        """A zero-argument callable that copies ``x`` into a preallocated buffer (see ``copy_op``)."""
        op = self.copy_op(x)
        return lambda: op(x)

    def vjp(self, fn: Callable, x: Any, dy: Any, axis: int) -> Any:
        """dx = J(fn)(x)^T dy by autodiff; raises NotImplementedError where none exists."""
        _, (dx,) = self.vjp_many(lambda a: fn(a, axis=axis), (x,), dy)
        return dx

    def vjp_many(self, fn: Callable, xs: tuple, dy: Any) -> tuple[Any, tuple]:
        """``(y, grads)``: y = fn(*xs) and each J_i(fn)^T dy, by autodiff; NotImplementedError where none exists."""
        raise NotImplementedError(f"{self.library} has no autodiff")

    @property
    def xp(self) -> Any:
        """The library's NumPy-like array namespace."""
        return np

    def fill_scaled(self, out: Any, source: Any, scale: float, dtype: str) -> Any:
        """``source * scale`` (float32) rounded to ``dtype``, written into ``out`` (new when None): one pass."""
        if out is None:
            out = self.xp.empty(source.shape, dtype=dt.np_dtype(dtype))
        self.xp.multiply(source, np.float32(scale), out=out, casting="unsafe")
        return out

    def index_array(self, index: np.ndarray, device: str) -> Any:
        """An int64 index array (the cross-entropy targets) on ``device``."""
        return np.asarray(index, dtype=np.int64)

    def nll(self, log_p: Any, target: Any, ignore_index: int) -> Any:
        """-log_p[row, target[row]] per row, 0 where target is ``ignore_index``: a derived loss."""
        xp = self.xp
        ignored = target == ignore_index
        picked = xp.take_along_axis(log_p, xp.where(ignored, 0, target)[:, None], axis=-1)[:, 0]
        return xp.where(ignored, xp.zeros_like(picked), -picked)

    def scatter_rows(self, target: Any, values: Any, like: Any, ignore_index: int) -> Any:
        """An array shaped like ``like``: ``values[row]`` at (row, target[row]), 0 elsewhere and on ignored rows."""
        xp = self.xp
        columns = xp.arange(like.shape[-1])[None, :]
        hit = (columns == target[:, None]) & (target[:, None] != ignore_index)
        return xp.where(hit, values[:, None], xp.zeros((), dtype=like.dtype)).astype(like.dtype)

    def randn(self, shape: tuple, dtype: str, device: str, seed: int) -> Any:
        """Standard-normal data generated without a float64 copy of the whole array."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(shape, dtype=np.float32)
        return self.from_numpy(x, device, dtype) if dtype != "float32" else x

    def reset_peak_memory(self, device: str) -> None:
        """Start a new peak-memory window on ``device`` (only CUDA tracks one)."""

    def peak_memory(self, device: str) -> Optional[int]:
        """Peak bytes allocated on ``device`` since ``reset_peak_memory``, if tracked."""
        return None

    def release_cached(self, device: str) -> None:
        """Hand back the device memory the library's allocator keeps for reuse (nothing on a CPU)."""

    def planned_peak(self, fn: Callable, args: tuple) -> Optional[int]:
        """Device bytes the compiler plans for ``fn(*args)`` beyond its arguments, where a compiler plans them."""
        return None
