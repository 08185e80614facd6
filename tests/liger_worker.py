"""Run Liger-Kernel's Triton kernels under TRITON_INTERPRET=1 on CPU tensors; the tests' subprocess.

``python liger_worker.py`` prints one JSON object: for each check, the largest
error of the ``liger`` backend's function against torch in float64. The
variable must be set before triton is imported, hence a process of its own.
"""

from __future__ import annotations

import json
import os

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

from softmax_bench.backends import liger  # noqa: E402


def worst(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref).abs().max())


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 3000, dtype=torch.float64) * 3
    target = torch.tensor([1, 5, -100, 7, 2999, 0, 42, -100])
    dloss = torch.rand(8, dtype=torch.float64) + 0.5
    found = {}
    for dtype in (torch.float32, torch.bfloat16):
        xd = x.to(dtype)
        exact = xd.double()
        name = str(dtype).removeprefix("torch.")
        found[f"softmax {name}"] = worst(liger.softmax(xd.clone()), torch.softmax(exact, -1))
        # A planted error the same comparison must see: softmax at temperature 1.01.
        found[f"planted {name}"] = worst(liger.softmax(xd.clone() * 1.01), torch.softmax(exact, -1))
        found[f"loss {name}"] = worst(liger.cross_entropy(xd.clone(), target),
                                      torch.nn.functional.cross_entropy(exact, target, reduction="none"))
        for layout in ("contiguous", "strided"):
            if layout == "strided":
                wide = torch.zeros(8, 6000, dtype=dtype)
                wide[:, ::2] = xd
                logits = wide[:, ::2]
            else:
                logits = xd.clone()
            xg = logits.detach().requires_grad_(True)
            grad = torch.autograd.grad(liger.cross_entropy(xg, target), xg, dloss.to(dtype))[0]
            xr = exact.clone().requires_grad_(True)
            ref = torch.autograd.grad(torch.nn.functional.cross_entropy(xr, target, reduction="none"), xr, dloss)[0]
            found[f"gradient {layout} {name}"] = worst(grad, ref)
            found[f"logits overwritten {layout} {name}"] = worst(logits, exact) > 0
    print(json.dumps(found))


if __name__ == "__main__":
    main()
