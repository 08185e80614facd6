"""What is timed: one op of a backend in one pass, its inputs, the bytes it must move, and its check.

An op (``TIMED_OPS``: softmax, log_softmax, cross_entropy) is timed in a pass
(``PASSES``): ``fwd``; ``bwd``, the gradient given the saved forward and an
upstream gradient (the graph or pullback is built outside the timed region);
``full``, forward and backward in one call, a training step's cost. Each is
obtained the way a user of the backend would (``route``): its own function,
a fused forward+backward, composed from its other functions, or autodiff.

``ByteModel``: the least a fused implementation must move for the op and
pass, so GB/s and the copy fraction mean the same thing for every backend.

``Inputs`` holds the arguments of the timed calls: float32 sources on the
device, and buffers (one warm, several cold) refilled before every sample
with a scaled copy of the sources, a different scale per sample and buffer.
So no two samples see the same values (a cache keyed on an array or on its
contents cannot answer), and ``verify`` checks the last output of each
sample against a float64 reference on a few rows, and that the inputs still
hold what was written into them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ..core import adapters
from ..backend import IGNORE_INDEX, PASSES, TIMED_OPS, Backend
from ..errors import NotAvailable
from .calls import check_output, cross_entropy_call, options_unsupported, route as op_route
from .figures import options_tolerance, tolerance
from ..core.formatting import format_figure

# The reference below is float64, not exact: the check allows this many times
# the suite's tolerance. It is here to catch stale, cached or unfinished
# outputs (wrong by whole units), not to judge accuracy (that is `check`'s).
VERIFY_SLACK = 4.0
# Rows of each sample's last output that are checked.
VERIFY_ROWS = 3
# Every 16th row of a cross-entropy batch is padding (target IGNORE_INDEX).
IGNORED_EVERY = 16
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class ByteModel:
    """The bytes one call must move at least: ``arrays`` rows x vocab arrays,
    plus per row ``index_vectors`` int64 and ``value_vectors`` values."""

    text: str
    arrays: int
    index_vectors: int = 0
    value_vectors: int = 0

    def bytes(self, rows: int, vocab: int, itemsize: int) -> int:
        return rows * (vocab * itemsize * self.arrays + 8 * self.index_vectors + itemsize * self.value_vectors)


BYTE_MODELS: dict[tuple[str, str], ByteModel] = {
    **{(op, "fwd"): ByteModel("read x, write y", 2) for op in ("softmax", "log_softmax")},
    **{(op, "bwd"): ByteModel("read y and dy, write dx", 3) for op in ("softmax", "log_softmax")},
    **{(op, "full"): ByteModel("read x and dy, write y and dx", 4) for op in ("softmax", "log_softmax")},
    ("cross_entropy", "fwd"): ByteModel("read logits and target, write loss", 1, 1, 1),
    ("cross_entropy", "bwd"): ByteModel("read logits, target, dloss and the saved log-sum-exp, write dlogits", 2, 1, 2),
    ("cross_entropy", "full"): ByteModel("read logits, target and dloss, write loss and dlogits", 2, 1, 2),
}

def routes(backend: Backend, op: str, pass_: str) -> Optional[tuple[str, bool]]:
    """(route, whether a forward was timed through a fused forward+backward), or None."""
    if op == "cross_entropy":
        if pass_ == "fwd":
            how = op_route(backend, "cross_entropy")
            return None if how is None else (how, how == "fused")
        if pass_ == "bwd":
            how = op_route(backend, "ce_grad")
            # The fused call is a full pass; a backward alone is its derivation or autodiff.
            if how == "fused":
                how = "derived" if backend.log_softmax and backend.log_softmax_vjp else (
                    "autodiff" if backend.library in adapters.autodiff_libraries() else None)
            return None if how is None else (how, False)
        how = op_route(backend, "ce_grad")
        return None if how is None else (how, False)
    if backend.function(op) is None:
        return None
    if pass_ == "fwd":
        return ("explicit", False)
    how = op_route(backend, f"{op}_vjp")
    return None if how is None else (how, False)


def unsupported(backend: Backend, op: str, pass_: str) -> Optional[str]:
    """Why ``backend`` cannot be timed on ``op`` in ``pass_``, or None."""
    if op not in TIMED_OPS or pass_ not in PASSES:
        return f"unknown op {op!r} or pass {pass_!r}"
    if routes(backend, op, pass_) is None:
        needs = {"fwd": op, "bwd": f"{op} and its VJP (or autodiff)", "full": f"{op} and its VJP (or autodiff)"}[pass_]
        return f"has no {needs}" if op != "cross_entropy" else "has no cross_entropy, fused cross-entropy or log_softmax (and VJP)"
    return None


# ------------------------------------------------------------------ the calls


def _pullbacks(jax: Any, forward: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """x -> the pullback of ``forward`` at x, always with the same tree structure.

    A new ``jax.vjp`` is a new function, which a jitted call of it would
    retrace and compile inside the timed region; the first pullback's
    structure is kept and only the residuals (its leaves) change.
    """
    treedef = []

    def pullback(x):
        pb = jax.vjp(forward, x)[1]
        leaves, structure = jax.tree_util.tree_flatten(pb)
        if not treedef:
            treedef.append(structure)
        return jax.tree_util.tree_unflatten(treedef[0], leaves)

    return pullback


def _retainable(torch: Any) -> None:
    """Let a compiled backward run again on the same graph (the bwd pass differentiates one saved
    graph many times): torch.compile's donated buffers forbid retain_graph otherwise."""
    try:
        torch._functorch.config.donated_buffer = False
    except AttributeError:  # an older torch without donated buffers
        pass


