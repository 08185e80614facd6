"""Options of the cross-entropy loss (issue 22): one frozen record, its parser, and its exact reference.

``CrossEntropyOptions()`` is today's plain loss: per row (``reduction='none'``),
no smoothing, no z-loss, no soft-cap, temperature 1, no class weights. A
backend declares the option names it computes itself (``supported``); the
engine asks ``unsupported(options, supported)`` and records the unit as not
available with that reason instead of silently dropping an option. Old
plugins declare nothing and so run the default options only.

The loss of one row with logits ``x`` and target ``t`` is defined on
``z = cap·tanh(x / cap) / T`` (soft-cap first, as the model emits it, then
temperature, as distillation applies it)::

    lse  = log Σ_j exp z_j
    nll  = w_t · (lse - z_t)                      (w = class weights, 1 without)
    smo  = Σ_c w_c · (lse - z_c) / C              (torch's weighted smoothing term)
    loss = (1-ε)·nll + ε·smo + zl·lse²

The z-loss term is not class-weighted. Reductions: ``none`` gives per-row
losses (0 on ignored rows), ``sum`` their sum, ``mean`` their sum over
``Σ w_t`` of non-ignored rows (torch's weighted mean). When every row is
ignored the mean is 0/0: the convention recorded here is torch's, a NaN
loss and a zero gradient (no row contributes to it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Iterable, Optional

import numpy as np

REDUCTIONS = ("none", "mean", "sum")
# The option names a backend can declare; 'reduction' covers mean and sum.
OPTION_NAMES = ("reduction", "label_smoothing", "z_loss", "softcap", "temperature", "class_weight")
# Bits of the reference arithmetic: far beyond float64, as bench.reference.
PRECISION_BITS = 200


class OptionsError(ValueError):
    """A bad option value; the message is one line naming the valid choices."""


@dataclass(frozen=True)
class CrossEntropyOptions:
    """The loss options; the defaults are the plain per-row loss."""

    reduction: str = "none"
    label_smoothing: float = 0.0
    z_loss: float = 0.0
    softcap: Optional[float] = None
    temperature: float = 1.0
    class_weight: Optional[tuple[float, ...]] = None

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise OptionsError(f"reduction={self.reduction!r}; valid: {', '.join(REDUCTIONS)}")
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise OptionsError(f"label_smoothing={self.label_smoothing!r}; valid: a number in [0, 1]")
        if not (self.z_loss >= 0.0 and math.isfinite(self.z_loss)):
            raise OptionsError(f"z_loss={self.z_loss!r}; valid: a finite number >= 0")
        if self.softcap is not None and not (self.softcap > 0 and math.isfinite(self.softcap)):
            raise OptionsError(f"softcap={self.softcap!r}; valid: a finite number > 0, or none")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise OptionsError(f"temperature={self.temperature!r}; valid: a finite number > 0")
        if self.class_weight is not None:
            object.__setattr__(self, "class_weight", tuple(float(w) for w in self.class_weight))

    def active(self) -> tuple[str, ...]:
        """The option names that differ from the plain loss (what a backend must support)."""
        plain = CrossEntropyOptions()
        return tuple(f.name for f in fields(self) if getattr(self, f.name) != getattr(plain, f.name))

    def label(self) -> str:
        """A short stable name for records and tables: 'plain' or 'z_loss=0.0001,softcap=30'."""
        parts = []
        for name in self.active():
            value = getattr(self, name)
            parts.append(f"{name}=given" if name == "class_weight" else f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
        return ",".join(parts) or "plain"

    def to_record(self) -> dict:
        """The JSON form a check or timing record carries (only the active options)."""
        return {name: (list(getattr(self, name)) if name == "class_weight" else getattr(self, name)) for name in self.active()}

    @classmethod
    def from_record(cls, record: Optional[dict]) -> "CrossEntropyOptions":
        """Inverse of ``to_record``; a record without options (old files) is the plain loss."""
        return cls(**(record or {}))


def parse(text: str) -> CrossEntropyOptions:
    """Parse ``'z_loss=1e-4,softcap=30,reduction=mean'`` (the CLI form); raise ``OptionsError``."""
    values: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name not in OPTION_NAMES or name == "class_weight":
            valid = ", ".join(n for n in OPTION_NAMES if n != "class_weight")
            raise OptionsError(f"loss option {part!r}; valid: NAME=VALUE with NAME one of {valid}")
        if name == "reduction":
            values[name] = value
            continue
        try:
            values[name] = None if (name == "softcap" and value == "none") else float(value)
        except ValueError:
            raise OptionsError(f"loss option {name}={value!r}: not a number") from None
    return CrossEntropyOptions(**values)


def unsupported(options: CrossEntropyOptions, supported: Iterable[str]) -> Optional[str]:
    """None when a backend declaring ``supported`` computes ``options``, else the one-line reason."""
    missing = [name for name in options.active() if name not in set(supported)]
    if not missing:
        return None
    return f"loss option{'s' if len(missing) > 1 else ''} {', '.join(missing)} not supported by this backend"


def reference(
    logits: np.ndarray,
    target: np.ndarray,
    options: CrossEntropyOptions,
    ignore_index: int = -100,
    dloss=None,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact loss and gradient over the logits, each rounded once to float64.

    ``dloss`` is the cotangent of the reduced loss: per row for
    ``reduction='none'`` (ones when None), a scalar otherwise. Returns
    ``(loss, dlogits)``; ``loss`` has shape (rows,) for 'none', () otherwise.
    Computed in mpmath at ``PRECISION_BITS`` bits; the inputs (float64)
    convert exactly, so only the final rounding is inexact.
    """
    import mpmath

    x = np.asarray(logits, dtype=np.float64)
    rows, vocab = x.shape
    o = options
    w = [mpmath.mpf(1)] * vocab if o.class_weight is None else None
    with mpmath.workprec(PRECISION_BITS):
        mpf = mpmath.mpf
        if w is None:
            if len(o.class_weight) != vocab:
                raise OptionsError(f"class_weight has {len(o.class_weight)} entries; valid: one per class ({vocab})")
            w = [mpf(v) for v in o.class_weight]
        eps, zl, T = mpf(o.label_smoothing), mpf(o.z_loss), mpf(o.temperature)
        wsum = mpmath.fsum(w)
        losses, grads, denom = [], [], mpf(0)
        for i in range(rows):
            t = int(target[i])
            if t == ignore_index:
                losses.append(mpf(0))
                grads.append([mpf(0)] * vocab)
                continue
            if o.softcap is None:
                z = [mpf(v) / T for v in x[i]]
                dz = [1 / T] * vocab
            else:
                cap = mpf(o.softcap)
                th = [mpmath.tanh(mpf(v) / cap) for v in x[i]]
                z = [cap * h / T for h in th]
                dz = [(1 - h * h) / T for h in th]
            m = max(z)
            e = [mpmath.exp(v - m) for v in z]
            s = mpmath.fsum(e)
            lse = m + mpmath.log(s)
            p = [v / s for v in e]
            nll = w[t] * (lse - z[t])
            # Each term only where its weight is not 0: a masked (-inf) logit makes the smoothing
            # term inf, and 0·inf is NaN, not the 0 that ε = 0 (or ε = 1 for the nll) means.
            loss = zl * lse * lse
            if eps != 1:
                loss += (1 - eps) * nll
            if eps != 0:
                loss += eps * mpmath.fsum(wc * (lse - zc) for wc, zc in zip(w, z)) / vocab
            losses.append(loss)
            # d/dz_j of each term: nll -> w_t(p_j - δ_jt); smo -> (Σw·p_j - w_j)/C; z-loss -> 2·zl·lse·p_j.
            g = []
            for j in range(vocab):
                gj = (1 - eps) * w[t] * (p[j] - (1 if j == t else 0))
                gj += eps * (wsum * p[j] - w[j]) / vocab + 2 * zl * lse * p[j]
                g.append(gj * dz[j])
            grads.append(g)
            denom += w[t]
        if o.reduction == "none":
            d = [mpf(1)] * rows if dloss is None else [mpf(float(v)) for v in np.asarray(dloss, dtype=np.float64)]
            loss = np.array([float(v) for v in losses])
            grad = np.array([[float(d[i] * v) for v in grads[i]] for i in range(rows)])
            return loss, grad
        d = mpf(1) if dloss is None else mpf(float(dloss))
        total = mpmath.fsum(losses)
        if o.reduction == "sum":
            scale = d
            value = total
        elif denom == 0:
            # Every row ignored: torch's mean is 0/0 = NaN; its gradient is 0 (no row contributes). The same here.
            return np.array(math.nan), np.zeros(x.shape)
        else:
            scale = d / denom
            value = total / denom
        grad = np.array([[float(scale * v) for v in row] for row in grads])
        return np.array(float(value)), grad


