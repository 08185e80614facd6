"""cupy-maxshift and cupy-online: hand-written CUDA softmax kernels, one block per row.

Both come from ``softmax_kernels.cu`` and differ only in how a row is read:

- ``cupy-maxshift``: a max pass, a sum pass and a write pass, with Blanchard,
  Higham & Higham's (2021) sum that leaves out the max term (softmax =
  exp(x - max) / (1 + s), log_softmax = (x - max) - log1p(s)), so its results
  and its -inf/+inf/NaN behaviour are those of the NumPy ``max-shift``
  backend: 4 x itemsize bytes of traffic per element once a row no longer
  stays in L2 between passes.
- ``cupy-online``: one pass keeps a running max and a sum rescaled whenever
  the max grows (Milakov & Gimelshein 2018), the threads' partial (max, sum)
  pairs are merged across the block, and a second pass writes
  exp(x - max) / sum; a running max that is still -inf is shifted by 0, so a
  masked prefix never computes exp(-inf - (-inf)). 3 x itemsize bytes per
  element: the large-vocabulary advantage this pair is here to measure.

float16 is computed in float32. Inputs along another axis, or strided, are
made contiguous first (see ``_cuda_softmax``).
"""

from softmax_bench import Backend

from . import _cuda_softmax as cuda

DESCRIPTIONS = {
    "maxshift": "CUDA RawModule, one block per row: max, sum and write passes (3 reads)",
    "online": "CUDA RawModule, one block per row: online max+sum pass, write pass (2 reads)",
}


def _backend(variant: str) -> Backend:
    return Backend(
        name=f"cupy-{variant}",
        library="cupy",
        devices=("cuda",),
        dtypes=cuda.DTYPES,
        softmax=lambda x, axis=-1: cuda.launch(variant, "softmax", x, axis),
        log_softmax=lambda x, axis=-1: cuda.launch(variant, "log_softmax", x, axis),
        available=cuda.compile_problem,
        description=DESCRIPTIONS[variant],
    )


backends = [_backend(variant) for variant in cuda.VARIANTS]
