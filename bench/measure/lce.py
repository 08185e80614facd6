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
from ..core import dtypes as dt
from . import calls, memory, reference

OP = "linear_cross_entropy"
# A fused call never stores the logits, so it has no backward apart from its
# forward: the gradient recomputes them (Liger computes it in the forward
# itself). A `bwd` timing would be the full call under another name, so the op
# has two passes: the loss alone, and loss with both gradients.
PASSES = ("fwd", "full")
# Results a check compares: the loss, and the gradients of the full pass
# (dbias only on a case with a bias).
OUTPUTS = ("loss", "dhidden", "dweight", "dbias")
# Multiplier on the leading-order error bound: the bound is first order in u
# (gamma_n = n u / (1 - n u) ~ n u at these sizes) and its constant is not
# tight for every summation order a library picks, so allow a factor.
SAFETY = 8.0


# -- the exact reference --------------------------------------------------------

@dataclass(frozen=True)
class Exact:
    """The exact loss, gradients and logits (float64, each rounded once from 200-bit values)."""

    loss: np.ndarray
    dhidden: np.ndarray
    dweight: np.ndarray
    dbias: Optional[np.ndarray]  # None when the case has no bias
    logits: np.ndarray  # z = hidden @ weight.T (+ bias); the tolerance scales with |z|
    lse: np.ndarray  # per-row log-sum-exp (0 on ignored rows)
    g: np.ndarray  # dloss[:, None] * (p - onehot), 0 on ignored rows


def exact(hidden: np.ndarray, weight: np.ndarray, target: np.ndarray, dloss: np.ndarray,
          ignore_index: int = IGNORE_INDEX, bias: Optional[np.ndarray] = None) -> Exact:
    """Loss, dhidden, dweight (and dbias) computed in 200-bit arithmetic from the (already rounded) inputs.

    Every product of two float64 values is exact at 200 bits and each sum
    rounds at 2^-200 relative, so the logits, p, and the gradients are exact
    to far below any dtype's rounding; they are rounded once to float64.
    ``tolerance`` says how far a correct implementation may be from them.
    """
    hp = reference.HP
    n, h = hidden.shape
    v = weight.shape[0]
    loss, lse_out = np.zeros(n), np.zeros(n)
    g = np.zeros((n, v))
    logits = np.zeros((n, v))
    with hp.precision():
        w_mp = [[hp.mpf(x) for x in row] for row in weight.tolist()]
        b_mp = [hp.mpf(0)] * v if bias is None else [hp.mpf(x) for x in bias.tolist()]
        for i in range(n):
            t = int(target[i])
            h_mp = [hp.mpf(x) for x in hidden[i].tolist()]
            z = [hp.fsum([a * b for a, b in zip(h_mp, w_mp[j])] + [b_mp[j]]) for j in range(v)]
            logits[i] = [float(zj) for zj in z]
            if t == ignore_index:
                continue
            m = max(z)
            e = [hp.exp(zj - m) for zj in z]
            s = hp.fsum(e)
            lse = m + hp.log(s)
            loss[i], lse_out[i] = float(lse - z[t]), float(lse)
            d = hp.mpf(float(dloss[i]))
            row = [ej / s * d for ej in e]
            row[t] -= d
            g[i] = [float(x) for x in row]
    # Gradients from the exact g: float64 g carries 2^-53 relative error, far
    # below the bound of any dtype we check (float32: 2^-24).
    dhidden = _exact_matmul(g, weight)
    dweight = _exact_matmul(g.T, hidden)
    dbias = None if bias is None else np.array([math.fsum(col) for col in g.T])
    return Exact(loss, dhidden, dweight, dbias, logits, lse_out, g)