def _softmax_call(backend: Backend, adapter: adapters.Adapter, op: str, pass_: str, how: str) -> tuple[Callable, Callable]:
    """(fn, build): the timed function, and how a buffer's named arrays become its args."""
    f = backend.function(op)
    vjp = backend.function(f"{op}_vjp")
    lib = backend.library
    if pass_ == "fwd":
        return (lambda x: f(x, axis=-1)), (lambda a: (a["x"],))
    if how == "explicit":
        if pass_ == "bwd":
            return (lambda y, dy: vjp(y, dy, axis=-1)), (lambda a: (a["y"], a["dy"]))

        def full(x, dy):
            y = f(x, axis=-1)
            return y, vjp(y, dy, axis=-1)

        return full, (lambda a: (a["x"], a["dy"]))
    if lib == "torch":
        torch = adapter.torch
        if pass_ == "bwd":
            _retainable(torch)

            def graph(a):
                xg = a["x"].detach().requires_grad_(True)
                return (xg, adapter.graph(f(xg, axis=-1)), a["dy"])

            return (lambda xg, y, dy: torch.autograd.grad(y, xg, dy, retain_graph=True)[0]), graph

        def full_torch(x, dy):
            xg = x.detach().requires_grad_(True)
            y = adapter.graph(f(xg, axis=-1))
            return y.detach(), torch.autograd.grad(y, xg, dy)[0]

        return full_torch, (lambda a: (a["x"], a["dy"]))
    jax = adapter.jax
    if pass_ == "bwd":
        pull = jax.jit(lambda pb, dy: pb(dy)[0])
        at = _pullbacks(jax, lambda v: f(v, axis=-1))
        return pull, (lambda a: (at(a["x"]), a["dy"]))

    @jax.jit
    def full_jax(x, dy):
        y, pb = jax.vjp(lambda v: f(v, axis=-1), x)
        return y, pb(dy)[0]

    return full_jax, (lambda a: (a["x"], a["dy"]))


