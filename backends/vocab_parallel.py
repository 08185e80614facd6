"""vocab-parallel-megatron and vocab-parallel-fused: softmax and cross-entropy with the vocabulary split over ranks.

Each rank holds a contiguous slice of the vocabulary (``shard=``, a
``softmax_bench.distributed.sharded.Shard``) and the row statistics are combined with
``torch.distributed.all_reduce`` on ``shard.group``, as Megatron-LM's
``VocabParallelCrossEntropy`` does (megatron/core/tensor_parallel/cross_entropy.py):

1. the local max, all_reduce(MAX): the global max M;
2. the target logit, on the rank that owns the target and 0 elsewhere, all_reduce(SUM);
3. the sum of exp(x - M), all_reduce(SUM);

loss = log(sum) - target logit; the backward needs no collective (softmax
minus the one-hot at the owned target, times the upstream gradient).
``vocab-parallel-megatron`` makes these three collectives;
``vocab-parallel-fused`` concatenates 2 and 3 into one all_reduce, as
megatron/core/fusions/fused_cross_entropy.py does: two collectives.

Unlike Megatron, the sums follow Blanchard, Higham & Higham (the ``max-shift``
backend): s is the sum of exp(x - M) WITHOUT the max term, softmax =
exp(x - M) / (1 + s), log_softmax = (x - M) - log1p(s), loss = log1p(s) -
(x_t - M). Leaving the max term (exactly 1) out keeps log1p accurate when the
rest of the row is tiny. Exactly one element is the max term: on each rank
holding M the first such column is left out, and every rank also reduces a
count C of the ranks holding M (one more value in the sum's all_reduce), so
that s gets the C - 1 max terms of the other holders back: a tie across
ranks ends as max-shift's tie (lowest index owns the max), with no extra
collective. Special values match max-shift's: a shard entirely -inf
contributes nothing (the shift is the global max, finite); a NaN anywhere
makes the whole row NaN on every rank (the local max is taken without it,
but the NaN reaches every rank through the summed s); one +inf gives the
one-hot softmax; a row of -inf gives NaN. A target at a -inf logit has loss
+inf; a row whose target is ``IGNORE_INDEX`` (-100) has loss 0 and gradient 0.

Without ``shard`` (``shard=None``) the functions are ordinary single-process
backends over the whole axis (no collective), so the shared correctness suite
runs them too. Half-precision inputs are computed in float32, like
Megatron's ``.float()``; results come back in the input's dtype (the loss
too, as torch's cross_entropy). The loss and its gradient take the
vocabulary on the last axis: logits (..., V), target (...), dloss (...).
Out-of-range targets raise on CPU; on CUDA they are not checked (that would
synchronise the device on every call).
"""

from __future__ import annotations

import math

from softmax_bench import DTYPES, Backend
from softmax_bench.backend import IGNORE_INDEX


# --------------------------------------------------------------------------- plumbing


def _working(x):
    import torch

    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _all_reduce(t, op: str, shard):
    """``t`` reduced in place over ``shard.group`` (``op`` "max" or "sum"); untouched without a shard."""
    if shard is not None:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM, group=shard.group)
    return t


def _rows(x, axis: int):
    """``x`` as (rows, n) with ``axis`` last, and the moved shape to undo it."""
    moved = x.movedim(axis, -1)
    shape = moved.shape
    return moved.reshape(math.prod(shape[:-1]), shape[-1]), shape


def _unrows(r, shape, axis: int):
    return r.reshape(shape).movedim(-1, axis)


class _Max:
    """The global max M of each row and where this rank's first max column is."""

    def __init__(self, xw, shard):
        import torch

        rows, n = xw.shape
        if n:
            raw, self.idx = torch.max(xw, dim=-1)  # the first maximal column, as max-shift's argmax
        else:  # an empty shard (vocab < world size) still joins every collective
            raw = xw.new_full((rows,), -math.inf)
            self.idx = torch.zeros(rows, dtype=torch.long, device=xw.device)
        # NaN reaches every rank through the summed s; a reduced NaN max is unspecified.
        m = torch.where(torch.isnan(raw), -math.inf, raw)
        self.M = _all_reduce(m, "max", shard)
        self.holder = (raw == self.M) if n else torch.zeros(rows, dtype=torch.bool, device=xw.device)
        self.n = n

    def exclude(self, e):
        """s_k: row sums of e = exp(x - M) without this rank's max term (set to 0 in e)."""
        if not self.n:
            return e.new_zeros(e.shape[0])
        col = self.idx[:, None]
        e.scatter_(1, col, e.gather(1, col).masked_fill_(self.holder[:, None], 0))
        return e.sum(dim=-1)

    def restore(self, e):
        """Put the max term back as exactly 1 (exp(0); also where M = +inf made it NaN)."""
        if self.n:
            col = self.idx[:, None]
            e.scatter_(1, col, e.gather(1, col).masked_fill_(self.holder[:, None], 1))
        return e

    def count(self, dtype):
        return self.holder.to(dtype)

    def corrected(self, s, c):
        """s plus the max terms of the other ranks holding M (C - 1 of them; 1 each, NaN when M = +inf)."""
        import torch

        extra = (c - 1) * torch.exp(self.M - self.M)
        return s + torch.where(c > 1, extra, torch.zeros_like(extra))


