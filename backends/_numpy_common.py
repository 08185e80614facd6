"""What the NumPy backends share: the working precision and the closed-form VJPs."""

from __future__ import annotations

import numpy as np


def working_dtype(x: np.ndarray) -> np.dtype:
    """float32 for half-precision inputs (as torch does), else the input's own dtype."""
    return np.promote_types(x.dtype, np.float32) if x.dtype.itemsize < 4 else x.dtype


def softmax_vjp(y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    """dx = y * (dy - sum(dy * y)), the softmax Jacobian applied to dy."""
    w = working_dtype(y)
    yw, dyw = y.astype(w, copy=False), dy.astype(w, copy=False)
    dx = yw * (dyw - np.sum(dyw * yw, axis=axis, keepdims=True))
    return dx.astype(y.dtype, copy=False)


def log_softmax_vjp(y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    """dx = dy - exp(y) * sum(dy), where y is the log_softmax output."""
    w = working_dtype(y)
    yw, dyw = y.astype(w, copy=False), dy.astype(w, copy=False)
    dx = dyw - np.exp(yw) * np.sum(dyw, axis=axis, keepdims=True)
    return dx.astype(y.dtype, copy=False)
