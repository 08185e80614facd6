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
from softmax_bench.loss_options import OPTION_NAMES, reduce, row_cotangents

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


def cross_entropy(logits, target, ignore_index=-100, options=None):
    if options is not None:
        return _options_loss_and_grad(logits, target, None, ignore_index, options, grad=False)
    rows = logits.astype(working_dtype(logits), copy=False)
    loss = np.empty(rows.shape[0], dtype=rows.dtype)
    for block in _row_blocks(rows.shape[0]):
        loss[block] = _loss_and_stats(rows[block], target[block], ignore_index)[0]
    return loss.astype(logits.dtype, copy=False)


def cross_entropy_fwd_bwd(logits, target, dloss, ignore_index=-100, options=None):
    """(loss, dlogits) in one call: an online pass, then a pass writing the gradient tile by tile."""
    if options is not None:
        return _options_loss_and_grad(logits, target, dloss, ignore_index, options, grad=True)
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


# --------------------------------------------------------------------------- loss options (issue 22)
# The same online pass over z = cap·tanh(x/cap)/T instead of x, a tile at a time (z is never stored
# whole): the running max and rescaled sum of exp(z), and Σ w·z for label smoothing; the gradient
# pass recomputes z and its derivative per tile. See softmax_bench.loss_options for the definition.


def _z_tile(x, o, with_derivative=False):
    """z of one tile of logits, and dz/dx (a scalar without a soft-cap) when asked."""
    if o.softcap is not None:
        th = np.tanh(x / o.softcap)
        z = th * o.softcap
        if o.temperature != 1.0:
            z /= o.temperature
        return (z, (1 - th * th) / o.temperature) if with_derivative else z
    z = x / o.temperature if o.temperature != 1.0 else x
    return (z, 1.0 / o.temperature) if with_derivative else z


def _options_stats(x, o, w):
    """Per row of a block: (shift m, sum s, Σ_c w_c·z_c or None), in one online pass over z."""
    m = np.full((x.shape[0], 1), -np.inf, dtype=x.dtype)
    s = np.zeros((x.shape[0], 1), dtype=x.dtype)
    wz = np.zeros((x.shape[0], 1), dtype=x.dtype) if o.label_smoothing else None
    for start in range(0, x.shape[1], CHUNK):
        z = _z_tile(x[:, start:start + CHUNK], o)
        m_new = np.maximum(m, z.max(axis=1, keepdims=True))
        shift = _safe(m_new)
        s = s * np.exp(m - shift) + np.exp(z - shift).sum(axis=1, keepdims=True)
        m = m_new
        if wz is not None:
            wz += (z if w is None else z * w[start:start + CHUNK]).sum(axis=1, keepdims=True)
    return _safe(m), s, wz


def _options_loss_and_grad(logits, target, dloss, ignore_index, o, grad):
    rows = logits.astype(working_dtype(logits), copy=False)
    n = rows.shape[1]
    w = None if o.class_weight is None else np.asarray(o.class_weight, dtype=rows.dtype)
    if w is not None and len(w) != n:
        raise ValueError(f"class_weight has {len(w)} entries for {n} classes")
    w_sum = float(n if w is None else w.sum(dtype=np.float64))
    eps, zl = o.label_smoothing, o.z_loss
    scale_rows = row_cotangents(target, o, dloss, ignore_index, rows.dtype) if grad else None
    loss = np.empty(rows.shape[0], dtype=rows.dtype)
    out = np.empty(logits.shape, dtype=logits.dtype) if grad else None
    for block in _row_blocks(rows.shape[0]):
        x, t = rows[block], target[block]
        ignored = t == ignore_index
        safe = np.where(ignored, 0, t)
        m, s, wz = _options_stats(x, o, w)
        log_s = np.log(s)
        lse = m + log_s
        z_t = _z_tile(np.take_along_axis(x, safe[:, None], axis=1), o)
        w_t = np.ones_like(lse) if w is None else w[safe][:, None]
        with np.errstate(invalid="ignore"):
            value = zl * lse * lse
            if eps != 1:
                value = value + (1 - eps) * w_t * ((m - z_t) + log_s)
            if eps:
                value = value + eps * (w_sum * lse - wz) / n
        loss[block] = np.where(ignored[:, None], 0, value)[:, 0]
        if not grad:
            continue
        keep = np.where(ignored, 0, scale_rows[block])[:, None]
        a = (1 - eps) * w_t + eps * w_sum / n + 2 * zl * lse  # the coefficient of p in each row's gradient
        for start in range(0, n, CHUNK):
            tile = slice(start, start + CHUNK)
            z, dz = _z_tile(x[:, tile], o, with_derivative=True)
            p = np.exp(z - m)
            p /= s
            g = a * p
            if eps:
                g -= eps / n * (1.0 if w is None else w[tile])
            hit = (t >= start) & (t < start + g.shape[1])
            g[np.flatnonzero(hit), t[hit] - start] -= ((1 - eps) * w_t)[hit, 0]
            g *= dz
            g *= keep
            out[block, tile] = g
    reduced = reduce(loss, target, o, ignore_index).astype(logits.dtype, copy=False)
    return (reduced, out) if grad else reduced


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
    loss_options=OPTION_NAMES,
    description="running max and rescaled sum in vocabulary chunks, then one normalising pass; fused chunked cross-entropy",
)
