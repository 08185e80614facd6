"""torch-fused: torch.softmax and torch.log_softmax, PyTorch's fused kernels.

Gradients come from torch.autograd (the engine differentiates softmax and
log_softmax), which exercises PyTorch's own backward kernels.
"""

from softmax_bench import Backend


def softmax(x, axis=-1):
    import torch

    return torch.softmax(x, dim=axis)


def log_softmax(x, axis=-1):
    import torch

    return torch.log_softmax(x, dim=axis)


backend = Backend(
    name="torch-fused",
    library="torch",
    devices=("cpu", "cuda"),
    dtypes=("float64", "float32", "float16", "bfloat16"),
    softmax=softmax,
    log_softmax=log_softmax,
    description="torch.softmax / torch.log_softmax",
)