def _cross_entropy_call(backend: Backend, adapter: adapters.Adapter, pass_: str, how: str,
                        options: Any = None) -> tuple[Callable, Callable]:
    lib = backend.library
    loss_route = op_route(backend, "cross_entropy")

    def loss(x, target, dloss):
        return cross_entropy_call(backend, adapter, "cross_entropy", loss_route, x, target, dloss, options=options)

    if pass_ == "fwd":
        return (lambda x, t, dl: loss(x, t, dl)), (lambda a: (a["x"], a["target"], a["dloss"]))
    if how == "fused":
        # options= only when not the plain loss: plugins that know nothing of options keep working.
        extra = {"options": options} if options is not None and options.active() else {}
        return (lambda x, t, dl: backend.cross_entropy_fwd_bwd(x, t, dl, ignore_index=IGNORE_INDEX, **extra)), (
            lambda a: (a["x"], a["target"], a["dloss"]))
    if how == "derived":
        def grad(lsm, t, dl):
            return backend.log_softmax_vjp(lsm, adapter.scatter_rows(t, -dl, lsm, IGNORE_INDEX), axis=-1)

        if pass_ == "bwd":
            return grad, (lambda a: (backend.log_softmax(a["x"], axis=-1), a["target"], a["dloss"]))

        def full(x, t, dl):
            lsm = backend.log_softmax(x, axis=-1)
            return adapter.nll(lsm, t, IGNORE_INDEX), grad(lsm, t, dl)

        return full, (lambda a: (a["x"], a["target"], a["dloss"]))
    if lib == "torch":
        torch = adapter.torch
        if pass_ == "bwd":
            _retainable(torch)

            def graph(a):
                xg = a["x"].detach().requires_grad_(True)
                return (xg, adapter.graph(loss(xg, a["target"], a["dloss"])), a["dloss"])

            return (lambda xg, l, dl: torch.autograd.grad(l, xg, dl, retain_graph=True)[0]), graph

        def full_torch(x, t, dl):
            xg = x.detach().requires_grad_(True)
            value = adapter.graph(loss(xg, t, dl))
            return value.detach(), torch.autograd.grad(value, xg, dl)[0]

        return full_torch, (lambda a: (a["x"], a["target"], a["dloss"]))
    jax = adapter.jax
    if pass_ == "bwd":
        pull = jax.jit(lambda pb, dl: pb(dl)[0])
        pullbacks: dict[int, Callable] = {}

        def build_ce(a):
            # The targets are fixed for a workload: one pullback maker per target array.
            key = id(a["target"])
            if key not in pullbacks:
                pullbacks[key] = _pullbacks(jax, lambda v, t=a["target"], dl=a["dloss"]: loss(v, t, dl))
            return (pullbacks[key](a["x"]), a["dloss"])

        return pull, build_ce

    @jax.jit
    def full_jax(x, t, dl):
        value, pb = jax.vjp(lambda v: loss(v, t, dl), x)
        return value, pb(dl)[0]

    return full_jax, (lambda a: (a["x"], a["target"], a["dloss"]))


@dataclass
class Workload:
    """One backend's op in one pass: the timed function and how its arguments are made."""

    backend: Backend
    adapter: adapters.Adapter
    device: str
    dtype: str
    op: str
    pass_: str
    route: str
    includes_bwd: bool
    fn: Callable
    build: Callable[[dict], tuple]
    options: Any = None  # the loss options (a CrossEntropyOptions) of a cross-entropy; None: the plain loss

    @property
    def reduced(self) -> bool:
        """Whether the loss is one number (reduction mean or sum) and its upstream gradient too."""
        return self.options is not None and self.options.reduction != "none"

    @property
    def byte_model(self) -> ByteModel:
        return BYTE_MODELS[(self.op, self.pass_)]

    @property
    def outputs(self) -> tuple[str, ...]:
        """What ``fn`` returns: one array, or a pair."""
        if self.op == "cross_entropy":
            return {"fwd": ("loss",), "bwd": ("dx",), "full": ("loss", "dx")}[self.pass_]
        return {"fwd": ("y",), "bwd": ("dx",), "full": ("y", "dx")}[self.pass_]

    def named(self, out: Any) -> dict[str, Any]:
        names = self.outputs
        if len(names) == 1:
            return {names[0]: out}
        if not isinstance(out, (tuple, list)) or len(out) != len(names):
            from ..core.isolation import BackendFailure

            raise BackendFailure(f"returned {type(out).__name__}, not a ({', '.join(names)}) pair", "invalid")
        return dict(zip(names, out))

    def check(self, out: Any, rows: int, vocab: int) -> None:
        """``BackendFailure`` unless every output honours the contract."""
        for name, value in self.named(out).items():
            shape = (() if self.reduced else (rows,)) if name == "loss" else (rows, vocab)
            check_output(self.adapter, value, shape, self.dtype, self.device)


