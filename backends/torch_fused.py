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


def cross_entropy(logits, target, ignore_index=-100, options=None):
    """F.cross_entropy; weight, label_smoothing and reduction are its own, the rest composed around it.

    Soft-cap and temperature transform the logits before the loss; the
    z-loss adds ``z·lse²`` on non-ignored rows, with the log-sum-exp squared
    in float32 at least (in float16, lse ≈ 300 squares past 65504).
    """
    import torch
    import torch.nn.functional as F

    if options is None:
        return F.cross_entropy(logits, target, reduction="none", ignore_index=ignore_index)
    z = logits
    if options.softcap is not None:
        z = options.softcap * torch.tanh(z / options.softcap)
    if options.temperature != 1.0:
        z = z / options.temperature
    weight = None
    if options.class_weight is not None:
        weight = torch.tensor(options.class_weight, dtype=z.dtype, device=z.device)
    reduction = "none" if options.z_loss else options.reduction
    loss = F.cross_entropy(z, target, weight=weight, label_smoothing=options.label_smoothing,
                           reduction=reduction, ignore_index=ignore_index)
    if not options.z_loss:
        return loss
    wide = torch.promote_types(z.dtype, torch.float32)
    lse = torch.logsumexp(z.to(wide), dim=-1)
    keep = target != ignore_index
    loss = loss.to(wide) + torch.where(keep, options.z_loss * lse * lse, torch.zeros_like(lse))
    if options.reduction == "sum":
        loss = loss.sum()
    elif options.reduction == "mean":
        # torch's weighted mean: over the target weights of non-ignored rows (NaN when none).
        w = torch.ones(z.shape[-1], dtype=wide, device=z.device) if weight is None else weight.to(wide)
        loss = loss.sum() / w[target.clamp(min=0)][keep].sum()
    return loss.to(z.dtype)


backend = Backend(
    name="torch-fused",
    library="torch",
    devices=("cpu", "cuda"),
    dtypes=("float64", "float32", "float16", "bfloat16"),
    softmax=softmax,
    log_softmax=log_softmax,
    cross_entropy=cross_entropy,
    # z-loss, soft-cap and temperature are composed around F.cross_entropy (derived forms, declared here).
    loss_options=("reduction", "label_smoothing", "z_loss", "softcap", "temperature", "class_weight"),
    description="torch.softmax / torch.log_softmax / F.cross_entropy",
)