# --------------------------------------------------------------------------- reductions, for NumPy backends
# A backend computes per-row losses and per-row gradients; these two turn them into the reduced
# loss and give each row its share of the upstream gradient, torch's conventions said once.


def _denominator(target: np.ndarray, options: CrossEntropyOptions, ignore_index: int) -> float:
    """Σ w_t over the rows kept (their count without class weights): what ``mean`` divides by."""
    kept = np.asarray(target) != ignore_index
    if options.class_weight is None:
        return float(np.count_nonzero(kept))
    return float(np.sum(np.asarray(options.class_weight, dtype=np.float64)[np.asarray(target)[kept]]))


def row_cotangents(target: np.ndarray, options: CrossEntropyOptions, dloss, ignore_index: int, dtype) -> np.ndarray:
    """The upstream gradient of each row's loss: ``dloss`` itself for 'none' (ones when None), the scalar
    ``dloss`` for 'sum', and ``dloss / Σ w_t`` for 'mean' (inf when nothing is kept: its rows are all ignored
    and their gradient 0, torch's convention)."""
    rows = len(target)
    if options.reduction == "none":
        return np.ones(rows, dtype) if dloss is None else np.ascontiguousarray(np.asarray(dloss).reshape(-1), dtype=dtype)
    d = 1.0 if dloss is None else float(np.asarray(dloss))
    if options.reduction == "mean":
        denominator = _denominator(target, options, ignore_index)
        d = d / denominator if denominator else math.inf
    return np.full(rows, d, dtype)


