"""Three subtly wrong cross-entropies, each built on a correct max-shift softmax.

- ``ce-no-onehot``: the fused gradient forgets the onehot: dloss * softmax.
- ``ce-log-of-softmax``: the loss as -log(softmax(x)[target]): softmax underflows
  to 0 on a large margin ([0, 200]) and the loss becomes inf.
- ``ce-no-ignore``: ignore_index is not honoured: target -100 indexes the row
  from its end (NumPy's negative indexing) and the loss is not zeroed.
"""

import numpy as np

from softmax_bench import Backend
from softmax_bench.backends import max_shift


def _rows(target):
    return np.arange(len(target))


def no_onehot_fwd_bwd(logits, target, dloss, ignore_index=-100):
    loss = max_shift.cross_entropy(logits, target, ignore_index)
    keep = (target != ignore_index)[:, None]
    grad = np.where(keep, dloss[:, None] * max_shift.softmax(logits), 0)
    return loss, grad.astype(logits.dtype)


def log_of_softmax(logits, target, ignore_index=-100):
    ignored = target == ignore_index
    with np.errstate(divide="ignore"):
        picked = np.log(max_shift.softmax(logits)[_rows(target), np.where(ignored, 0, target)])
    return np.where(ignored, 0, -picked).astype(logits.dtype)


def no_ignore(logits, target, ignore_index=-100):
    return -max_shift.log_softmax(logits)[_rows(target), target]


def _backend(name, **ops):
    return Backend(name=name, library="numpy", devices=("cpu",), dtypes=("float32", "float64"),
                   softmax=max_shift.softmax, log_softmax=max_shift.log_softmax, **ops)


backends = [
    _backend("ce-no-onehot", cross_entropy=max_shift.cross_entropy, cross_entropy_fwd_bwd=no_onehot_fwd_bwd),
    _backend("ce-log-of-softmax", cross_entropy=log_of_softmax),
    _backend("ce-no-ignore", cross_entropy=no_ignore),
]