def build(backend: Backend, device: str, dtype: str, op: str, pass_: str, options: Any = None) -> Workload:
    """The workload of ``op`` in ``pass_`` (a cross-entropy under loss ``options``); ``ValueError`` when the
    backend cannot provide it, ``errors.NotAvailable`` when it does not declare the options."""
    reason = unsupported(backend, op, pass_)
    if reason:
        raise ValueError(f"{backend.name}: {reason}")
    how, includes_bwd = routes(backend, op, pass_)
    adapter = adapters.get(backend.library)
    if op == "cross_entropy":
        reason = options_unsupported(backend, "cross_entropy" if pass_ == "fwd" else "ce_grad", options)
        if reason:
            raise NotAvailable(reason)
        fn, build_args = _cross_entropy_call(backend, adapter, pass_, how, options)
    else:
        options = None  # the loss options are the cross-entropy's alone
        fn, build_args = _softmax_call(backend, adapter, op, pass_, how)
    return Workload(backend, adapter, device, dtype, op, pass_, how, includes_bwd, fn, build_args,
                    options if options is not None and options.active() else None)


# ------------------------------------------------------------------ inputs


def _scale(sample: int, buffer: int) -> float:
    """A different scale for every (sample, buffer), in [0.75, 1.25): the logits' temperature moves."""
    return 0.75 + 0.5 * ((sample + 1) * 7919 + buffer * 104729) * _GOLDEN % 1.0


def _reference_softmax(x: np.ndarray, log: bool) -> np.ndarray:
    """float32 softmax or log_softmax of x, a row block at a time (a source of y, not a reference)."""
    out = np.empty_like(x)
    for start in range(0, len(x), 256):
        block = x[start:start + 256]
        z = block - block.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        out[start:start + 256] = z - lse if log else np.exp(z - lse)
    return out


# Elements each generator of ``standard_normal`` fills: fixed, so the values do not depend on the thread count.
NORMAL_CHUNK = 1 << 22


def standard_normal(shape: tuple[int, ...], seed: np.random.SeedSequence) -> np.ndarray:
    """float32 standard-normal values, generated by all cores: chunk i comes from
    the i-th child of ``seed``. A 4096 x 256000 input is a billion values, about
    15 s on one core; inputs are made per timed unit, so this is most of a GPU run."""
    out = np.empty(shape, dtype=np.float32)
    flat = out.reshape(-1)
    starts = range(0, flat.size, NORMAL_CHUNK)
    # The children ``seed.spawn`` would give, without its counter: the same seed, the same values.
    children = [np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, i)) for i in range(len(starts))]

    def fill(i: int) -> None:
        start = starts[i]
        np.random.default_rng(children[i]).standard_normal(out=flat[start:start + NORMAL_CHUNK], dtype=np.float32)

    if len(starts) <= 1:
        for i in range(len(starts)):
            fill(i)
        return out
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        list(pool.map(fill, range(len(starts))))  # numpy's generators release the GIL while filling
    return out