def _sum_stats(mx: _Max, s_k, shard):
    """The global s (one all_reduce of [s_k, count])."""
    import torch

    both = _all_reduce(torch.stack([s_k, mx.count(s_k.dtype)]), "sum", shard)
    return mx.corrected(both[0], both[1])


# --------------------------------------------------------------------------- softmax and log_softmax


def softmax(x, axis: int = -1, shard=None):
    """exp(x - M) / (1 + s) over ``axis`` (this rank's columns of it when sharded): two all_reduces."""
    xr, shape = _rows(x, axis)
    xw = xr.to(_working(x))
    mx = _Max(xw, shard)
    e = (xw - mx.M[:, None]).exp_()
    s = _sum_stats(mx, mx.exclude(e), shard)
    e = mx.restore(e).div_((1 + s)[:, None])
    return _unrows(e.to(x.dtype), shape, axis)


def log_softmax(x, axis: int = -1, shard=None):
    """(x - M) - log1p(s) over ``axis``: two all_reduces."""
    import torch

    xr, shape = _rows(x, axis)
    xw = xr.to(_working(x))
    mx = _Max(xw, shard)
    z = xw - mx.M[:, None]
    s = _sum_stats(mx, mx.exclude(torch.exp(z)), shard)
    z.sub_(torch.log1p(s)[:, None])
    return _unrows(z.to(x.dtype), shape, axis)


def softmax_vjp(y, dy, axis: int = -1, shard=None):
    """dx = y * (dy - sum(dy * y)), the sum over the whole vocabulary: one all_reduce."""
    yr, shape = _rows(y, axis)
    dyr, _ = _rows(dy, axis)
    w = _working(y)
    yw, dyw = yr.to(w), dyr.to(w)
    total = _all_reduce((dyw * yw).sum(dim=-1), "sum", shard)
    return _unrows((yw * (dyw - total[:, None])).to(y.dtype), shape, axis)


def log_softmax_vjp(y, dy, axis: int = -1, shard=None):
    """dx = dy - exp(y) * sum(dy), y the log_softmax output: one all_reduce."""
    import torch

    yr, shape = _rows(y, axis)
    dyr, _ = _rows(dy, axis)
    w = _working(y)
    yw, dyw = yr.to(w), dyr.to(w)
    total = _all_reduce(dyw.sum(dim=-1), "sum", shard)
    return _unrows((dyw - torch.exp(yw) * total[:, None]).to(y.dtype), shape, axis)


# --------------------------------------------------------------------------- cross-entropy


class _Target:
    """Which rows this rank owns the target of, and its local column."""

    def __init__(self, target, xw, shard, ignore_index: int):
        import torch

        rows, n = xw.shape
        self.t = target.reshape(-1).to(device=xw.device, dtype=torch.long)
        if self.t.shape[0] != rows:
            raise ValueError(f"target has {self.t.shape[0]} entries for {rows} rows of logits")
        start, stop = (shard.start, shard.stop) if shard is not None else (0, n)
        vocab = shard.vocab if shard is not None else n
        self.ignored = self.t == ignore_index
        if self.t.device.type == "cpu":  # on CUDA this check would synchronise every call
            bad = ~self.ignored & ((self.t < 0) | (self.t >= vocab))
            if bool(bad.any()):
                value = int(self.t[bad][0])
                raise IndexError(f"target {value} is out of range for a vocabulary of {vocab} (ignore_index {ignore_index})")
        self.owned = ~self.ignored & (self.t >= start) & (self.t < stop)
        self.col = torch.where(self.owned, self.t - start, torch.zeros_like(self.t))[:, None]
        self.n = n

    def logit(self, xw, M):
        """x_t - M on the owning rank, 0 elsewhere (summed over ranks it is x_t - M everywhere)."""
        if not self.n:
            return xw.new_zeros(xw.shape[0])
        zt = xw.gather(1, self.col).squeeze(1) - M
        return zt.masked_fill_(~self.owned, 0)


