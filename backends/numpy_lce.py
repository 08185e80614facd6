"""A NumPy fused linear cross-entropy that never holds the N x V logits (issue 21).

Tokens are processed in blocks of ``BLOCK`` rows: each block's logits
(BLOCK x V) are formed, turned into the loss and dlogits with the shifted
log-sum-exp, and folded into dhidden and dweight before the next block.
The workspace is one block's logits (BLOCK * V * itemsize) instead of
N * V * itemsize: that is the headline the op's timing measures.
"""

from __future__ import annotations

import numpy as np

from softmax_bench import Backend

# Rows per block: at V = 128256 float32 a block's logits are 64 MiB, small
# beside the logits of a 4096-token batch (2 GiB) yet large enough for BLAS.
BLOCK = 128
# Vocabulary rows of dweight updated per product (a VSLICE x H temporary).
VSLICE = 4096


def _block_grad(z: np.ndarray, target: np.ndarray, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row loss and p - onehot of one block of logits z (in place in z), 0 on ignored rows."""
    ignored = target == ignore_index
    safe = np.where(ignored, 0, target)
    m = z.max(axis=1, keepdims=True)
    z -= m  # shift by the max: no overflow (ANCHORS case 1)
    picked = np.take_along_axis(z, safe[:, None], axis=1)[:, 0]
    np.exp(z, out=z)
    s = z.sum(axis=1, keepdims=True)
    loss = np.log(s[:, 0]) - picked
    z /= s
    z[np.arange(len(z)), safe] -= 1.0
    z[ignored] = 0.0
    loss[ignored] = 0.0
    return loss, z


def linear_cross_entropy_fwd_bwd(hidden, weight, target, dloss, ignore_index=-100, bias=None):
    """(loss, dhidden, dweight), and dbias after them when a bias is given, BLOCK tokens at a time."""
    n = hidden.shape[0]
    loss = np.empty(n, dtype=hidden.dtype)
    dhidden = np.empty_like(hidden)
    dweight = np.zeros_like(weight)
    dbias = None if bias is None else np.zeros_like(bias)
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        z = hidden[rows] @ weight.T
        if bias is not None:
            z += bias
        loss[rows], g = _block_grad(z, target[rows], ignore_index)
        g *= dloss[rows, None]
        dhidden[rows] = g @ weight
        # g.T @ h in one product would allocate a whole V x H temporary (the
        # size of dweight) per block: add it a vocabulary slice at a time.
        for v0 in range(0, weight.shape[0], VSLICE):
            dweight[v0:v0 + VSLICE] += g[:, v0:v0 + VSLICE].T @ hidden[rows]
        if dbias is not None:
            dbias += g.sum(axis=0)
    return (loss, dhidden, dweight) + (() if dbias is None else (dbias,))


def linear_cross_entropy(hidden, weight, target, ignore_index=-100, bias=None):
    """Per-row loss, BLOCK tokens at a time (the gradient work is skipped)."""
    n = hidden.shape[0]
    loss = np.empty(n, dtype=hidden.dtype)
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        z = hidden[rows] @ weight.T
        if bias is not None:
            z += bias
        ignored = target[rows] == ignore_index
        m = z.max(axis=1, keepdims=True)
        picked = np.take_along_axis(z, np.where(ignored, 0, target[rows])[:, None], axis=1)[:, 0]
        out = m[:, 0] + np.log(np.exp(z - m).sum(axis=1)) - picked
        loss[rows] = np.where(ignored, 0.0, out)
    return loss


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True, initial=-np.inf))
    return e / e.sum(axis=axis, keepdims=True)


backend = Backend(name="numpy-lce-blocked", library="numpy", devices=("cpu",), dtypes=("float32", "float64"),
                  softmax=_softmax, linear_cross_entropy=linear_cross_entropy,
                  linear_cross_entropy_fwd_bwd=linear_cross_entropy_fwd_bwd, linear_cross_entropy_bias=True,
                  description=f"NumPy, {BLOCK} tokens at a time: never the N x V logits")