def tolerance(inputs: dict[str, np.ndarray], ref: Exact, dtype: str) -> dict[str, np.ndarray]:
    """Per-element absolute tolerance of each output, for inputs and outputs in ``dtype``.

    A first-order bound with a safety factor, in two unit roundoffs: ``u``
    of ``dtype`` for each value stored in it (the logits, dlogits, the
    outputs) and ``ua`` of the accumulation (float32 for bfloat16 and
    float16 inputs, as every serious kernel accumulates; ``dt.accumulation_info``)
    for each sum. With ``S_ij = sum_k |h_ik w_jk| + |b_j|`` (the matmul's own bound):

    - a logit is off by ``e_ij = ua * H * S_ij + u * |z_ij|``;
    - loss_i by ``2 max_j e_ij + u (|lse_i| + log V + 2)`` (the cross-entropy's own);
    - g_ij by ``|dloss_i| p_ij (e_ij + max_j e_ij) + u |g_ij|`` (p's relative
      error from its logit and the row's lse, and g stored in the dtype);
    - dhidden_ik by ``ua V sum_j |g_ij||w_jk| + sum_j eg_ij |w_jk| + u |dhidden_ik|``,
      dweight_jk and dbias_j likewise over the N rows.

    Each gets ``SAFETY`` times that plus ``SAFETY * tiny * scale``: p below
    the smallest normal may be flushed to 0 (ignored rows must still be zeros).
    """
    fi, acc = dt.info(dtype), dt.accumulation_info(dtype)
    u, ua = fi.u, acc.u
    hidden, weight, target, dloss = inputs["hidden"], inputs["weight"], inputs["target"], inputs["dloss"]
    bias = inputs.get("bias")
    n, h = hidden.shape
    v = weight.shape[0]
    abs_h, abs_w = np.abs(hidden), np.abs(weight)
    s_ij = abs_h @ abs_w.T + (0.0 if bias is None else np.abs(bias))
    err_z = ua * h * s_ij + u * np.abs(ref.logits)
    kept = target != IGNORE_INDEX
    row_err = np.where(kept, err_z.max(axis=1, initial=0.0), 0.0)
    loss_bound = np.where(kept, 2 * row_err + u * (np.abs(ref.lse) + math.log(v) + 2), 0.0)
    abs_g = np.abs(ref.g)
    # p * |dloss| from g: add the one-hot back at each kept row's target.
    p_dloss = ref.g.copy()
    rows = np.flatnonzero(kept)
    p_dloss[rows, target[rows]] += dloss[rows]
    err_g = np.abs(p_dloss) * (err_z + row_err[:, None]) + u * abs_g
    bounds = {
        "loss": loss_bound,
        "dhidden": ua * v * (abs_g @ abs_w) + err_g @ abs_w + u * np.abs(ref.dhidden),
        "dweight": ua * n * (abs_g.T @ abs_h) + err_g.T @ abs_h + u * np.abs(ref.dweight),
    }
    scales = {"loss": 1.0, "dhidden": float(abs_w.sum(axis=0).max(initial=0.0)),
              "dweight": float(abs_h.sum(axis=0).max(initial=0.0))}
    if ref.dbias is not None:
        bounds["dbias"] = ua * n * abs_g.sum(axis=0) + err_g.sum(axis=0) + u * np.abs(ref.dbias)
        scales["dbias"] = float(n)
    return {name: SAFETY * bound + SAFETY * fi.tiny * scales[name] for name, bound in bounds.items()}


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
    """One check input: hidden, weight, target (and a bias, where ``make`` returns a fourth array).

    Values are float64, rounded to the dtype under test at check time.
    """

    name: str
    about: str
    make: Callable[[np.random.Generator], tuple[np.ndarray, ...]]


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


def _with_bias(rng):
    hidden, weight, target = _plain(8, 32, 100)(rng)
    return hidden, weight, target, 2.0 * rng.standard_normal(100)


def _long_batch(rng):
    # Targets among the first 4 of 16 words: the other 12 columns of g are
    # p * dloss > 0 in every row, and channel 0 of hidden is offset by +4
    # (a large-mean activation), so dweight[j, 0] sums 1024 terms of one sign.
    # An accumulator in bfloat16 stops growing once the sum passes 256 terms.
    hidden, weight, _ = _plain(1024, 8, 16)(rng)
    hidden[:, 0] += 4.0
    return hidden, weight, rng.integers(0, 4, 1024)


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
    Case("with_bias", "plain 8 x 32, V=100, plus a bias 2 * randn (V,): dbias = sum over rows of g", _with_bias),
    Case("long_batch", "N = 1024, H = 8, V = 16, targets in 0..3, hidden channel 0 offset +4: dweight "
         "sums 1024 same-sign terms (a bfloat16 accumulator stalls)", _long_batch),
)
CASE_NAMES = tuple(case.name for case in CASES)


