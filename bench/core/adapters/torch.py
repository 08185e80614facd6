"""PyTorch tensors on the CPU or a CUDA device; autograd for the derived gradients; CUDA's peak-memory counter."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, Optional

import numpy as np

from ...errors import NotAvailable
from .. import dtypes as dt
from .base import Adapter


class TorchAdapter(Adapter):
    library = "torch"
    packages = ("torch",)
    autodiff = True

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

    def vjp_many(self, fn: Callable, xs: tuple, dy: Any) -> tuple[Any, tuple]:
        xs = tuple(x.detach().requires_grad_(True) for x in xs)
        with self.torch.enable_grad():
            y = self.graph(fn(*xs))
            # An input the graph never used gets zeros, so the check names the wrong gradient.
            grads = self.torch.autograd.grad(y, xs, grad_outputs=dy, allow_unused=True, materialize_grads=True)
        return y.detach(), tuple(grads)

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


ADAPTER = TorchAdapter
