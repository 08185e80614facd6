"""Planted flaws for the linear cross-entropy check (issue 21): each must fail a named case.

- ``lce-drops-last-chunk``: a blocked implementation that forgets the last
  partial vocabulary chunk (fails when V is not a multiple of the chunk);
- ``lce-mean-over-n``: divides the gradient by N where only non-ignored rows count;
- ``lce-ignores-nothing``: treats ignore_index rows as ordinary rows (target clamped to 0);
- ``lce-dweight-bf16-accumulator``: sums dweight token by token in bfloat16 (fails ``long_batch``).
"""

import numpy as np

from softmax_bench import Backend

CHUNK = 50  # divides the 100-token vocabularies of most cases, not V = 1031


def _p_minus_onehot(z, target, ignore_index, honour_ignore=True):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    safe = np.where(target == ignore_index, 0, target)
    loss = np.log(s[:, 0]) - z[np.arange(len(z)), safe]
    g = e / s
    g[np.arange(len(z)), safe] -= 1
    if honour_ignore:
        g[target == ignore_index] = 0
        loss[target == ignore_index] = 0
    return loss, g


def _fwd_bwd(flaw):
    def fwd_bwd(hidden, weight, target, dloss, ignore_index=-100, bias=None):
        v = weight.shape[0]
        if flaw == "drop":
            kept = (v // CHUNK) * CHUNK or v  # the planted bug: the partial chunk at the end is skipped
            z = np.full((len(hidden), v), -np.inf, dtype=hidden.dtype)
            z[:, :kept] = hidden @ weight[:kept].T
        else:
            z = hidden @ weight.T
        loss, g = _p_minus_onehot(z, target, ignore_index, honour_ignore=flaw != "ignore")
        g = g * dloss[:, None]
        if flaw == "mean":
            kept_rows = max(int((target != ignore_index).sum()), 1)
            g = g * kept_rows / len(target)  # the planted bug: a mean over N, not over the counted rows
        return loss.astype(hidden.dtype), (g @ weight).astype(hidden.dtype), (g.T @ hidden).astype(hidden.dtype)
    return fwd_bwd


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


backends = [Backend(name=f"lce-{flaw}", library="numpy", devices=("cpu",), dtypes=("float32", "float64"),
                    softmax=_softmax, linear_cross_entropy_fwd_bwd=_fwd_bwd(key))
            for flaw, key in (("drops-last-chunk", "drop"), ("mean-over-n", "mean"), ("ignores-nothing", "ignore"))]


def _dweight_in_bfloat16(hidden, weight, target, dloss, ignore_index=-100, bias=None):
    """Correct loss and dhidden; dweight summed token by token into a bfloat16 accumulator (the planted bug)."""
    import ml_dtypes

    loss, g = _p_minus_onehot(hidden.astype(np.float32) @ weight.astype(np.float32).T, target, ignore_index)
    g = g * dloss.astype(np.float32)[:, None]
    acc = np.zeros(weight.shape, dtype=ml_dtypes.bfloat16)
    for i in range(len(hidden)):
        acc = (acc.astype(np.float32) + np.outer(g[i], hidden[i].astype(np.float32))).astype(ml_dtypes.bfloat16)
    dtype = hidden.dtype
    return loss.astype(dtype), (g @ weight.astype(np.float32)).astype(dtype), acc.astype(dtype)


backends.append(Backend(name="lce-dweight-bf16-accumulator", library="numpy", devices=("cpu",),
                        dtypes=("float32", "bfloat16"), softmax=_softmax,
                        linear_cross_entropy_fwd_bwd=_dweight_in_bfloat16))
