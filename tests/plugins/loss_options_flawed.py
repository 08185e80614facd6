"""Cross-entropies with loss options (issue 22): one correct, three each wrong in one way the issue names.

All four declare every option and compute it in float64 NumPy, one pass for
the loss and the gradient. The correct one (``ce-options-numpy``) is the
control: it passes every case of loss options, so a failure of the others is
their flaw alone.

- ``ce-mean-over-all-rows``: ``reduction='mean'`` divides by N, ignored rows
  included (the classic bug: Liger issues 83, 488), not by the kept rows' Σ w_t.
- ``ce-z-loss-grad-only``: the z-loss term is in the gradient but not in the
  loss (the mirror of OLMo-core PR 702's z-loss leaking into the reported loss).
- ``ce-softcap-after-shift``: the soft-cap is applied to ``x - max`` rather than
  to ``x``: ``cap·tanh((x - m)/cap)`` is no shift of ``cap·tanh(x/cap)``.
"""

import numpy as np

from softmax_bench import Backend
from softmax_bench.backends import max_shift
from softmax_bench.loss_options import OPTION_NAMES, CrossEntropyOptions


def _loss_and_grad(logits, target, dloss, options, ignore_index, flaw=None):
    o = options or CrossEntropyOptions()
    x = logits.astype(np.float64)
    rows, n = x.shape
    keep = target != ignore_index
    t = np.where(keep, target, 0)
    with np.errstate(all="ignore"):
        if o.softcap is not None:
            shift = np.max(x, axis=1, keepdims=True) if flaw == "softcap-after-shift" else 0.0
            th = np.tanh((x - shift) / o.softcap)
            z, dz = o.softcap * th / o.temperature, (1 - th * th) / o.temperature
        else:
            z, dz = x / o.temperature, np.full_like(x, 1 / o.temperature)
        m = np.max(z, axis=1, keepdims=True)
        e = np.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        lse, p = m + np.log(s), e / s
        w = np.ones(n) if o.class_weight is None else np.asarray(o.class_weight, dtype=np.float64)
        wt = np.where(keep, w[t], 0.0)[:, None]
        eps = o.label_smoothing
        loss = o.z_loss * lse * lse if flaw != "z-loss-grad-only" else np.zeros_like(lse)
        if eps != 1:
            loss = loss + (1 - eps) * wt * (lse - np.take_along_axis(z, t[:, None], axis=1))
        if eps != 0:
            loss = loss + eps * np.sum(w * (lse - z), axis=1, keepdims=True) / n
        loss = np.where(keep[:, None], loss, 0.0)[:, 0]
        onehot = np.zeros_like(p)
        onehot[np.flatnonzero(keep), t[keep]] = 1.0
        g = (1 - eps) * wt * (p - onehot) + eps * (w.sum() * p - w) / n + 2 * o.z_loss * lse * p
        g = np.where(keep[:, None], g * dz, 0.0)
        if o.reduction == "none":
            return loss, g * (1.0 if dloss is None else np.asarray(dloss, dtype=np.float64)[:, None])
        d = 1.0 if dloss is None else float(dloss)
        if o.reduction == "sum":
            return loss.sum(), g * d
        denominator = rows if flaw == "mean-over-all-rows" else wt.sum()
        return loss.sum() / denominator, g * d / denominator


def _backend(name, flaw=None):
    def cross_entropy(logits, target, ignore_index=-100, options=None):
        loss, _ = _loss_and_grad(logits, target, None, options, ignore_index, flaw)
        return np.asarray(loss).astype(logits.dtype)

    def cross_entropy_fwd_bwd(logits, target, dloss, ignore_index=-100, options=None):
        loss, grad = _loss_and_grad(logits, target, dloss, options, ignore_index, flaw)
        return np.asarray(loss).astype(logits.dtype), grad.astype(logits.dtype)

    return Backend(name=name, library="numpy", devices=("cpu",), dtypes=("float32", "float64"),
                   softmax=max_shift.softmax, log_softmax=max_shift.log_softmax, cross_entropy=cross_entropy,
                   cross_entropy_fwd_bwd=cross_entropy_fwd_bwd, loss_options=OPTION_NAMES)


backends = [
    _backend("ce-options-numpy"),
    _backend("ce-mean-over-all-rows", "mean-over-all-rows"),
    _backend("ce-z-loss-grad-only", "z-loss-grad-only"),
    _backend("ce-softcap-after-shift", "softcap-after-shift"),
]
