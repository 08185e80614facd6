"""Call one backend operation on NumPy inputs, through its library's adapter.

Both the correctness suite and the pytest front end go through ``call``; it
runs inside an isolated worker or in-process alike. The output is validated
against the contract (array type, shape, dtype, device) before it is brought
back to NumPy: a backend that returns the wrong thing fails here with the
reason, rather than being judged on garbage.

``route`` says how an op is obtained from a backend, the way a user of it
would: its own function ("explicit"), a fused forward+backward ("fused"),
composed from its other functions ("derived": log_softmax then a gather for
the loss, log_softmax's VJP for the gradient), or autodiff (torch, jax).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .. import errors
from ..core import adapters, registry
from ..backend import IGNORE_INDEX, Backend
from ..core.isolation import BackendFailure

_FORWARD_OF = {"softmax_vjp": "softmax", "log_softmax_vjp": "log_softmax"}


def route(backend: Backend, op: str) -> Optional[str]:
    """How ``op`` is obtained from ``backend`` ("explicit", "fused", "derived", "autodiff"), or None.

    An explicit VJP takes (y, dy): the forward output and the cotangent; an
    autodiff one takes (x, dy) and differentiates the forward. The loss and
    its gradient take the logits, the targets and (for the gradient) dloss.
    """
    has = backend.function
    autodiff = backend.library in adapters.autodiff_libraries()
    if op in ("softmax", "log_softmax"):
        return "explicit" if has(op) else None
    if op in _FORWARD_OF:
        forward = has(_FORWARD_OF[op])
        return "explicit" if forward and has(op) else "autodiff" if forward and autodiff else None
    if op == "cross_entropy":
        return ("explicit" if has("cross_entropy") else "fused" if has("cross_entropy_fwd_bwd")
                else "derived" if has("log_softmax") else None)
    if op == "ce_grad":
        if has("cross_entropy_fwd_bwd"):
            return "fused"
        if autodiff and has("cross_entropy"):
            return "autodiff"
        if has("log_softmax") and has("log_softmax_vjp"):
            return "derived"
        return "autodiff" if autodiff and has("log_softmax") else None
    raise ValueError(f"unknown op {op!r}")


def supports(backend: Backend, op: str) -> bool:
    """Whether the suite can exercise ``op`` on ``backend`` at all."""
    return route(backend, op) is not None


def options_unsupported(backend: Backend, op: str, options: Any, how: Optional[str] = None) -> Optional[str]:
    """None when ``backend`` computes ``op`` (cross_entropy, ce_grad) under loss ``options`` by its route, else why not.

    Only the backend's own loss functions compute an option (they declare
    ``loss_options``); the derived routes (log_softmax and a gather, its VJP)
    compute none, so any option there is unsupported.
    """
    if options is None or not options.active():
        return None
    from ..loss_options import unsupported

    how = how or route(backend, op)
    own = how in ("explicit", "fused") or (how == "autodiff" and backend.cross_entropy is not None)
    reason = unsupported(options, backend.loss_options if own else ())
    return reason if reason is None or own else f"{reason} (route {how})"


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


def _pair(result: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise BackendFailure(f"{what} returned {type(result).__name__}, not a (loss, dlogits) pair", "invalid")
    return result[0], result[1]


def cross_entropy_call(backend: Backend, adapter: adapters.Adapter, op: str, how: str,
                       x: Any, target: Any, dloss: Any, dy: Any = None, options: Any = None) -> Any:
    """The loss (op "cross_entropy") or its gradient ("ce_grad") of 2-D logits, by route ``how``.

    ``dy`` is -dloss * onehot(target) as an array like ``x``, for the derived
    gradient (the cotangent of log_softmax); it is built here when not given.
    ``options`` (a ``CrossEntropyOptions``) reaches the backend's own loss
    functions as ``options=`` only when it is not the plain loss, so plugins
    that know nothing of options keep working; an option the backend does
    not declare raises ``NotAvailable`` with the reason rather than being
    silently dropped (the derived and autodiff routes compute none).
    """
    if options is not None and options.active():
        # Only the backend's own loss functions can compute an option; the derived route computes none.
        reason = options_unsupported(backend, op, options, how)
        if reason is not None:
            raise errors.NotAvailable(reason)
        if how == "explicit" and op == "cross_entropy":
            return backend.cross_entropy(x, target, ignore_index=IGNORE_INDEX, options=options)
        if how == "fused":
            pair = _pair(backend.cross_entropy_fwd_bwd(x, target, dloss, ignore_index=IGNORE_INDEX, options=options), "cross_entropy_fwd_bwd")
            return pair[0] if op == "cross_entropy" else pair[1]
        if how == "autodiff" and backend.cross_entropy is not None:
            return adapter.vjp(lambda a, axis=-1: backend.cross_entropy(a, target, ignore_index=IGNORE_INDEX, options=options), x, dloss, -1)
    if op == "cross_entropy":
        if how == "explicit":
            return backend.cross_entropy(x, target, ignore_index=IGNORE_INDEX)
        if how == "fused":
            return _pair(backend.cross_entropy_fwd_bwd(x, target, dloss, ignore_index=IGNORE_INDEX), "cross_entropy_fwd_bwd")[0]
        return adapter.nll(backend.log_softmax(x, axis=-1), target, IGNORE_INDEX)
    if how == "fused":
        return _pair(backend.cross_entropy_fwd_bwd(x, target, dloss, ignore_index=IGNORE_INDEX), "cross_entropy_fwd_bwd")[1]
    if how == "autodiff" and backend.cross_entropy is not None:
        return adapter.vjp(lambda a, axis=-1: backend.cross_entropy(a, target, ignore_index=IGNORE_INDEX), x, dloss, -1)
    if dy is None:
        dy = adapter.scatter_rows(target, -dloss, x, IGNORE_INDEX)
    if how == "autodiff":
        return adapter.vjp(backend.log_softmax, x, dy, -1)
    return backend.log_softmax_vjp(backend.log_softmax(x, axis=-1), dy, axis=-1)


def call(
    backend_name: str,
    plugin_files: Sequence[str],
    device: str,
    dtype: str,
    op: str,
    inputs: Mapping[str, np.ndarray],
    axis: int = -1,
    strided: bool = False,
    options: Any = None,
) -> np.ndarray:
    """Run ``op`` of a registered backend and return its validated output as NumPy.

    ``inputs`` holds "x" for value ops and autodiff VJPs, "y" for explicit
    VJPs, and "dy" for every gradient; the cross-entropy ops also take
    "target" (an index per row, reduced axis last) and "dloss". Each array is
    converted to the backend's library, device and ``dtype``; ``strided``
    makes the inputs non-contiguous. ``options`` (a ``CrossEntropyOptions``)
    are the loss options of the cross-entropy ops; under a reduction the loss
    and "dloss" are 0-d.
    """
    with np.errstate(all="ignore"):  # overflow and NaN are what the suite measures, not news
        return _call(registry.cached(plugin_files).get(backend_name), device, dtype, op, inputs, axis, strided, options)


def _rows(a: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(a, axis, -1)
    return moved.reshape(-1, moved.shape[-1]) if moved.ndim else moved.reshape(1, 1)


def loss_shape(rows: int, options: Any) -> tuple[int, ...]:
    """The shape of the loss of ``rows`` rows: one per row, or () under a reduction (mean, sum)."""
    return () if options is not None and options.reduction != "none" else (rows,)


def _call(backend: Backend, device: str, dtype: str, op: str, inputs: Mapping[str, np.ndarray], axis: int, strided: bool,
          options: Any = None) -> np.ndarray:
    adapter = adapters.get(backend.library)
    how = route(backend, op)
    if how is None:
        raise ValueError(f"backend {backend.name!r} has no {op}")
    if op in ("cross_entropy", "ce_grad"):
        # The loss takes 2-D logits (rows, vocab): any other layout is viewed so first.
        x = adapter.from_numpy(_rows(inputs["x"], axis), device, dtype, strided=strided)
        target = adapter.index_array(inputs["target"], device)
        dloss = adapter.from_numpy(inputs["dloss"], device, dtype)
        dy = adapter.from_numpy(_rows(inputs["dy"], axis), device, dtype) if "dy" in inputs else None
        out = cross_entropy_call(backend, adapter, op, how, x, target, dloss, dy, options)
        check_output(adapter, out, x.shape if op == "ce_grad" else loss_shape(x.shape[0], options), dtype, device)
        adapter.sync(device)
        result = adapter.to_numpy(out)
        if op == "ce_grad":
            moved = np.moveaxis(inputs["x"], axis, -1)
            result = np.moveaxis(result.reshape(moved.shape), -1, axis)
        return result
    args = {name: adapter.from_numpy(value, device, dtype, strided=strided) for name, value in inputs.items()}
    shape = next(iter(inputs.values())).shape
    if op in ("softmax", "log_softmax"):
        out = backend.function(op)(args["x"], axis=axis)
    elif how == "explicit":
        out = backend.function(op)(args["y"], args["dy"], axis=axis)
    else:
        out = adapter.vjp(backend.function(_FORWARD_OF[op]), args["x"], args["dy"], axis)
    check_output(adapter, out, shape, dtype, device)
    adapter.sync(device)
    return adapter.to_numpy(out)
