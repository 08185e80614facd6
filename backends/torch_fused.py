"""torch-fused: torch.softmax, torch.log_softmax and F.cross_entropy, PyTorch's fused kernels.

Gradients come from torch.autograd (the engine differentiates softmax,
log_softmax and the loss), which exercises PyTorch's own backward kernels.
"""

from softmax_bench import Backend


def softmax(x, axis=-1):
    import torch

    return torch.softmax(x, dim=axis)


def log_softmax(x, axis=-1):
    import torch

    return torch.log_softmax(x, dim=axis)


def cross_entropy(logits, target, ignore_index=-100):
    import torch.nn.functional as F

    return F.cross_entropy(logits, target, reduction="none", ignore_index=ignore_index)


backend = Backend(
    name="torch-fused",
    library="torch",
    devices=("cpu", "cuda"),
    dtypes=("float64", "float32", "float16", "bfloat16"),
    softmax=softmax,
    log_softmax=log_softmax,
    cross_entropy=cross_entropy,
    description="torch.softmax / torch.log_softmax / F.cross_entropy",
)