def _cross_entropy_stats(logits, target, ignore_index, shard, fused: bool):
    """(xw, shape, max, target, e = exp(x - M) without the max term, s, x_t - M) with 2 or 3 collectives."""
    import torch

    xr, shape = _rows(logits, -1)
    xw = xr.to(_working(logits))
    tg = _Target(target, xw, shard, ignore_index)
    mx = _Max(xw, shard)
    zt_k = tg.logit(xw, mx.M)
    e = (xw - mx.M[:, None]).exp_()
    s_k = mx.exclude(e)
    if fused:  # fused_cross_entropy.py: the target logit and the sums in one all_reduce
        packed = _all_reduce(torch.stack([zt_k, s_k, mx.count(s_k.dtype)]), "sum", shard)
        zt, s = packed[0], mx.corrected(packed[1], packed[2])
    else:  # cross_entropy.py: the target logit, then the sums
        zt = _all_reduce(zt_k, "sum", shard)
        s = _sum_stats(mx, s_k, shard)
    return xw, shape, mx, tg, e, s, zt


def _loss(s, zt, tg, dtype):
    import torch

    return (torch.log1p(s) - zt).masked_fill_(tg.ignored, 0).to(dtype)


def _cross_entropy(logits, target, ignore_index, shard, fused):
    _, shape, _, tg, _, s, zt = _cross_entropy_stats(logits, target, ignore_index, shard, fused)
    return _loss(s, zt, tg, logits.dtype).reshape(shape[:-1])


def _cross_entropy_fwd_bwd(logits, target, dloss, ignore_index, shard, fused):
    import torch

    _, shape, mx, tg, e, s, zt = _cross_entropy_stats(logits, target, ignore_index, shard, fused)
    loss = _loss(s, zt, tg, logits.dtype).reshape(shape[:-1])
    dl = dloss.reshape(-1).to(e.dtype)
    e = mx.restore(e)
    if tg.n:
        pt = e.gather(1, tg.col).squeeze(1) / (1 + s)  # p at the target column (on the owning rank)
    # One pass: dlogits = exp(x - M) * (dloss / (1 + s)); the target column is fixed after.
    g = e.mul_((dl / (1 + s))[:, None])
    if tg.n:
        # p_t - 1 at the row's max term is -s / (1 + s) exactly: no cancellation when p_t is near 1.
        at_top = mx.holder & (tg.col.squeeze(1) == mx.idx)
        gt = torch.where(at_top, -s / (1 + s), pt - 1) * dl
        g.scatter_(1, tg.col, torch.where(tg.owned, gt, g.gather(1, tg.col).squeeze(1))[:, None])
    ignored = tg.ignored.nonzero().squeeze(1)
    if ignored.numel():  # exactly 0, even where the logits were NaN
        g.index_fill_(0, ignored, 0)
    return loss, g.to(logits.dtype).reshape(shape)


def megatron_cross_entropy(logits, target, ignore_index: int = IGNORE_INDEX, shard=None):
    """Loss per row (logits (..., V) -> (...)): three all_reduces (max, target logit, sums)."""
    return _cross_entropy(logits, target, ignore_index, shard, fused=False)


def megatron_cross_entropy_fwd_bwd(logits, target, dloss, ignore_index: int = IGNORE_INDEX, shard=None):
    """(loss, dlogits = (softmax - onehot) * dloss): three all_reduces, none in the backward."""
    return _cross_entropy_fwd_bwd(logits, target, dloss, ignore_index, shard, fused=False)


def fused_cross_entropy(logits, target, ignore_index: int = IGNORE_INDEX, shard=None):
    """Loss per row: two all_reduces (max; target logit and sums together)."""
    return _cross_entropy(logits, target, ignore_index, shard, fused=True)


def fused_cross_entropy_fwd_bwd(logits, target, dloss, ignore_index: int = IGNORE_INDEX, shard=None):
    """(loss, dlogits): two all_reduces, none in the backward."""
    return _cross_entropy_fwd_bwd(logits, target, dloss, ignore_index, shard, fused=True)


_COMMON = dict(
    library="torch", devices=("cpu", "cuda"), dtypes=DTYPES, parallel="vocab",
    softmax=softmax, log_softmax=log_softmax, softmax_vjp=softmax_vjp, log_softmax_vjp=log_softmax_vjp,
)

backends = [
    Backend(name="vocab-parallel-megatron", cross_entropy=megatron_cross_entropy,
            cross_entropy_fwd_bwd=megatron_cross_entropy_fwd_bwd,
            description="Megatron-LM VocabParallelCrossEntropy over torch.distributed, BHH sums: 3 all_reduces", **_COMMON),
    Backend(name="vocab-parallel-fused", cross_entropy=fused_cross_entropy,
            cross_entropy_fwd_bwd=fused_cross_entropy_fwd_bwd,
            description="Megatron-LM fused vocab-parallel cross-entropy (target logit and sums in one all_reduce): 2 all_reduces",
            **_COMMON),
]
