"""Array adapters: one per library, owning conversion, device transfer and sync.

The engine speaks NumPy; a backend speaks its own library. An adapter moves a
NumPy array to the backend's library, device and dtype, brings results back,
waits for queued device work, and knows how to make a plain copy (the
bandwidth ceiling) and a gradient by autodiff. Libraries are imported on first
use only, so listing backends never pulls in torch, jax or cupy until their
availability is asked for.
"""

from __future__ import annotations

import importlib
from functools import cached_property, lru_cache
from typing import Any, Callable, Optional

import numpy as np

from . import dtypes as dt
from ..errors import NotAvailable, describe_exception, first_line


def library_unavailable(library: str) -> Optional[str]:
    """``None`` if ``library`` (a module name) imports, else the one-line reason it does not."""
    try:
        importlib.import_module(library)
    except Exception as exc:  # an import can fail with anything, not only ImportError
        return f"{library} is not importable ({describe_exception(exc)})"
    return None


class Adapter:
    """Base: the NumPy adapter. Other libraries override what differs."""

    library = "numpy"
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


class TorchAdapter(Adapter):
    library = "torch"

    @cached_property
    def torch(self):
        import torch

        return torch

    def unavailable(self, device: str) -> Optional[str]:
        if device == "cuda" and not self.torch.cuda.is_available():
            return "torch sees no CUDA device"
        return None

    def _dtype(self, dtype: str):
        return getattr(self.torch, dtype)

    def from_numpy(self, x: np.ndarray, device: str, dtype: str, strided: bool = False) -> Any:
        torch = self.torch
        x = np.asarray(x)
        # A writable copy (the cases are read-only) in a dtype torch takes; float32 and float16
        # stay as they are (a float64 copy of a 4096 x 256000 input is 8 GB and seconds).
        keep = x.dtype if x.dtype in (np.float64, np.float32, np.float16) else np.float64
        t = torch.from_numpy(np.array(x, dtype=keep))
        t = t.to(device=device, dtype=self._dtype(dtype))
        if strided:
            wide = torch.zeros(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype, device=device)
            wide[..., ::2] = t
            return wide[..., ::2]
        return t

    def to_numpy(self, y: Any) -> np.ndarray:
        y = y.detach().cpu()
        if y.dtype == self.torch.bfloat16:
            return y.float().numpy().astype(dt.np_dtype("bfloat16"))
        return y.numpy()

    def is_array(self, y: Any) -> bool:
        return isinstance(y, self.torch.Tensor)

    def device_of(self, y: Any) -> str:
        return y.device.type

    def sync(self, device: str) -> None:
        if device == "cuda":
            self.torch.cuda.synchronize()

    def replicate(self, x: Any, n: int) -> list:
        block = x.unsqueeze(0).expand(n, *x.shape).contiguous()
        return list(block.unbind(0))

    def copy_op(self, like: Any) -> Callable[[Any], Any]:
        out = self.torch.empty_like(like)
        return lambda x: out.copy_(x)

    def vjp(self, fn: Callable, x: Any, dy: Any, axis: int) -> Any:
        x = x.detach().requires_grad_(True)
        (dx,) = self.torch.autograd.grad(self.graph(fn(x, axis=axis)), x, grad_outputs=dy)
        return dx

    def graph(self, y: Any) -> Any:
        """``y``, if autograd can differentiate it; ``NotAvailable`` for a kernel that made no graph."""
        if isinstance(y, self.torch.Tensor) and not y.requires_grad:
            raise NotAvailable("no autograd graph (a kernel without a backward): give the backend its VJP "
                               "(softmax_vjp, log_softmax_vjp) to check and time the gradient")
        return y

    def index_array(self, index: np.ndarray, device: str) -> Any:
        return self.torch.from_numpy(np.array(index, dtype=np.int64)).to(device)  # a writable copy

    def fill_scaled(self, out: Any, source: Any, scale: float, dtype: str) -> Any:
        if out is None:
            out = self.torch.empty(source.shape, dtype=self._dtype(dtype), device=source.device)
        return self.torch.mul(source, scale, out=out)

    def nll(self, log_p: Any, target: Any, ignore_index: int) -> Any:
        return self.torch.nn.functional.nll_loss(log_p, target, reduction="none", ignore_index=ignore_index)

    def scatter_rows(self, target: Any, values: Any, like: Any, ignore_index: int) -> Any:
        out = self.torch.zeros_like(like)
        kept = target != ignore_index
        out[kept] = out[kept].scatter(1, target[kept][:, None], values[kept][:, None].to(like.dtype))
        return out

    def randn(self, shape: tuple, dtype: str, device: str, seed: int) -> Any:
        gen = self.torch.Generator(device=device).manual_seed(seed)
        return self.torch.randn(shape, generator=gen, device=device, dtype=self._dtype(dtype))

    def reset_peak_memory(self, device: str) -> None:
        if device == "cuda":
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
            self._base = self.torch.cuda.memory_allocated()

    def release_cached(self, device: str) -> None:
        if device == "cuda":
            import gc

            gc.collect()
            self.torch.cuda.empty_cache()

    def peak_memory(self, device: str) -> Optional[int]:
        # Beyond what was allocated at the reset (the inputs), like CuPy's figure.
        if device == "cuda":
            self.torch.cuda.synchronize()
            return int(self.torch.cuda.max_memory_allocated() - getattr(self, "_base", 0))
        return None


