"""cupy-maxshift: a hand-written CUDA safe softmax, three reads per row.

One block per row (``softmax_kernels.cu``): a max pass, a sum pass and a write
pass, with Blanchard, Higham & Higham's (2021) sum that leaves out the max term
(softmax = exp(x - max) / (1 + s), log_softmax = (x - max) - log1p(s)), so its
results and its -inf/+inf/NaN behaviour are those of the NumPy ``max-shift``
backend. 4 x itemsize bytes of traffic per element once a row no longer stays
in L2 between passes; compare ``cupy-online``. float16 is computed in float32.
Inputs along another axis, or strided, are made contiguous first (see
``_cuda_softmax``).
"""

from softmax_bench import Backend

from . import _cuda_softmax as cuda


def softmax(x, axis=-1):
    return cuda.launch("maxshift", "softmax", x, axis)


def log_softmax(x, axis=-1):
    return cuda.launch("maxshift", "log_softmax", x, axis)


backend = Backend(
    name="cupy-maxshift",
    library="cupy",
    devices=("cuda",),
    dtypes=cuda.DTYPES,
    softmax=softmax,
    log_softmax=log_softmax,
    available=cuda.compile_problem,
    description="CUDA RawModule, one block per row: max, sum and write passes (3 reads)",
)
