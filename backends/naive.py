"""naive: exp(x) / sum(exp(x)), unshifted.

This is the negative control. exp runs in the input's own precision, so it
overflows once a logit passes log(max) of its dtype (88.7 in float32, 11.1 in
float16); every exp underflowing gives 0/0 = NaN; log_softmax is
log(softmax(x)), which loses the tail. The sum is accumulated in at least
float32 like every other backend here, so on ordinary inputs naive is correct
and the missing shift is its only flaw. The correctness suite must catch it.
"""

import numpy as np

from softmax_bench import DTYPES, Backend

from ._numpy_common import log_softmax_vjp, softmax_vjp, working_dtype


def softmax(x, axis=-1):
    e = np.exp(x)
    s = np.sum(e, axis=axis, keepdims=True, dtype=working_dtype(x))
    return (e / s).astype(x.dtype, copy=False)


def log_softmax(x, axis=-1):
    return np.log(softmax(x, axis=axis))


backend = Backend(
    name="naive",
    library="numpy",
    devices=("cpu",),
    dtypes=DTYPES,
    softmax=softmax,
    log_softmax=log_softmax,
    softmax_vjp=softmax_vjp,
    log_softmax_vjp=log_softmax_vjp,
    description="exp(x)/sum(exp(x)), unshifted: the negative control",
)
