"""JAX arrays on the CPU or a GPU; ``jax.vjp`` for the derived gradients; XLA's compiled plan for peak memory."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, Optional

import numpy as np

from .. import dtypes as dt
from .base import Adapter


class JaxAdapter(Adapter):
    library = "jax"
    packages = ("jax", "jaxlib")
    autodiff = True
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

    def vjp_many(self, fn: Callable, xs: tuple, dy: Any) -> tuple[Any, tuple]:
        y, pullback = self.jax.vjp(fn, *xs)
        return y, tuple(pullback(dy))

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


ADAPTER = JaxAdapter
