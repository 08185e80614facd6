"""A backend that raises on every call."""

from softmax_bench import Backend


def softmax(x, axis=-1):
    raise RuntimeError("CUDA error: an illegal memory access was encountered\nkernel softmax_fwd failed")


backend = Backend(name="raises", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=softmax)
