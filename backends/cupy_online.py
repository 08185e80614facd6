"""cupy-online: a hand-written CUDA online softmax, two reads per row.

One block per row (``softmax_kernels.cu``): one pass keeps a running max and a
sum rescaled whenever the max grows (Milakov & Gimelshein 2018), the threads'
partial (max, sum) pairs are merged across the block, and a second pass
writes exp(x - max) / sum. A running max that is still -inf is shifted by 0,
so a masked prefix never computes exp(-inf - (-inf)); -inf/+inf/NaN give what
the NumPy ``online`` backend gives. 3 x itemsize bytes of traffic per element
against max-shift's 4 once a row no longer stays in L2: the large-vocabulary
advantage this backend is here to measure. float16 is computed in float32.
"""

from softmax_bench import Backend

from . import _cuda_softmax as cuda


def softmax(x, axis=-1):
    return cuda.launch("online", "softmax", x, axis)


def log_softmax(x, axis=-1):
    return cuda.launch("online", "log_softmax", x, axis)


backend = Backend(
    name="cupy-online",
    library="cupy",
    devices=("cuda",),
    dtypes=cuda.DTYPES,
    softmax=softmax,
    log_softmax=log_softmax,
    available=cuda.compile_problem,
    description="CUDA RawModule, one block per row: online max+sum pass, write pass (2 reads)",
)
