"""The fused linear cross-entropy op (issue 21): the language-model head as it is trained.

``linear_cross_entropy(hidden (N, H), weight (V, H), target (N,))`` is the
per-row loss of the logits ``hidden @ weight.T``; its gradient for an upstream
per-row ``dloss`` is ``dhidden = g @ weight`` and ``dweight = g.T @ hidden``
with ``g = dloss[:, None] * (softmax - onehot)`` (0 on ignored rows).

This module holds the op's exact reference, its check cases, its routes
(explicit, derived = matrix multiply + the backend's cross_entropy), the
check, and a timing with the FLOP model and peak memory against the logits'
size. It sits beside the softmax engine rather than inside it: the engine's
case, figure and timing modules take one input ``x`` of the reduced shape,
and this op takes three of different shapes (see docs/linear-cross-entropy.md
for the places a one-engine version has to touch).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ..backend import IGNORE_INDEX, Backend
from ..core import adapters
from . import calls, memory, reference

OP = "linear_cross_entropy"
# A fused call never stores the logits, so it has no backward apart from its
# forward: the gradient recomputes them (Liger computes it in the forward
# itself). A `bwd` timing would be the full call under another name, so the op
# has two passes: the loss alone, and loss with both gradients.
PASSES = ("fwd", "full")
# Results a check compares: the loss, and the two gradients of the full pass.
OUTPUTS = ("loss", "dhidden", "dweight")
# Unit roundoff of the dtypes the op is checked in.
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24}
# Multiplier on the leading-order error bound: the bound is first order in u
# (gamma_n = n u / (1 - n u) ~ n u at these sizes) and its constant is not
# tight for every summation order a library picks, so allow a factor.
SAFETY = 8.0


# -- the exact reference --------------------------------------------------------

@dataclass(frozen=True)
class Exact:
    """The exact loss and gradients (float64, rounded once from 200-bit values) and their error bounds."""

    loss: np.ndarray
    dhidden: np.ndarray
    dweight: np.ndarray
    # Per-element first-order error bound in units of u (of the dtype under test).
    loss_bound: np.ndarray
    dhidden_bound: np.ndarray
    dweight_bound: np.ndarray


def exact(hidden: np.ndarray, weight: np.ndarray, target: np.ndarray, dloss: np.ndarray,
          ignore_index: int = IGNORE_INDEX) -> Exact:
    """Loss, dhidden and dweight computed in 200-bit arithmetic from the (already rounded) inputs.

    Every product of two float64 values is exact at 200 bits and each sum
    rounds at 2^-200 relative, so the logits, p, and the gradients are exact
    to far below any dtype's rounding; they are rounded once to float64.

    The bounds say how far a correct float implementation may be, in units
    of its u: a logit z_ij formed in floats is off by at most H * S_ij
    (S_ij = sum_k |h_ik w_jk|, the matmul's own bound); the loss by twice the
    largest logit error plus the cross-entropy's own (|lse| + log V + 2);
    each gradient by the sum over its contraction of |g| times its length
    plus p_ij * (logit error) times the other factor.
    """
    hp = reference.HP
    n, h = hidden.shape
    v = weight.shape[0]
    loss = np.zeros(n)
    g = np.zeros((n, v))
    loss_bound = np.zeros(n)
    err_z = np.abs(hidden) @ np.abs(weight).T * h  # H * S_ij, in units of u (float64 is plenty for a bound)
    with hp.precision():
        w_mp = [[hp.mpf(x) for x in row] for row in weight.tolist()]
        for i in range(n):
            t = int(target[i])
            if t == ignore_index:
                continue
            h_mp = [hp.mpf(x) for x in hidden[i].tolist()]
            z = [hp.fsum([a * b for a, b in zip(h_mp, w_mp[j])]) for j in range(v)]
            m = max(z)
            e = [hp.exp(zj - m) for zj in z]
            s = hp.fsum(e)
            lse = m + hp.log(s)
            loss[i] = float(lse - z[t])
            d = hp.mpf(float(dloss[i]))
            row = [ej / s * d for ej in e]
            row[t] -= d
            g[i] = [float(x) for x in row]
            loss_bound[i] = 2 * err_z[i].max() + abs(float(lse)) + math.log(v) + 2
    # Gradients from the exact g: float64 g carries 2^-53 relative error, far
    # below the bound of any dtype we check (float32: 2^-24).
    dhidden = _exact_matmul(g, weight)
    dweight = _exact_matmul(g.T, hidden)
    p = np.abs(g) + 0.0  # |p - onehot| * |dloss| bounds p * |dloss| off the target
    dh_bound = np.abs(g) @ np.abs(weight) * v + (p * err_z) @ np.abs(weight)
    dw_bound = np.abs(g).T @ np.abs(hidden) * n + (p * err_z).T @ np.abs(hidden)
    return Exact(loss, dhidden, dweight, loss_bound, dh_bound, dw_bound)


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b with each entry correctly rounded: math.fsum of products (exact for float32 b, float64 a rounded once)."""
    out = np.empty((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        prods = a[i][:, None] * b  # float64 products: exact when b is float32 and a's 53 bits fit (else 2^-53 relative)
        out[i] = [math.fsum(col) for col in prods.T]
    return out


# -- cases ---------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One check input: hidden, weight, target and dloss (float64, rounded to the dtype at check time)."""

    name: str
    about: str
    make: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _plain(n: int, h: int, v: int, scale: float = 1.0) -> Callable:
    def make(rng):
        hidden = rng.standard_normal((n, h)) * scale
        weight = rng.standard_normal((v, h)) / math.sqrt(h)
        return hidden, weight, rng.integers(0, v, n)
    return make


def _ignored(fraction_rows: slice) -> Callable:
    def make(rng):
        hidden, weight, target = _plain(8, 32, 100)(rng)
        target[fraction_rows] = IGNORE_INDEX
        return hidden, weight, target
    return make


def _target_at(which: str) -> Callable:
    def make(rng):
        hidden, weight, _ = _plain(8, 32, 100, 4.0)(rng)
        z = hidden @ weight.T
        return hidden, weight, (np.argmax(z, 1) if which == "max" else np.argmin(z, 1))
    return make


def _duplicate_rows(rng):
    hidden, weight, target = _plain(8, 32, 100)(rng)
    weight[50:] = weight[:50]
    return hidden, weight, target


CASES = (
    Case("plain", "randn hidden, randn/sqrt(H) weight, 8 x 32, V=100", _plain(8, 32, 100)),
    Case("large_logits", "hidden 300 * randn: logits in the thousands (a naive exp overflows)", _plain(8, 32, 100, 300.0)),
    Case("target_max", "4 * randn, target at each row's largest logit", _target_at("max")),
    Case("target_min", "4 * randn, target at each row's smallest logit (loss ~ range)", _target_at("min")),
    Case("ignored_rows", "rows 2 and 5 have target ignore_index: loss 0, no gradient", _ignored(slice(2, 6, 3))),
    Case("all_ignored", "every target is ignore_index: loss 0, gradients 0", _ignored(slice(None))),
    Case("duplicate_weight_rows", "weight rows 50..99 repeat rows 0..49 (tied logits)", _duplicate_rows),
    Case("odd_vocab", "V = 1031 (prime: not a multiple of any chunk size), 4 x 16", _plain(4, 16, 1031)),
    Case("one_row", "N = 1, V = 257", _plain(1, 16, 257)),
)
CASE_NAMES = tuple(case.name for case in CASES)


def case_inputs(case: Case, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The case's inputs, hidden and weight rounded to ``dtype`` (so the reference sees what the backend sees)."""
    hidden, weight, target = case.make(np.random.default_rng(seed))
    np_dtype = np.float32 if dtype == "float32" else np.float64
    dloss = np.random.default_rng(seed + 1).uniform(0.5, 1.5, len(target))
    return {"hidden": hidden.astype(np_dtype).astype(np.float64), "weight": weight.astype(np_dtype).astype(np.float64),
            "target": np.asarray(target, dtype=np.int64), "dloss": dloss.astype(np_dtype).astype(np.float64)}


# -- routes and calls ------------------------------------------------------------

def route(backend: Backend, pass_: str) -> Optional[str]:
    """How ``backend`` computes ``pass_`` (fwd: the loss; full: loss and both gradients), or None.

    "explicit": the backend's own linear_cross_entropy (fwd) or
    linear_cross_entropy_fwd_bwd (full). "autodiff": full from the backend's
    own linear_cross_entropy, differentiated by its library (torch, jax).
    "derived": the logits from a matrix multiply, then the backend's
    cross-entropy by its own route (calls.route), and the gradients as matrix
    products of dlogits.
    """
    if pass_ == "fwd" and backend.linear_cross_entropy is not None:
        return "explicit"
    if backend.linear_cross_entropy_fwd_bwd is not None:
        return "explicit"
    if backend.linear_cross_entropy is not None and backend.library in adapters.autodiff_libraries():
        return "autodiff"
    op = "cross_entropy" if pass_ == "fwd" else "ce_grad"
    return "derived" if calls.route(backend, op) is not None else None


def call(backend: Backend, device: str, dtype: str, pass_: str, arrays: dict[str, Any]) -> tuple[Any, ...]:
    """One call of the op on already converted ``arrays``: (loss,) for fwd, (loss, dhidden, dweight) otherwise."""
    how = route(backend, pass_)
    if how is None:
        raise ValueError(f"backend {backend.name!r} has no {OP} {pass_}")
    hidden, weight, target, dloss = arrays["hidden"], arrays["weight"], arrays["target"], arrays["dloss"]
    if how == "explicit":
        if pass_ == "fwd" and backend.linear_cross_entropy is not None:
            return (backend.linear_cross_entropy(hidden, weight, target, ignore_index=IGNORE_INDEX),)
        out = backend.linear_cross_entropy_fwd_bwd(hidden, weight, target, dloss, ignore_index=IGNORE_INDEX)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise TypeError(f"{backend.name}: linear_cross_entropy_fwd_bwd must return (loss, dhidden, dweight)")
        return tuple(out)[:1] if pass_ == "fwd" else tuple(out)
    adapter = adapters.get(backend.library)
    if how == "autodiff":
        loss, (dhidden, dweight) = adapter.vjp_many(
            lambda h, w: backend.linear_cross_entropy(h, w, target, ignore_index=IGNORE_INDEX), (hidden, weight), dloss)
        return loss, dhidden, dweight
    logits = hidden @ weight.T  # every supported library's arrays take @ and .T
    loss = calls.cross_entropy_call(backend, adapter, "cross_entropy", calls.route(backend, "cross_entropy"),
                                      logits, target, dloss, None)
    if pass_ == "fwd":
        return (loss,)
    dlogits = calls.cross_entropy_call(backend, adapter, "ce_grad", calls.route(backend, "ce_grad"),
                                         logits, target, dloss, None)
    return loss, dlogits @ weight, dlogits.T @ hidden


def convert(backend: Backend, device: str, dtype: str, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The inputs as the backend's arrays on ``device`` (targets as its index type)."""
    adapter = adapters.get(backend.library)
    out = {name: adapter.from_numpy(inputs[name], device, dtype) for name in ("hidden", "weight", "dloss")}
    out["target"] = adapter.index_array(inputs["target"], device)
    return out


# -- the check -------------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    """One case's outcome for one backend and dtype."""

    backend: str
    case: str
    dtype: str
    route: str
    passed: bool
    # Largest error over the bound, per output (<= 1 passes); or why it failed.
    worst: dict[str, float]
    error: str = ""
    device: str = "cpu"
    rows: int = 0
    hidden: int = 0
    vocab: int = 0

    def record(self) -> dict[str, Any]:
        """The results-file form (kind "check", op linear_cross_entropy)."""
        return {"kind": "check", "op": OP, "pass": "full", "backend": self.backend, "device": self.device,
                "case": self.case, "dtype": self.dtype, "rows": self.rows, "hidden": self.hidden, "vocab": self.vocab,
                "route": self.route, "passed": self.passed, "worst_over_bound": self.worst,
                "failure": self.error or None}


def check_case(backend: Backend, case: Case, dtype: str, device: str = "cpu") -> CheckResult:
    """Loss and both gradients of ``case`` against the exact reference; a raising backend is a failure."""
    inputs = case_inputs(case, dtype)
    how = route(backend, "full") or "none"
    shape = dict(device=device, rows=inputs["hidden"].shape[0], hidden=inputs["hidden"].shape[1],
                 vocab=inputs["weight"].shape[0])
    try:
        arrays = convert(backend, device, dtype, inputs)
        adapter = adapters.get(backend.library)
        with np.errstate(all="ignore"):
            out = call(backend, device, dtype, "full", arrays)
            got = [np.asarray(adapter.to_numpy(o), dtype=np.float64) for o in out]
    except Exception as exc:  # a backend that raises is a recorded failure; the run goes on
        return CheckResult(backend.name, case.name, dtype, how, False, {}, f"{type(exc).__name__}: {exc}", **shape)
    ref = exact(inputs["hidden"], inputs["weight"], inputs["target"], inputs["dloss"])
    u = UNIT_ROUNDOFF[dtype]
    worst: dict[str, float] = {}
    problems = []
    weight_scale = float(np.abs(inputs["weight"]).sum(axis=0).max())
    hidden_scale = float(np.abs(inputs["hidden"]).sum(axis=0).max())
    for name, value, want, bound in zip(OUTPUTS, got, (ref.loss, ref.dhidden, ref.dweight),
                                        (ref.loss_bound, ref.dhidden_bound, ref.dweight_bound)):
        if value.shape != want.shape:
            problems.append(f"{name} shape {value.shape}, expected {want.shape}")
            continue
        # Underflow floor: p below the dtype's smallest normal may flush to 0,
        # costing at most tiny * (contraction length) * (largest factor); far
        # below any real error, so ignored rows must still be (nearly) exact zeros.
        tiny = np.finfo(np.float32 if dtype == "float32" else np.float64).tiny
        scale = {"loss": 1.0, "dhidden": weight_scale, "dweight": hidden_scale}[name]
        allowed = SAFETY * u * bound + SAFETY * tiny * scale
        ratio = np.abs(value - want) / allowed
        ratio = np.where(np.isnan(value), np.inf, ratio)
        worst[name] = float(ratio.max()) if ratio.size else 0.0
        if worst[name] > 1.0:
            at = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
            problems.append(f"{name}{list(at)} = {value[at]!r}, exact {want[at]!r}")
    return CheckResult(backend.name, case.name, dtype, how, not problems, worst, "; ".join(problems), **shape)


# -- timing ---------------------------------------------------------------------

def flops(n: int, h: int, v: int, pass_: str) -> int:
    """Matmul FLOPs of one call: 2NHV for the logits; the full pass adds dhidden and dweight (4NHV)."""
    return {"fwd": 2, "full": 6}[pass_] * n * h * v


def io_bytes(n: int, h: int, v: int, itemsize: int, pass_: str) -> int:
    """Bytes a call must move at least: hidden, weight, target (int64), loss; with gradients dloss, dhidden, dweight."""
    base = (n * h + v * h) * itemsize + 8 * n + n * itemsize
    return base if pass_ == "fwd" else base + (n + n * h + v * h) * itemsize


def _median_time(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> tuple[float, float]:
    fn()  # warm-up: compile, allocator, first-touch pages
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return statistics.median(times), q[2] - q[0]


def time_backend(backend: Backend, n: int, h: int, v: int, pass_: str = "full", dtype: str = "float32",
                 device: str = "cpu", repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """A timing record of one backend at (N, H, V): median and IQR, FLOP rate beside a same-run matmul, peak memory.

    ``matmul_fraction``: FLOP/s over that of a plain ``hidden @ weight.T``
    of the same shapes, timed here in the same library (the compute-bound
    analogue of the copy fraction). ``peak_bytes``: what the call allocated
    beyond its inputs (the returned loss and gradients included), beside
    ``logits_bytes`` = N * V * itemsize, the size a fused call never holds.
    """
    rng = np.random.default_rng(seed)
    inputs = {"hidden": rng.standard_normal((n, h)), "weight": rng.standard_normal((v, h)) / math.sqrt(h),
              "target": rng.integers(0, v, n).astype(np.int64), "dloss": np.full(n, 1.0 / n)}
    inputs["target"][::7] = IGNORE_INDEX
    adapter = adapters.get(backend.library)
    itemsize = 4 if dtype == "float32" else 8
    rec: dict[str, Any] = {"kind": "timing", "op": OP, "pass": pass_, "mode": "warm", "backend": backend.name, "device": device,
                           "dtype": dtype, "rows": n, "hidden": h, "vocab": v, "route": route(backend, pass_),
                           "flops": flops(n, h, v, pass_), "bytes": io_bytes(n, h, v, itemsize, pass_),
                           "logits_bytes": n * v * itemsize}
    try:
        arrays = convert(backend, device, dtype, inputs)
        sync = lambda: adapter.sync(device)  # noqa: E731 - the timer's one synchronisation point
        med, iqr = _median_time(lambda: call(backend, device, dtype, pass_, arrays), sync, repeats)
        mm, _ = _median_time(lambda: arrays["hidden"] @ arrays["weight"].T, sync, repeats)
        peak = memory.peak_memory(adapter, device, lambda: call(backend, device, dtype, pass_, arrays), backend.release)
    except Exception as exc:  # a backend that raises is a recorded failure; the others still run
        rec.update(median_s=None, iqr_s=None, failure=f"{type(exc).__name__}: {exc}")
        return rec
    rate = rec["flops"] / med
    mm_rate = 2 * n * h * v / mm
    rec.update(median_s=med, iqr_s=iqr, flops_per_s=rate, matmul_s=mm, matmul_flops_per_s=mm_rate,
               matmul_fraction=rate / mm_rate, peak_bytes=peak["peak_bytes"], peak_method=peak["peak_method"],
               peak_library_bytes=peak.get("peak_library_bytes"),
               peak_over_logits=None if peak["peak_bytes"] is None else peak["peak_bytes"] / rec["logits_bytes"])
    # The workspace: the peak beyond what the call returns (loss, and for the
    # gradient passes dhidden and dweight), the figure "never the logits" is about.
    returned = n * itemsize + (0 if pass_ == "fwd" else (n * h + v * h) * itemsize)
    if peak["peak_bytes"] is not None:
        rec["workspace_bytes"] = max(peak["peak_bytes"] - returned, 0)
        rec["workspace_over_logits"] = rec["workspace_bytes"] / rec["logits_bytes"]
    return rec


# -- the commands' side ------------------------------------------------------------

def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    """Comma-separated NxHxV shapes (rows x hidden x vocab), e.g. "1024x1024x32000"; UsageError otherwise."""
    from ..errors import UsageError

    shapes = []
    for part in text.split(","):
        pieces = part.strip().lower().split("x")
        if len(pieces) != 3 or not all(p.isdigit() and int(p) > 0 for p in pieces):
            raise UsageError(f"--sizes {part.strip()!r}: {OP} takes NxHxV (rows x hidden x vocab), e.g. 1024x1024x32000")
        shapes.append(tuple(int(p) for p in pieces))
    return shapes


def declares(backend: Backend) -> bool:
    """Whether the backend implements the op itself (the check and timing commands select these)."""
    return backend.linear_cross_entropy is not None or backend.linear_cross_entropy_fwd_bwd is not None


def run_checks(targets: list, registry: Any, results: Any, dtypes_checked: tuple[str, ...] = ("float32", "float64"),
               out: Callable[[str], None] = print) -> bool:
    """Every case for every target that declares the op; records added to ``results``; True when all pass."""
    ok = True
    for target in targets:
        backend = registry.get(target.backend)
        if not declares(backend) or target.dtype not in UNIT_ROUNDOFF or target.dtype not in dtypes_checked:
            continue
        for case in CASES:
            result = check_case(backend, case, target.dtype, target.device)
            results.add([result.record()])
            ok &= result.passed
            mark = "ok  " if result.passed else "FAIL"
            out(f"{mark} {OP} {backend.name} {target.device} {target.dtype} {case.name}"
                + ("" if result.passed else f": {result.error}"))
    return ok


def run_timings(targets: list, registry: Any, results: Any, shapes: list[tuple[int, int, int]],
                passes: list[str], repeats: int, out: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Time every target that declares the op at every shape and pass; each record is written as it completes."""
    records = []
    for n, h, v in shapes:
        for pass_ in passes:
            for target in targets:
                backend = registry.get(target.backend)
                if not declares(backend):
                    continue
                rec = time_backend(backend, n, h, v, pass_, target.dtype, target.device, repeats)
                results.add([rec])
                records.append(rec)
                out(summary_line(rec))
    return records


def summary_line(rec: dict[str, Any]) -> str:
    """One line of a timing record: time, FLOP rate, matmul fraction, peak over the logits' size."""
    head = f"{rec['backend']:<22} {rec['pass']:<4} {rec['rows']}x{rec['hidden']}x{rec['vocab']} {rec['dtype']}"
    if rec.get("failure"):
        return f"{head}  FAILED: {rec['failure']}"
    peak = "n/a" if rec.get("peak_bytes") is None else (f"{rec['peak_bytes'] / 2**20:.0f} MiB, workspace "
                                                       f"{rec['workspace_bytes'] / 2**20:.0f} MiB = {rec['workspace_over_logits']:.2f} x logits")
    return (f"{head}  {rec['median_s']:.3f} s (iqr {rec['iqr_s']:.3f})  {rec['flops_per_s'] / 1e9:.1f} GFLOP/s"
            f" = {rec['matmul_fraction']:.2f} of matmul  peak {peak}")