class JaxAdapter(Adapter):
    library = "jax"
    # JAX promises no order between separate computations (the CPU client may
    # run them concurrently), so the timer blocks on every output of a sample.
    ordered = False

    @cached_property
    def jax(self):
        import jax

        # float64 must be float64: without x64, JAX silently computes in float32.
        # Set once, when this adapter first touches jax, before any array exists.
        jax.config.update("jax_enable_x64", True)
        return jax

    def _device(self, device: str):
        platform = "gpu" if device == "cuda" else "cpu"
        return self.jax.devices(platform)[0]

    def unavailable(self, device: str) -> Optional[str]:
        if device == "cuda":
            try:
                self.jax.devices("gpu")
            except RuntimeError:
                return "jax sees no GPU (CPU-only jaxlib or no device)"
        return None

    def from_numpy(self, x: np.ndarray, device: str, dtype: str, strided: bool = False) -> Any:
        # JAX arrays have no strides: the strided layout is the library's own business.
        x = np.asarray(x).astype(dt.np_dtype(dtype))
        return self.jax.device_put(x, self._device(device))

    def is_array(self, y: Any) -> bool:
        return isinstance(y, self.jax.Array)

    def device_of(self, y: Any) -> str:
        platform = next(iter(y.devices())).platform
        return "cuda" if platform == "gpu" else platform

    def sync(self, device: str) -> None:
        # JAX dispatch is asynchronous per array; the timer blocks on results instead.
        pass

    def wait(self, result: Any, device: str) -> Any:
        return self.jax.block_until_ready(result)

    def replicate(self, x: Any, n: int) -> list:
        # Slices of one JAX array would be views materialised lazily; an explicit
        # copy per replica gives each its own buffer.
        jnp = self.jax.numpy
        return self.jax.block_until_ready([jnp.array(x, copy=True) for _ in range(n)])

    def copy_op(self, like: Any) -> Callable[[Any], Any]:
        # A jitted identity is elided by XLA; negation is the cheapest op that
        # must read x and write a new array of the same size.
        negate = self.jax.jit(lambda a: -a)
        negate(like).block_until_ready()
        return negate

    def vjp(self, fn: Callable, x: Any, dy: Any, axis: int) -> Any:
        _, pullback = self.jax.vjp(lambda a: fn(a, axis=axis), x)
        return pullback(dy)[0]

    @property
    def xp(self) -> Any:
        return self.jax.numpy

    def index_array(self, index: np.ndarray, device: str) -> Any:
        return self.jax.device_put(np.asarray(index, dtype=np.int64), self._device(device))

    def fill_scaled(self, out: Any, source: Any, scale: float, dtype: str) -> Any:
        # JAX arrays are immutable: a new one each time (XLA reuses the freed buffer).
        jnp = self.jax.numpy
        return (source * jnp.float32(scale)).astype(getattr(jnp, dtype))

    def planned_peak(self, fn: Callable, args: tuple) -> Optional[int]:
        # XLA's buffer assignment for the whole call (jitted functions inside are inlined):
        # outputs and temporaries, less what aliases an argument. JAX keeps no peak it can reset.
        stats = self.jax.jit(fn).lower(*args).compile().memory_analysis()
        if stats is None:
            return None
        return int(stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes)

    def randn(self, shape: tuple, dtype: str, device: str, seed: int) -> Any:
        jnp = self.jax.numpy
        key = self.jax.random.PRNGKey(seed)
        with self.jax.default_device(self._device(device)):
            return self.jax.random.normal(key, shape, dtype=getattr(jnp, dtype))


class CupyAdapter(Adapter):
    library = "cupy"

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


_ADAPTERS = {"numpy": Adapter, "torch": TorchAdapter, "jax": JaxAdapter, "cupy": CupyAdapter}


@lru_cache(maxsize=None)
def get(library: str) -> Adapter:
    """The adapter for ``library`` (one of ``LIBRARIES``)."""
    return _ADAPTERS[library]()


def unavailable(library: str, device: str) -> Optional[str]:
    """Why arrays of ``library`` cannot be used on ``device`` now, or ``None``."""
    reason = library_unavailable(library)
    if reason:
        return reason
    try:
        return get(library).unavailable(device)
    except Exception as exc:
        return f"{library} on {device}: {describe_exception(exc)}"
