"""Planted bug: the numba backends with a flawed segment merge in the split row.

When a row is split across threads, each segment's sum is relative to its own
shift (the two-pass online form). This merge forgets to rescale the segments
whose shift is below the row's: their sums are added as if taken at the row's
max. The result is wrong by a factor per segment on any row whose segments
have different maxima; the correctness suite must catch it
(tests/test_numba_kernels.py) on a row split across two or more threads.
"""

from softmax_bench.backends.numba_kernels import make_backends


def flawed_split():
    """The shipped splitter compiled around a merge that skips the rescale."""
    from softmax_bench.backends import _numba_common as kernels

    @kernels._jit()
    def merge_without_rescale(tops, counts, rests, K, poly):
        top = -K.inf
        for s in range(tops.size):
            if counts[s] + rests[s] != K.zero:
                top = kernels._max_of(top, tops[s])
        d = K.zero
        for s in range(tops.size):
            d += counts[s] + rests[s]  # the flaw: no exp(tops[s] - top)
        return top, d

    return kernels.make_split_softmax(merge_without_rescale)


backends = make_backends(prefix="split-merge-numba", split=flawed_split)
