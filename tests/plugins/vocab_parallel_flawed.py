"""Subtly wrong vocabulary-parallel softmax: each rank shifts by its LOCAL max and the sums are added unscaled.

sum_k sum_i exp(x_i - m_k) mixes terms shifted by different maxima, so the
result is right only when every rank's local max is the same (a single rank,
or a row whose shards happen to peak equally). On one process it is the
ordinary max-shift softmax; the distributed correctness check must catch it.
"""

import math

from softmax_bench import Backend


def _local(x, shard):
    import torch
    import torch.distributed as dist

    xw = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    m = xw.amax(dim=-1, keepdim=True) if xw.shape[-1] else xw.new_full(xw.shape[:-1] + (1,), -math.inf)
    z = xw - m  # the flaw: a rank-local shift
    total = z.exp().sum(dim=-1, keepdim=True)
    if shard is not None:
        dist.all_reduce(total, group=shard.group)  # and the flaw's partner: no rescaling by exp(m_k - M)
    return z, total


def softmax(x, axis=-1, shard=None):
    z, total = _local(x, shard)
    return (z.exp() / total).to(x.dtype)


def log_softmax(x, axis=-1, shard=None):
    z, total = _local(x, shard)
    return (z - total.log()).to(x.dtype)


backend = Backend(name="vocab-parallel-flawed", library="torch", devices=("cpu",), dtypes=("float32", "float64"),
                  softmax=softmax, log_softmax=log_softmax, parallel="vocab",
                  description="planted: local-max shift, sums added without rescaling")
