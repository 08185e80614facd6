"""max-shift: the accurate safe softmax of Blanchard, Higham & Higham (2021).

e = exp(x - max); s = the sum of e without the max term (which is exactly 1);
softmax = e / (1 + s); log_softmax = (x - max) - log1p(s); the cross-entropy
loss is log1p(s) - (x_target - max). Leaving the max
term out of s keeps log1p accurate when the rest of the row is tiny
(log_softmax([0, -20]) is -2.06e-9, not 0). Half precision works in float32.
"""

import numpy as np

from softmax_bench import DTYPES, Backend

from ._numpy_common import log_softmax_vjp, softmax_vjp, working_dtype


def _shifted(x, axis):
    """(x - max, exp(x - max), s) with s the sum of exp(x - max) without the max term."""
    xw = x.astype(working_dtype(x), copy=False)
    top = np.argmax(xw, axis=axis, keepdims=True)
    z = xw - np.take_along_axis(xw, top, axis=axis)
    e = np.exp(z)
    np.put_along_axis(e, top, 0, axis=axis)
    s = np.sum(e, axis=axis, keepdims=True)
    np.put_along_axis(e, top, 1, axis=axis)
    return z, e, s


def softmax(x, axis=-1):
    if x.shape[axis] == 0:
        return x.copy()
    _, e, s = _shifted(x, axis)
    e /= 1 + s
    return e.astype(x.dtype, copy=False)


def log_softmax(x, axis=-1):
    if x.shape[axis] == 0:
        return x.copy()
    z, _, s = _shifted(x, axis)
    return (z - np.log1p(s)).astype(x.dtype, copy=False)


def cross_entropy(logits, target, ignore_index=-100):
    """(max - x_target) + log1p(s): -log_softmax at the target, without the rest of the row."""
    if logits.shape[-1] == 0:
        return np.zeros(logits.shape[:1], dtype=logits.dtype)
    z, _, s = _shifted(logits, -1)
    ignored = target == ignore_index
    picked = np.take_along_axis(z, np.where(ignored, 0, target)[:, None], axis=-1)
    loss = np.where(ignored[:, None], 0, np.log1p(s) - picked)[:, 0]
    return loss.astype(logits.dtype, copy=False)


backend = Backend(
    name="max-shift",
    library="numpy",
    devices=("cpu",),
    dtypes=DTYPES,
    softmax=softmax,
    log_softmax=log_softmax,
    softmax_vjp=softmax_vjp,
    log_softmax_vjp=log_softmax_vjp,
    cross_entropy=cross_entropy,
    description="exp(x - max) / (1 + s), s without the max term (Blanchard-Higham-Higham)",
)