def case_inputs(case: Case, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The case's inputs, each float rounded to ``dtype`` (so the reference sees what the backend sees).

    Keys hidden, weight, target, dloss, and bias on a case that has one.
    """
    hidden, weight, target, *bias = case.make(np.random.default_rng(seed))
    dloss = np.random.default_rng(seed + 1).uniform(0.5, 1.5, len(target))
    np_dtype = dt.np_dtype(dtype)
    floats = {"hidden": hidden, "weight": weight, "dloss": dloss, **({"bias": bias[0]} if bias else {})}
    out = {name: np.asarray(x).astype(np_dtype).astype(np.float64) for name, x in floats.items()}
    out["target"] = np.asarray(target, dtype=np.int64)
    return out


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


def bias_unavailable(backend: Backend, pass_: str) -> Optional[str]:
    """Why ``backend`` cannot run ``pass_`` with a bias, or None when it can.

    The derived route adds the bias itself; the explicit and autodiff routes
    call the backend's functions, which take ``bias=`` only where the backend
    declares ``linear_cross_entropy_bias``.
    """
    how = route(backend, pass_)
    if how == "derived" or backend.linear_cross_entropy_bias:
        return None
    return f"{backend.name} declares no bias for {OP} (route {how}): Backend(linear_cross_entropy_bias=True) to have it checked"


def call(backend: Backend, device: str, dtype: str, pass_: str, arrays: dict[str, Any]) -> tuple[Any, ...]:
    """One call of the op on already converted ``arrays``.

    Returns (loss,) for fwd, (loss, dhidden, dweight) for full, and dbias
    after them when ``arrays`` has a bias. A bias is passed as ``bias=`` only
    when there is one, so a backend without bias support is never called with it.
    """
    how = route(backend, pass_)
    if how is None:
        raise ValueError(f"backend {backend.name!r} has no {OP} {pass_}")
    hidden, weight, target, dloss = arrays["hidden"], arrays["weight"], arrays["target"], arrays["dloss"]
    bias = arrays.get("bias")
    with_bias = {} if bias is None else {"bias": bias}
    grads = ("dhidden", "dweight") + (() if bias is None else ("dbias",))
    if how == "explicit":
        if pass_ == "fwd" and backend.linear_cross_entropy is not None:
            return (backend.linear_cross_entropy(hidden, weight, target, ignore_index=IGNORE_INDEX, **with_bias),)
        out = backend.linear_cross_entropy_fwd_bwd(hidden, weight, target, dloss, ignore_index=IGNORE_INDEX, **with_bias)
        if not isinstance(out, (tuple, list)) or len(out) != 1 + len(grads):
            raise TypeError(f"{backend.name}: linear_cross_entropy_fwd_bwd must return (loss, {', '.join(grads)})")
        return tuple(out)[:1] if pass_ == "fwd" else tuple(out)
    adapter = adapters.get(backend.library)
    if how == "autodiff":
        def loss_of(h, w, *b):
            return backend.linear_cross_entropy(h, w, target, ignore_index=IGNORE_INDEX, **({"bias": b[0]} if b else {}))
        loss, gradients = adapter.vjp_many(loss_of, (hidden, weight) + (() if bias is None else (bias,)), dloss)
        return (loss, *gradients)
    logits = hidden @ weight.T  # every supported library's arrays take @ and .T
    if bias is not None:
        logits = logits + bias
    loss = calls.cross_entropy_call(backend, adapter, "cross_entropy", calls.route(backend, "cross_entropy"),
                                      logits, target, dloss, None)
    if pass_ == "fwd":
        return (loss,)
    dlogits = calls.cross_entropy_call(backend, adapter, "ce_grad", calls.route(backend, "ce_grad"),
                                         logits, target, dloss, None)
    dbias = () if bias is None else (dlogits.sum(0),)
    return (loss, dlogits @ weight, dlogits.T @ hidden, *dbias)


def convert(backend: Backend, device: str, dtype: str, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The inputs as the backend's arrays on ``device`` (targets as its index type; bias where given)."""
    adapter = adapters.get(backend.library)
    out = {name: adapter.from_numpy(inputs[name], device, dtype) for name in ("hidden", "weight", "dloss", "bias")
           if name in inputs}
    out["target"] = adapter.index_array(inputs["target"], device)
    return out


# -- the check -------------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    """One case's outcome for one backend and dtype.

    ``passed`` is None when the case could not be run on this backend (a
    bias it does not take): ``error`` then says why, and the record's
    failure is "unavailable", never a silent omission.
    """

    backend: str
    case: str
    dtype: str
    route: str
    passed: Optional[bool]
    # Largest error over the bound, per output (<= 1 passes); or why it failed.
    worst: dict[str, float]
    error: str = ""
    device: str = "cpu"
    rows: int = 0
    hidden: int = 0
    vocab: int = 0

    def record(self) -> dict[str, Any]:
        """The results-file form (kind "check", op linear_cross_entropy)."""
        rec = {"kind": "check", "op": OP, "pass": "full", "backend": self.backend, "device": self.device,
               "case": self.case, "dtype": self.dtype, "rows": self.rows, "hidden": self.hidden, "vocab": self.vocab,
               "route": self.route, "passed": self.passed, "worst_over_bound": self.worst,
               "failure": self.error or None}
        if self.passed is None:
            rec.update(failure="unavailable", reason=self.error)
        return rec


def check_case(backend: Backend, case: Case, dtype: str, device: str = "cpu") -> CheckResult:
    """Loss and gradients of ``case`` against the exact reference; a raising backend is a failure."""
    inputs = case_inputs(case, dtype)
    how = route(backend, "full") or "none"
    shape = dict(device=device, rows=inputs["hidden"].shape[0], hidden=inputs["hidden"].shape[1],
                 vocab=inputs["weight"].shape[0])
    if "bias" in inputs and bias_unavailable(backend, "full"):
        return CheckResult(backend.name, case.name, dtype, how, None, {}, bias_unavailable(backend, "full"), **shape)
    try:
        arrays = convert(backend, device, dtype, inputs)
        adapter = adapters.get(backend.library)
        with np.errstate(all="ignore"):
            out = call(backend, device, dtype, "full", arrays)
            got = [np.asarray(adapter.to_numpy(o), dtype=np.float64) for o in out]
    except Exception as exc:  # a backend that raises is a recorded failure; the run goes on
        return CheckResult(backend.name, case.name, dtype, how, False, {}, f"{type(exc).__name__}: {exc}", **shape)
    ref = exact(inputs["hidden"], inputs["weight"], inputs["target"], inputs["dloss"], bias=inputs.get("bias"))
    allowed = tolerance(inputs, ref, dtype)
    wanted = {"loss": ref.loss, "dhidden": ref.dhidden, "dweight": ref.dweight, "dbias": ref.dbias}
    worst: dict[str, float] = {}
    problems = []
    for name, value in zip(OUTPUTS, got):
        want = wanted[name]
        if value.shape != want.shape:
            problems.append(f"{name} shape {value.shape}, expected {want.shape}")
            continue
        ratio = np.abs(value - want) / allowed[name]
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
    itemsize = dt.info(dtype).itemsize
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


def run_checks(targets: list, registry: Any, results: Any, out: Callable[[str], None] = print) -> bool:
    """Every case for every target that declares the op; records added to ``results``.

    True when none fails (a case the backend cannot take, such as a bias, is
    recorded and printed as n/a with its reason, and does not fail the run).
    """
    ok = True
    for target in targets:
        backend = registry.get(target.backend)
        if not declares(backend):
            continue
        for case in CASES:
            result = check_case(backend, case, target.dtype, target.device)
            results.add([result.record()])
            ok &= result.passed is not False
            mark = {True: "ok  ", False: "FAIL", None: "n/a "}[result.passed]
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