def reduce(losses: np.ndarray, target: np.ndarray, options: CrossEntropyOptions, ignore_index: int) -> np.ndarray:
    """The loss ``options.reduction`` asks for from per-row ``losses`` (0 on ignored rows): as they are,
    or their float64 sum (over Σ w_t of the rows kept for 'mean'; NaN when that is 0) as a 0-d array."""
    if options.reduction == "none":
        return losses
    total = float(np.sum(losses, dtype=np.float64))
    if options.reduction == "mean":
        denominator = _denominator(target, options, ignore_index)
        total = total / denominator if denominator else math.nan
    return np.asarray(total, dtype=losses.dtype)


def float64_rows(logits: np.ndarray, target: np.ndarray, options: CrossEntropyOptions, row_dloss: np.ndarray,
                 ignore_index: int = -100) -> tuple[np.ndarray, np.ndarray]:
    """Per-row losses and ``row_dloss``-scaled gradients in float64 NumPy (the reduction left out: the
    rows' share of it is in ``row_dloss``, see ``row_cotangents``). Not exact: what the timing engine
    checks a few rows of each timed call against, where the 200-bit reference would take minutes."""
    o = options
    x = np.asarray(logits, dtype=np.float64)
    n = x.shape[1]
    keep = np.asarray(target) != ignore_index
    t = np.where(keep, target, 0)
    w = np.ones(n) if o.class_weight is None else np.asarray(o.class_weight, dtype=np.float64)
    with np.errstate(all="ignore"):
        if o.softcap is not None:
            th = np.tanh(x / o.softcap)
            z, dz = o.softcap * th / o.temperature, (1 - th * th) / o.temperature
        else:
            z, dz = x / o.temperature, np.full_like(x, 1 / o.temperature)
        m = np.max(z, axis=1, keepdims=True)
        e = np.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        lse, p = m + np.log(s), e / s
        eps, w_t = o.label_smoothing, np.where(keep, w[t], 0.0)[:, None]
        loss = o.z_loss * lse * lse
        if eps != 1:
            loss = loss + (1 - eps) * w_t * (lse - np.take_along_axis(z, t[:, None], axis=1))
        if eps:
            loss = loss + eps * np.sum(w * (lse - z), axis=1, keepdims=True) / n
        onehot = np.zeros_like(p)
        onehot[np.flatnonzero(keep), t[keep]] = 1.0
        g = (1 - eps) * w_t * (p - onehot) + eps * (w.sum() * p - w) / n + 2 * o.z_loss * lse * p
        g = np.where(keep[:, None], g * dz * np.asarray(row_dloss, dtype=np.float64)[:, None], 0.0)
    return np.where(keep, loss[:, 0], 0.0), g
