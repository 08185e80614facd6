"""Subtly wrong: an online softmax whose running max starts at -inf with no guard.

On a masked prefix the first chunk's max is -inf and the rescale factor is
exp(-inf - (-inf)) = NaN, which poisons the whole row.
"""

import numpy as np

from softmax_bench import Backend

CHUNK = 2


def softmax(x, axis=-1):
    rows = np.moveaxis(x, axis, -1)
    m = np.full(rows.shape[:-1] + (1,), -np.inf, dtype=x.dtype)
    s = np.zeros_like(m)
    for start in range(0, rows.shape[-1], CHUNK):
        block = rows[..., start : start + CHUNK]
        m_new = np.maximum(m, block.max(axis=-1, keepdims=True))
        s = s * np.exp(m - m_new) + np.exp(block - m_new).sum(axis=-1, keepdims=True)
        m = m_new
    return np.moveaxis(np.exp(rows - m) / s, -1, axis)


backend = Backend(name="online-unguarded", library="numpy", devices=("cpu",), dtypes=("float32", "float64"), softmax=softmax)
