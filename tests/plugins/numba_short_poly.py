"""Planted bug: the numba backends with an exponential one polynomial degree short.

Same kernels, same fit, but the polynomial loses its highest term (an
off-by-one in a Horner loop). In float32 that is an error of up to about
40 ULP in exp(r) at |r| = ln(2)/2; the correctness suite must catch it
(tests/test_numba_kernels.py).
"""

from softmax_bench.backends.numba_kernels import make_backends


def short_exp_params(dtype: str):
    """The shipped exponential's ExpParams with the polynomial's highest term dropped."""
    from softmax_bench.backends import _numba_common as kernels

    shipped = kernels.exp_params(dtype)
    return shipped._replace(poly=tuple(coefficients[:-1] for coefficients in shipped.poly))


backends = make_backends(prefix="short-poly-numba", exp=short_exp_params)
