"""Vocabulary-parallel backends that fail on one rank: they hang, die, exit, raise, or disagree.

Rank 0 always goes on into its all_reduce, which then waits for rank 1
forever (gloo has no way to tell it the peer is gone or stuck): the group's
parent must notice, kill every rank and name rank 1.
"""

import os
import signal
import time

from softmax_bench import Backend


def _reduce_max(x, shard):
    import torch.distributed as dist

    m = x.amax(dim=-1)
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=shard.group)
    return m


def hang(x, axis=-1, shard=None):
    if shard is not None and shard.rank == 1:
        while True:  # stuck before its collective: rank 0 blocks in all_reduce
            time.sleep(1)
    return (x - _reduce_max(x, shard)[:, None]).exp()


def killed(x, axis=-1, shard=None):
    if shard is not None and shard.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return (x - _reduce_max(x, shard)[:, None]).exp()


def exits(x, axis=-1, shard=None):
    if shard is not None and shard.rank == 1:
        os._exit(3)  # no exception, no traceback: the process is just gone
    return (x - _reduce_max(x, shard)[:, None]).exp()


def raises(x, axis=-1, shard=None):
    if shard is not None and shard.rank == 1:
        raise RuntimeError("NCCL error: unhandled system error (planted)")
    return (x - _reduce_max(x, shard)[:, None]).exp()


def wrong_shape(x, axis=-1, shard=None):
    return x[:, :-1] if shard is not None and shard.rank == 1 else x


def disagree(logits, target, ignore_index=-100, shard=None):
    import torch

    return torch.full(logits.shape[:-1], float(shard.rank if shard is not None else 0), dtype=logits.dtype)


def _backend(name, **fns):
    return Backend(name=name, library="torch", devices=("cpu",), dtypes=("float32",), parallel="vocab",
                   **{"softmax": fns.pop("softmax", wrong_shape), **fns})


backends = [
    _backend("vocab-parallel-hang", softmax=hang),
    _backend("vocab-parallel-killed", softmax=killed),
    _backend("vocab-parallel-exits", softmax=exits),
    _backend("vocab-parallel-raises", softmax=raises),
    _backend("vocab-parallel-wrong-shape", softmax=wrong_shape),
    _backend("vocab-parallel-disagree", cross_entropy=disagree),
]