class Inputs:
    """The arguments of a workload's timed calls, refilled with new values before every sample."""

    def __init__(self, workload: Workload, rows: int, vocab: int, buffers: int, seed: int = 0):
        self.workload, self.rows, self.vocab = workload, rows, vocab
        adapter, device = workload.adapter, workload.device
        rng = np.random.default_rng(seed)
        streams = [np.random.SeedSequence(seed, spawn_key=(i,)) for i in range(2)]
        x = standard_normal((rows, vocab), streams[0])
        host: dict[str, np.ndarray] = {"x": x}
        if workload.op != "cross_entropy" and workload.pass_ != "fwd":
            host["dy"] = standard_normal((rows, vocab), streams[1])
            if workload.route == "explicit" and workload.pass_ == "bwd":
                host["y"] = _reference_softmax(x, log=workload.op == "log_softmax")
        if workload.op == "cross_entropy":
            target = rng.integers(0, vocab, rows)
            target[IGNORED_EVERY - 1::IGNORED_EVERY] = IGNORE_INDEX
            self.target = adapter.index_array(target, device)
            self.host_target = target
            host["dloss"] = rng.uniform(0.5, 2.0, rows).astype(np.float32)
            if workload.reduced:
                host["dloss"] = host["dloss"][:1].reshape(())  # the upstream gradient of one number
        # Sources live on the device in float32; every refill is one scaled copy per array.
        self.sources = {name: adapter.from_numpy(value, device, "float32") for name, value in host.items()}
        del host, x
        self.arrays: list[dict[str, Any]] = [{} for _ in range(buffers)]
        self.scales: list[float] = [1.0] * buffers
        self.args: list[tuple] = [()] * buffers
        self._by_args: dict[int, int] = {}
        self.refill(-1)

    def refill(self, sample: int) -> None:
        """New values in every buffer before ``sample`` (outside the timed region)."""
        adapter = self.workload.adapter
        self._by_args.clear()
        for b, arrays in enumerate(self.arrays):
            self.args[b] = ()  # drop the old graph or pullback before building the next
            scale = _scale(sample, b)
            for name, source in self.sources.items():
                arrays[name] = adapter.fill_scaled(arrays.get(name), source, scale, self.workload.dtype)
            if "target" not in arrays and self.workload.op == "cross_entropy":
                arrays["target"] = self.target
            self.scales[b] = scale
            self.args[b] = self.workload.build(arrays)
            self._by_args[id(self.args[b])] = b
        self.workload.adapter.wait(self.args, self.workload.device)

    def release_all_but_one(self) -> None:
        """Keep one buffer (for the memory measurement): the cold rotation's others go."""
        del self.arrays[1:], self.args[1:], self.scales[1:]

    # -------------------------------------------------------------- the check

    def verify(self, sample: int, args: tuple, out: Any) -> Optional[str]:
        """Why the last output of a sample is not to be trusted (wrong, or the inputs were written), or None."""
        b = self._by_args.get(id(args))
        if b is None:
            return None
        w, adapter = self.workload, self.workload.adapter
        rng = np.random.default_rng(sample)
        rows = sorted({0, self.rows - 1, *rng.integers(0, self.rows, VERIFY_ROWS - 2).tolist()})
        idx = np.asarray(rows)
        arrays = self.arrays[b]
        host = {}
        for name, source in self.sources.items():
            if name == "dloss" and w.reduced:  # one number, not per row
                host[name] = adapter.to_numpy(arrays[name]).astype(np.float64)
                continue
            written = adapter.to_numpy(adapter.fill_scaled(None, _take(adapter, source, idx), self.scales[b], w.dtype))
            written = written.astype(np.float64)
            if w.op in w.backend.overwrites_input:  # declared: its inputs were refilled before the call
                host[name] = written
                continue
            got = adapter.to_numpy(_take(adapter, arrays[name], idx)).astype(np.float64)
            if not np.array_equal(got, written, equal_nan=True):
                return "mutates its input"
            host[name] = got
        if w.op == "cross_entropy":
            host["target"] = np.asarray(adapter.to_numpy(self.target))[idx]
        named = w.named(out)
        if w.options is not None:
            return _verify_options(w, named, idx, host, self.host_target, sample)
        for name, value in named.items():
            got = adapter.to_numpy(_take(adapter, value, idx)).astype(np.float64)
            problem = _compare(w, name, got, host)
            if problem:
                return f"the timed calls' outputs are wrong ({name} of sample {sample}: {problem})"
        return None


def _verify_options(w: Workload, named: dict[str, Any], idx: np.ndarray, host: dict[str, np.ndarray],
                    target: np.ndarray, sample: int) -> Optional[str]:
    """``verify`` under loss options: the rows ``idx`` against loss_options.float64_rows, within VERIFY_SLACK x
    figures.options_tolerance. A reduced loss is one number of every row, so only its gradient's rows are checked."""
    from dataclasses import replace

    from ..loss_options import float64_rows, row_cotangents

    if w.reduced:  # each row's share of the one upstream gradient (a mean's over every row's weight)
        dloss = row_cotangents(target, w.options, host["dloss"], IGNORE_INDEX, np.float64)[idx]
    else:
        dloss = host["dloss"]  # the checked rows' own, already taken
    per_row = replace(w.options, reduction="none")
    loss, grad = float64_rows(host["x"], host["target"], per_row, dloss, IGNORE_INDEX)
    for name, value in named.items():
        if name == "loss" and w.reduced:
            continue
        got = w.adapter.to_numpy(_take(w.adapter, value, idx)).astype(np.float64)
        if name == "loss":
            ref = loss[:, None]
            tol = options_tolerance("cross_entropy", w.dtype, host["x"], host["target"], per_row, dloss, ref)
            problem = _worst(got[:, None], ref, tol)
        else:
            tol = options_tolerance("ce_grad", w.dtype, host["x"], host["target"], per_row, dloss, grad)
            problem = _worst(got, grad, tol)
        if problem:
            return f"the timed calls' outputs are wrong ({name} of sample {sample}: {problem})"
    return None


