"""The backend contract: what a softmax implementation declares to be benchmarked.

This is the public API that plugins depend on; see DESIGN.md. A ``Backend`` is a
plain, validated record. It carries no state and imports nothing heavy: the
engine converts inputs to the backend's library, device and dtype, and calls
the functions it holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Sequence

LIBRARIES = ("numpy", "torch", "jax", "cupy")
DEVICES = ("cpu", "cuda")
DTYPES = ("float64", "float32", "float16", "bfloat16")
# The functions a Backend may hold (``softmax`` is required, the rest optional).
OPS = ("softmax", "log_softmax", "softmax_vjp", "log_softmax_vjp", "cross_entropy", "cross_entropy_fwd_bwd",
       "linear_cross_entropy", "linear_cross_entropy_fwd_bwd")
# What the correctness suite checks: the values, and the gradients.
# cross_entropy is the per-row loss, ce_grad its gradient dloss * (p - onehot),
# each obtained the way a user of the backend would (see calls.route).
VALUE_OPS = ("softmax", "log_softmax", "cross_entropy")
GRADIENT_OPS = ("softmax_vjp", "log_softmax_vjp", "ce_grad")
# What the timing engine times: each op in each pass (forward; backward given the
# saved forward and an upstream gradient; both in one call, the training step).
TIMED_OPS = ("softmax", "log_softmax", "cross_entropy")
PASSES = ("fwd", "bwd", "full")
# Ways a backend may spread one softmax over processes: "vocab" shards the reduced axis.
PARALLEL = ("vocab",)
# Target index of a row that contributes no loss and no gradient (torch, Liger, Megatron).
IGNORE_INDEX = -100

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

SoftmaxFn = Callable[..., Any]
AvailabilityFn = Callable[[str], Optional[str]]


class BackendError(ValueError):
    """A backend declaration that breaks the contract (names the bad field)."""


@dataclass(frozen=True)
class Backend:
    """One softmax implementation and what it supports.

    ``softmax(x, axis=-1)`` and ``log_softmax(x, axis=-1)`` take and return an
    array of ``library`` on ``x``'s device with ``x``'s shape and dtype.
    ``softmax_vjp(y, dy, axis=-1)`` returns dx given the softmax output y and
    the cotangent dy; ``log_softmax_vjp(y, dy, axis=-1)`` likewise for the
    log_softmax output y. torch and jax backends without explicit VJPs are
    differentiated by autodiff; a torch kernel with no autograd graph has
    its gradients listed as not available (give it the VJPs to have them).

    ``cross_entropy(logits, target, ignore_index=-100)`` returns the per-row
    loss of 2-D logits (rows, vocab) and int64 targets, 0 on ignored rows;
    ``cross_entropy_fwd_bwd(logits, target, dloss, ignore_index=-100)``
    returns (loss, dlogits) with dlogits = dloss[:, None] * (softmax -
    onehot(target)) in one call. Without them the loss is derived from
    ``log_softmax`` (and its VJP, or autodiff).

    ``linear_cross_entropy(hidden, weight, target, ignore_index=-100,
    bias=None)`` is the language-model head: the per-row loss of the logits
    ``hidden (N, H) @ weight (V, H).T (+ bias)``, 0 on ignored rows; a fused
    implementation need never hold the N x V logits.
    ``linear_cross_entropy_fwd_bwd(hidden, weight, target, dloss,
    ignore_index=-100, bias=None)`` returns ``(loss, dhidden, dweight)``
    with g = dloss[:, None] * (softmax - onehot), dhidden = g @ weight and
    dweight = g.T @ hidden. Without them the op is derived from a matrix
    multiply and the backend's cross_entropy (see softmax_bench.measure.lce).
    ``linear_cross_entropy_bias=True`` says both take ``bias`` (V,); the
    training step then returns ``(loss, dhidden, dweight, dbias)`` with
    dbias = g.sum(0). Without it, a case with a bias is recorded not
    available on that backend (the functions are never called with one).
    ``loss_options`` names the options of ``softmax_bench.loss_options.
    CrossEntropyOptions`` that the loss functions compute themselves; they
    then also take ``options=`` (the record). A backend that declares none
    is called without ``options=`` and only for the plain loss: any other
    option makes its unit not available, with the reason, never dropped.

    ``parallel="vocab"`` says the backend shards the reduced axis over
    processes: every function then also takes ``shard=`` (a
    ``softmax_bench.distributed.Shard``: rank, world size, group, the slice
    of the vocabulary this rank holds), or ``shard=None`` for the whole
    axis in one process, as the shared suite calls it.

    ``available(device)`` is an optional hook returning ``None`` when the
    backend can run on ``device`` or a one-line reason when it cannot, for
    requirements beyond the library and device themselves (a compiler, a
    package). It must be cheap and must not raise.

    ``threads()`` says how many threads the backend computes with, where
    that is its own setting (a compiled kernel's thread pool).
    ``release()`` drops memory the backend keeps between calls (a pool of
    output buffers, as GPU caching allocators keep); the engine calls it
    before it measures a call's peak memory, so that the figure counts what
    the call needs, not what an earlier call left behind.

    ``exps_per_element`` maps ``(op, pass)`` to the exponentials one call
    computes per element, for the compute side of the roofline
    (``roofline_s = max(bytes / copy rate, exps / exp rate)``); a pair not
    listed is unknown and its roofline is left null, never guessed. ``exp(x,
    out)``, where the kernels inline an exponential of their own, computes it
    over a 1-D array of ``x <= 0`` on one thread; the exp rate is then
    measured on it rather than on the library's ``exp``.

    ``overwrites_input`` names the ops (of ``TIMED_OPS``) whose calls write
    into their inputs on purpose (Liger's cross-entropy stores the gradient
    over the logits to save memory). The timer then gives each timed call of
    those ops freshly written inputs, outside the timed region, and their
    records say ``in_place``; an undeclared mutation stays suspect.
    """

    name: str
    library: str
    devices: Sequence[str]
    dtypes: Sequence[str]
    softmax: SoftmaxFn
    log_softmax: Optional[SoftmaxFn] = None
    softmax_vjp: Optional[SoftmaxFn] = None
    log_softmax_vjp: Optional[SoftmaxFn] = None
    cross_entropy: Optional[SoftmaxFn] = None
    cross_entropy_fwd_bwd: Optional[SoftmaxFn] = None
    linear_cross_entropy: Optional[SoftmaxFn] = None
    linear_cross_entropy_fwd_bwd: Optional[SoftmaxFn] = None
    linear_cross_entropy_bias: bool = False
    parallel: Optional[str] = None
    threads: Optional[Callable[[], int]] = None
    release: Optional[Callable[[], None]] = None
    overwrites_input: Sequence[str] = ()
    loss_options: Sequence[str] = ()
    exps_per_element: Mapping[tuple[str, str], int] = field(default_factory=dict, compare=False)
    exp: Optional[Callable[[Any, Any], None]] = None
    available: Optional[AvailabilityFn] = None
    description: str = ""
    origin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Frozen, so normalise through object.__setattr__.
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "dtypes", tuple(self.dtypes))
        object.__setattr__(self, "overwrites_input", tuple(self.overwrites_input))
        object.__setattr__(self, "loss_options", tuple(self.loss_options))
        object.__setattr__(self, "exps_per_element", MappingProxyType(dict(self.exps_per_element)))
        validate(self)

    @property
    def ops(self) -> tuple[str, ...]:
        """The operations this backend provides itself (not derived)."""
        return tuple(op for op in OPS if getattr(self, op) is not None)

    def function(self, op: str) -> Optional[SoftmaxFn]:
        """The callable for ``op`` or ``None`` when the backend lacks it."""
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}; valid: {', '.join(OPS)}")
        return getattr(self, op)


def validate(backend: Backend) -> None:
    """Raise ``BackendError`` naming the first field that breaks the contract."""
    if not isinstance(backend.name, str) or not _NAME.match(backend.name):
        raise BackendError(
            f"Backend.name={backend.name!r}: must be lowercase [a-z0-9._-], starting with a letter or digit"
        )
    where = f"backend {backend.name!r}"
    if backend.library not in LIBRARIES:
        raise BackendError(f"{where}: library={backend.library!r}; valid: {', '.join(LIBRARIES)}")
    if not backend.devices:
        raise BackendError(f"{where}: devices is empty; valid: {', '.join(DEVICES)}")
    for device in backend.devices:
        if device not in DEVICES:
            raise BackendError(f"{where}: devices has {device!r}; valid: {', '.join(DEVICES)}")
    if not backend.dtypes:
        raise BackendError(f"{where}: dtypes is empty; valid: {', '.join(DTYPES)}")
    for dtype in backend.dtypes:
        if dtype not in DTYPES:
            raise BackendError(f"{where}: dtypes has {dtype!r}; valid: {', '.join(DTYPES)}")
    for op in backend.overwrites_input:
        if op not in TIMED_OPS:
            raise BackendError(f"{where}: overwrites_input has {op!r}; valid: {', '.join(TIMED_OPS)}")
    for key, count in backend.exps_per_element.items():
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] in TIMED_OPS and key[1] in PASSES):
            raise BackendError(f"{where}: exps_per_element has key {key!r}; valid: (op, pass) with op in "
                               f"{', '.join(TIMED_OPS)} and pass in {', '.join(PASSES)}")
        if not (isinstance(count, int) and count >= 0):
            raise BackendError(f"{where}: exps_per_element[{key!r}] = {count!r}; valid: an integer >= 0")
    if backend.exp is not None and not callable(backend.exp):
        raise BackendError(f"{where}: exp must be callable (x, out) -> None")
    from .loss_options import OPTION_NAMES

    for name in backend.loss_options:
        if name not in OPTION_NAMES:
            raise BackendError(f"{where}: loss_options has {name!r}; valid: {', '.join(OPTION_NAMES)}")
    if backend.parallel is not None and backend.parallel not in PARALLEL:
        raise BackendError(f"{where}: parallel={backend.parallel!r}; valid: None, {', '.join(PARALLEL)}")
    if not callable(backend.softmax):
        raise BackendError(f"{where}: softmax must be callable (x, axis=-1) -> array")
    for op in OPS[1:] + ("available", "threads", "release"):
        fn = getattr(backend, op)
        if fn is not None and not callable(fn):
            raise BackendError(f"{where}: {op} must be callable or None")
