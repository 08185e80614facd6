"""Call one backend operation on NumPy inputs, through its library's adapter.

Both the correctness suite and the pytest front end go through ``call``; it
runs inside an isolated worker or in-process alike. The output is validated
against the contract (array type, shape, dtype, device) before it is brought
back to NumPy: a backend that returns the wrong thing fails here with the
reason, rather than being judged on garbage.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from . import adapters, registry
from .backend import VALUE_OPS, Backend
from .isolation import BackendFailure

_FORWARD_OF = {"softmax_vjp": "softmax", "log_softmax_vjp": "log_softmax", "ce_grad": "log_softmax"}
_VJP_OF = {"softmax_vjp": "softmax_vjp", "log_softmax_vjp": "log_softmax_vjp", "ce_grad": "log_softmax_vjp"}
_AUTODIFF_LIBRARIES = ("torch", "jax")


def gradient_path(backend: Backend, op: str) -> Optional[str]:
    """How ``op`` is obtained: "explicit" (the backend's own function), "autodiff", or None.

    An explicit VJP takes (y, dy): the forward output and the cotangent. An
    autodiff VJP takes (x, dy) and differentiates the backend's forward op.
    """
    if backend.function(_VJP_OF[op]) is not None and backend.function(_FORWARD_OF[op]) is not None:
        return "explicit"
    if backend.library in _AUTODIFF_LIBRARIES and backend.function(_FORWARD_OF[op]) is not None:
        return "autodiff"
    return None


def supports(backend: Backend, op: str) -> bool:
    """Whether the suite can exercise ``op`` on ``backend`` at all."""
    if op in VALUE_OPS:
        return backend.function(op) is not None
    return gradient_path(backend, op) is not None


def check_output(adapter: adapters.Adapter, out: Any, shape: tuple, dtype: str, device: str) -> None:
    """Raise ``BackendFailure`` unless ``out`` is a ``dtype`` array of ``shape`` on ``device``."""
    if not adapter.is_array(out):
        raise BackendFailure(f"returned {type(out).__module__}.{type(out).__name__}, not a {adapter.library} array", "invalid")
    if tuple(out.shape) != tuple(shape):
        raise BackendFailure(f"returned shape {tuple(out.shape)} for input shape {tuple(shape)}", "invalid")
    got = adapter.dtype_name(out)
    if got != dtype:
        raise BackendFailure(f"returned {got} for {dtype} input", "invalid")
    where = adapter.device_of(out)
    if where != device:
        raise BackendFailure(f"returned an array on {where}, not {device}", "invalid")


def call(
    backend_name: str,
    plugin_files: Sequence[str],
    device: str,
    dtype: str,
    op: str,
    inputs: Mapping[str, np.ndarray],
    axis: int = -1,
    strided: bool = False,
) -> np.ndarray:
    """Run ``op`` of a registered backend and return its validated output as NumPy.

    ``inputs`` holds "x" for value ops, autodiff VJPs and ``ce_grad``, "y"
    for explicit VJPs, and "dy" for every gradient. Each is converted to the
    backend's library, device and ``dtype``; ``strided`` makes the inputs
    non-contiguous.
    """
    with np.errstate(all="ignore"):  # overflow and NaN are what the suite measures, not news
        return _call(registry.cached(plugin_files).get(backend_name), device, dtype, op, inputs, axis, strided)


def _call(backend: Backend, device: str, dtype: str, op: str, inputs: Mapping[str, np.ndarray], axis: int, strided: bool) -> np.ndarray:
    adapter = adapters.get(backend.library)
    args = {name: adapter.from_numpy(value, device, dtype, strided=strided) for name, value in inputs.items()}
    shape = next(iter(inputs.values())).shape
    if op in VALUE_OPS:
        out = backend.function(op)(args["x"], axis=axis)
    elif op == "ce_grad" and gradient_path(backend, op) == "explicit":
        out = backend.log_softmax_vjp(backend.log_softmax(args["x"], axis=axis), args["dy"], axis=axis)
    elif gradient_path(backend, op) == "explicit":
        out = backend.function(op)(args["y"], args["dy"], axis=axis)
    elif gradient_path(backend, op) == "autodiff":
        out = adapter.vjp(backend.function(_FORWARD_OF[op]), args["x"], args["dy"], axis)
    else:
        raise ValueError(f"backend {backend.name!r} has no {op}")
    check_output(adapter, out, shape, dtype, device)
    adapter.sync(device)
    return adapter.to_numpy(out)
