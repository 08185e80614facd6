"""The numba kernels with a long row kept on one thread (as before issue 23):
the baseline the split row is measured against (docs/cpu-roofline.md), in the
same run as the shipped kernels. Named ``unsplit-numba-*``."""

from softmax_bench.backends.numba_kernels import make_backends


def one_thread_split():
    """A 'splitter' that runs each row whole on the calling thread (the unsplit row kernel)."""
    from softmax_bench.backends import _numba_common as kernels

    def unsplit(algo, a, out, limits, constants, poly_unshifted, poly_shifted, seg):
        no_target, no_values, _ = kernels._placeholders(a.dtype)
        kernels._drive_serial(kernels.SOFTMAX, algo, a, a, no_target, no_values, -100, out, no_values, limits,
                              constants, poly_unshifted, poly_shifted)

    return unsplit


backends = make_backends(prefix="unsplit-numba", split=one_thread_split)
