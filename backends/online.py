"""online: Milakov & Gimelshein's (2018) single-pass running max and sum.

One pass over the row keeps a running max m and a sum s rescaled whenever m
grows (s = s * exp(m_old - m_new) + sum(exp(chunk - m_new))); a second pass
writes exp(x - m) / s. Rows are processed together, the vocabulary in chunks,
so the extra memory is O(rows x chunk) rather than O(rows x vocab).

A running max starts at -inf; until a finite value arrives the shift is taken
as 0, so a masked prefix (a row starting with -inf) never computes
exp(-inf - (-inf)) = NaN.

The cross-entropy is fused and chunked (as Liger-Kernel's is): one online
pass finds each row's max, rescaled sum and target logit, a second writes the
gradient dloss * (exp(x - m) / s - onehot). Rows go in blocks and the
vocabulary in chunks, so beyond the gradient itself nothing larger than one
block x chunk tile is ever allocated: no rows x vocab probability array.
"""

import numpy as np

from softmax_bench import DTYPES, Backend

from ._numpy_common import log_softmax_vjp, softmax_vjp, working_dtype

CHUNK = 4096


def _rows(x, axis):
    """x as a 2-D (rows, vocab) array in the working precision, and how to undo it."""
    moved = np.moveaxis(x, axis, -1)
    n_rows = int(np.prod(moved.shape[:-1]))
    rows = moved.reshape(n_rows, moved.shape[-1]).astype(working_dtype(x), copy=False)
    return rows, lambda y: np.moveaxis(y.reshape(moved.shape), -1, axis).astype(x.dtype, copy=False)


def _safe(m):
    return np.where(m == -np.inf, 0, m)


def _max_and_sum(rows, chunk=CHUNK):
    m = np.full((rows.shape[0], 1), -np.inf, dtype=rows.dtype)
    s = np.zeros((rows.shape[0], 1), dtype=rows.dtype)
    for start in range(0, rows.shape[1], chunk):
        block = rows[:, start : start + chunk]
        m_new = np.maximum(m, block.max(axis=1, keepdims=True))
        shift = _safe(m_new)
        s = s * np.exp(m - shift) + np.exp(block - shift).sum(axis=1, keepdims=True)
        m = m_new
    return _safe(m), s


def softmax(x, axis=-1):
    rows, back = _rows(x, axis)
    m, s = _max_and_sum(rows)
    out = np.empty_like(rows)
    for start in range(0, rows.shape[1], CHUNK):
        block = slice(start, start + CHUNK)
        np.exp(rows[:, block] - m, out=out[:, block])
        out[:, block] /= s
    return back(out)


def log_softmax(x, axis=-1):
    rows, back = _rows(x, axis)
    m, s = _max_and_sum(rows)
    # (x - m) - log s, not x - (m + log s): the latter rounds m + log s and is not shift-invariant.
    return back((rows - m) - np.log(s))


ROW_BLOCK = 64  # rows per tile of the fused cross-entropy: a tile is ROW_BLOCK x CHUNK


def _row_blocks(n_rows):
    for start in range(0, n_rows, ROW_BLOCK):
        yield slice(start, start + ROW_BLOCK)


def _loss_and_stats(rows, target, ignore_index):
    """Per row: the loss (m - x_target) + log s, and (m, s) for the gradient; one online pass."""
    m, s = _max_and_sum(rows)
    ignored = target == ignore_index
    picked = np.take_along_axis(rows, np.where(ignored, 0, target)[:, None], axis=1)
    with np.errstate(invalid="ignore"):
        loss = np.where(ignored[:, None], 0, (m - picked) + np.log(s))
    return loss[:, 0], m, s


def cross_entropy(logits, target, ignore_index=-100):
    rows = logits.astype(working_dtype(logits), copy=False)
    loss = np.empty(rows.shape[0], dtype=rows.dtype)
    for block in _row_blocks(rows.shape[0]):
        loss[block] = _loss_and_stats(rows[block], target[block], ignore_index)[0]
    return loss.astype(logits.dtype, copy=False)


def cross_entropy_fwd_bwd(logits, target, dloss, ignore_index=-100):
    """(loss, dlogits) in one call: an online pass, then a pass writing the gradient tile by tile."""
    rows = logits.astype(working_dtype(logits), copy=False)
    grad = np.empty(logits.shape, dtype=logits.dtype)
    loss = np.empty(rows.shape[0], dtype=rows.dtype)
    for block in _row_blocks(rows.shape[0]):
        x, t = rows[block], target[block]
        loss[block], m, s = _loss_and_stats(x, t, ignore_index)
        scale = np.where(t == ignore_index, 0, dloss[block].astype(rows.dtype))[:, None]
        for start in range(0, rows.shape[1], CHUNK):
            tile = slice(start, start + CHUNK)
            g = np.exp(x[:, tile] - m)
            g /= s
            hit = (t >= start) & (t < start + g.shape[1])
            g[np.flatnonzero(hit), t[hit] - start] -= 1
            g *= scale
            grad[block, tile] = g
    return loss.astype(logits.dtype, copy=False), grad


backend = Backend(
    name="online",
    library="numpy",
    devices=("cpu",),
    dtypes=DTYPES,
    softmax=softmax,
    log_softmax=log_softmax,
    softmax_vjp=softmax_vjp,
    log_softmax_vjp=log_softmax_vjp,
    cross_entropy=cross_entropy,
    cross_entropy_fwd_bwd=cross_entropy_fwd_bwd,
    description="running max and rescaled sum in vocabulary chunks, then one normalising pass; fused chunked cross-entropy",
)