def _take(adapter: adapters.Adapter, array: Any, idx: np.ndarray) -> Any:
    if adapter.library == "torch":
        return array.detach()[adapter.torch.as_tensor(idx, device=array.device)]
    return array[adapter.xp.asarray(idx)] if adapter.library != "numpy" else array[idx]


def _float64_softmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(softmax, log_softmax) of float64 rows."""
    with np.errstate(all="ignore"):
        z = x - np.max(x, axis=1, keepdims=True)
        log_s = np.log(np.sum(np.exp(z), axis=1, keepdims=True))
        return np.exp(z - log_s), z - log_s


def _compare(w: Workload, name: str, got: np.ndarray, host: dict[str, np.ndarray]) -> Optional[str]:
    """Check one output's rows against a float64 reference, within VERIFY_SLACK x the suite's tolerance."""
    dtype = w.dtype
    if w.op == "cross_entropy":
        x = host["x"]
        p, log_p = _float64_softmax(x)
        target = host["target"]
        kept = target != IGNORE_INDEX
        dloss = host["dloss"]
        safe = np.where(kept, target, 0)
        onehot = np.zeros_like(x)
        onehot[np.flatnonzero(kept), safe[kept]] = 1.0
        dy = -onehot * dloss[:, None]
        if name == "loss":
            ref = np.where(kept, -log_p[np.arange(len(x)), safe], 0.0)[:, None]
            tol = tolerance("cross_entropy", "value", dtype, x, ref, {"target": target}, p)
            return _worst(got[:, None], ref, tol)
        ref = dloss[:, None] * (p - onehot) * kept[:, None]
        return _worst(got, ref, tolerance("ce_grad", w.route, dtype, x, ref, {"dy": dy}, p))
    if name in ("y",) or w.pass_ == "fwd":
        p, log_p = _float64_softmax(host["x"])
        ref = p if w.op == "softmax" else log_p
        return _worst(got, ref, tolerance(w.op, "value", dtype, host["x"], ref, {}, p))
    dy = host["dy"]
    check_op = f"{w.op}_vjp"
    if "y" in host:  # an explicit VJP of the given output
        y = host["y"]
        if w.op == "softmax":
            ref = y * (dy - np.sum(dy * y, axis=1, keepdims=True))
        else:
            with np.errstate(over="ignore"):
                ref = dy - np.exp(y) * np.sum(dy, axis=1, keepdims=True)
        return _worst(got, ref, tolerance(check_op, "explicit", dtype, y, ref, {"y": y, "dy": dy}))
    p, _ = _float64_softmax(host["x"])
    if w.op == "softmax":
        ref = p * (dy - np.sum(dy * p, axis=1, keepdims=True))
    else:
        ref = dy - p * np.sum(dy, axis=1, keepdims=True)
    return _worst(got, ref, tolerance(check_op, "autodiff", dtype, host["x"], ref, {"dy": dy}, p))


def _worst(got: np.ndarray, ref: np.ndarray, tol: np.ndarray) -> Optional[str]:
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(got - ref)
        err = np.where(np.isnan(got) & ~np.isnan(ref), np.inf, err)
        ratio = np.where(err == 0, 0.0, err / (VERIFY_SLACK * tol))
    worst = np.unravel_index(int(np.nanargmax(ratio)), ratio.shape) if ratio.size else None
    if worst is None or not ratio[worst] > 1:
        return None
    return (f"error {format_figure(err[worst])} is {format_figure(ratio[worst] * VERIFY_SLACK)}x the suite's "
            f"tolerance: got {format_figure(got[worst])}, expected {format_figure(ref[worst])}")


