"""lse: the division-free form exp(x - logsumexp(x)).

logsumexp itself is shifted (max + log(sum(exp(x - max)))), so nothing
overflows, but the result is not shift-invariant: rounding lse = max + log s
costs |lse| units of roundoff, so rows with large offsets (1e4 + randn) lose
accuracy that max-shift keeps. The suite records how much.
"""

import numpy as np

from softmax_bench import DTYPES, Backend

from ._numpy_common import log_softmax_vjp, softmax_vjp, working_dtype


def logsumexp(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    finite_m = np.where(np.isfinite(m), m, 0)
    return finite_m + np.log(np.sum(np.exp(x - finite_m), axis=axis, keepdims=True))


def softmax(x, axis=-1):
    xw = x.astype(working_dtype(x), copy=False)
    return np.exp(xw - logsumexp(xw, axis)).astype(x.dtype, copy=False)


def log_softmax(x, axis=-1):
    xw = x.astype(working_dtype(x), copy=False)
    return (xw - logsumexp(xw, axis)).astype(x.dtype, copy=False)


backend = Backend(
    name="lse",
    library="numpy",
    devices=("cpu",),
    dtypes=DTYPES,
    softmax=softmax,
    log_softmax=log_softmax,
    softmax_vjp=softmax_vjp,
    log_softmax_vjp=log_softmax_vjp,
    description="exp(x - logsumexp(x)): division-free, not shift-invariant",
)
