"""jax: jax.nn.softmax and jax.nn.log_softmax under jax.jit.

The engine enables x64 before converting inputs, so float64 is really
float64. jit compiles once per shape and dtype; the timer's warm-up keeps
compilation out of the measurement. Gradients come from jax.vjp.
"""

from functools import lru_cache

from softmax_bench import Backend


@lru_cache(maxsize=None)
def _jitted(op, axis):
    import jax

    return jax.jit(lambda x: getattr(jax.nn, op)(x, axis=axis))


def softmax(x, axis=-1):
    return _jitted("softmax", axis)(x)


def log_softmax(x, axis=-1):
    return _jitted("log_softmax", axis)(x)


backend = Backend(
    name="jax",
    library="jax",
    devices=("cpu", "cuda"),
    dtypes=("float64", "float32", "float16", "bfloat16"),
    softmax=softmax,
    log_softmax=log_softmax,
    description="jax.jit(jax.nn.softmax), x64 enabled",
)
