"""The tolerance model: how far two correct answers may be apart.

Tolerances, and why
-------------------
AD against AD differs only by rounding, and how much rounding can move an
answer depends on the case: a graph that cancels or inverts amplifies it. We
measure that amplification instead of guessing it: torch also runs the case in
float32, and ||f₃₂ - f₆₄|| is (to first order) the condition of the answer
times float32's unit roundoff. A backward-stable float64 computation is then off
by about that times u₆₄/u₃₂. So, norm-wise, for every array (the output and
each input's gradient) compared in dtype d:

    tol = C · e₃₂ · u_d / u₃₂  +  F · (steps + 1) · κ · u_d · ||torch₆₄||

where e₃₂ is the larger of this array's own float32 error ||torch₃₂ - torch₆₄||
and the case's largest relative float32 error (over the output and every
gradient) times ||torch₆₄||: one array's float32 error can be small by luck
(a fuzz campaign found such a case, a det of exp(X); it is in the gate), and
the arrays share one computation. A whole float32 run can be lucky too (found:
inv(trace(X)) with a trace that cancels), so the case's relative error is also
measured by Monte Carlo arithmetic on the output (`perturbed_outputs`). κ is
n κ_X² for the worst operand X of an inv or det in the graph (1 if none; see
`condition_factor`): their rounding grows with it.

C = 32 covers the difference between two stable implementations (each within
a few times the measured error, in either direction). The second term, F = 16,
is a floor for answers that float32 happens to get exactly right; ||torch₆₄||
there also counts the size of the terms the answer sums (see `term_scales`), so an
answer that cancels to rounding residue is not held to its own residue. If
float32 overflows, the floor alone stands, times 10⁴ (written in the verdict).

The measurements above all look at the forward pass, or at one float32 run
of the backward that can be exact by luck: torch's float32 VJP of tanh(inv(tr X))
at tr X = -0.05 is an exact 0 (tanh saturates to -1 and 1 - ans² is 0), while
JAX's float64 answer is a residue of 6.5e-13 (a rounding of 1 - ans², times
the 1/tr² = 400 above it), 8 times that tolerance. So when a comparison
fails, before any verdict, `refine` measures the backward pass as well, by
Monte Carlo arithmetic on mflow's own VJP rules (`perturbed_gradients`): the
spread of each gradient, absolute, joins e₃₂. Those runs perturb by 4 u₆₄,
not u₃₂: float32's own error saturates where the answer is very ill-conditioned
(sin of a value near 1e11: float32 gets it wrong by O(1), a bounded amount, and
scaling that down to float64 under-estimated float64's error 160 times), while
perturbations of float64's size stay in the linear regime. Refining only raises
tolerances, so refining only the cases that would fail gives the verdicts that
refining every case would, at a fraction of the cost.

Lazily
------
Every tolerance is the floor plus a measured term ≥ 0 (or 10⁴ floors when
float32 overflows), and every comparison passes when its error is within its
tolerance: a case whose comparisons all pass against the floor alone passes
against any gauge. So float32 is gauged (torch's float32 run of the mode, and
Monte Carlo arithmetic on the output: `gauge`) only once a comparison against
the floor has failed, and the case is compared again, as refining is; the
verdict is the one that gauging every case gives (tests/test_lazy_gauge.py
checks that it is, case by case), and most float64 cases never pay for a float32
run (benchmarks/results/throughput.md). A passing case's comparisons, and the
ratios the comparison report shows, are then against the floor ("the floor
alone" in their reason): a larger ratio than the gauged tolerance would give.

Finite differences carry their own bound per probe (see finite_differences.py);
a probe compares ⟨gradient, v⟩ with the estimate and passes within
bound + the AD tolerance above, projected.
"""

import numpy as np

from mflow.ops import OPS

from .numpy_backend import NUMPY_OPS
from .program import interpret
from .verdict import arrays, norm

U32, U64 = np.finfo(np.float32).eps / 2, np.finfo(np.float64).eps / 2
C_ROUNDING, F_FLOOR, OVERFLOW_FACTOR = 32.0, 16.0, 1e4
U_REFINE = 4 * U64  # refine's Monte Carlo: small enough to stay linear (see the docstring)
UNGAUGED = "the floor alone (float32 not gauged yet: the least tolerance a gauge can give)"


def measure(verdict):
    """Fill the verdict's term scales and condition factor, which every AD
    tolerance of the case reads (cheap: numpy on the forward values)."""
    case = verdict.case
    out_scale, grad_scale = term_scales(case.cotangent, verdict.values)
    verdict.scales = [out_scale] + [grad_scale] * len(case.inputs)
    verdict.condition = condition_factor(case.program, verdict.values)


def gauge(verdict):
    """float32's relative error on this case, from torch's float32 run (in
    verdict.results["torch32"]) and Monte Carlo arithmetic on the output: only
    once a comparison against the floor alone has failed (see "Lazily" above)."""
    case = verdict.case
    program = case.program
    f32 = verdict.results.get("torch32")
    ref64 = verdict.results.get(verdict.reference) if verdict.reference else None
    if f32 is not None and ref64 is not None:
        # float32's relative error, the largest over the output and every gradient: one
        # array's float32 error can be small by chance; they share the same computation
        # (relative to the array's terms as well as its norm, so that an answer that
        # cancels to rounding residue does not inflate everyone's tolerance)
        verdict.gauge_relative = max(
            norm(np.asarray(g, np.float64) - r) / (norm(r) + scale)
            if norm(r) + scale > 0 else 0.0
            for g, r, scale in zip(arrays(f32), arrays(ref64), verdict.scales))
    if f32 is not None and verdict.values:
        # and the same measured by Monte Carlo arithmetic: a second, independent
        # look at float32's error on the output (see `perturbed_outputs`)
        exact, scale = verdict.values[-1], verdict.scales[0]
        if norm(exact) + scale > 0:
            samples = perturbed_outputs(as_dtype(program, "float64"), case.inputs,
                                        round_inputs=program.dtype == "float64")
            verdict.gauge_relative = max([
                verdict.gauge_relative,
                *(norm(s - exact) / (norm(exact) + scale) for s in samples
                  if np.all(np.isfinite(s)))])


def ad_tolerance(verdict, i, dtype):
    """(tolerance, reason) for array i (0 the output, then each gradient) of two AD
    answers compared in `dtype`: the same for every pair, so computed once per case."""
    key = (i, np.dtype(dtype).name)
    if key not in verdict.tolerances:
        verdict.tolerances[key] = _ad_tolerance(verdict, i, np.dtype(dtype).type)
    return verdict.tolerances[key]


def _ad_tolerance(verdict, i, dtype):
    reference = arrays(verdict.results[verdict.reference])[i]
    gauge = verdict.results.get("torch32")
    u = U32 if dtype == np.float32 else U64
    floor = rounding_floor(verdict.case.program, u, verdict.condition,
                           norm(reference) + verdict.scales[i])
    if "vjp" not in verdict.gauged:
        return floor, UNGAUGED
    if gauge is None or not all(np.all(np.isfinite(a)) for a in arrays(gauge)):
        return OVERFLOW_FACTOR * floor, "float32 run overflowed: the floor x 1e4"
    own = norm(np.asarray(arrays(gauge)[i], np.float64) - reference)
    measured = max(own, verdict.gauge_relative * norm(reference),
                   verdict.gauge_absolute[i] if verdict.gauge_absolute else 0.0)
    return (C_ROUNDING * measured * u / U32 + floor,
            f"{np.dtype(dtype).name}: 32 x measured rounding + floor")


def condition_factor(program, values):
    """n κ², the largest over operands whose domain is "invertible" (inv, det), κ
    the condition number and n the side: the gradient of an inverse is a product
    of two inverses (d X⁻¹ = -X⁻¹ dX X⁻¹), each off by up to κ times the roundoff,
    and det's relative condition is n κ. 1 if the graph has neither."""
    worst = 1.0
    for step in program.steps:
        if step.op in OPS:
            domains = OPS[step.op].domains(len(step.args), step.attrs)
            for a, d in zip(step.args, domains):
                if d == "invertible":
                    with np.errstate(all="ignore"):
                        kappa = float(np.linalg.cond(values[a]))
                    worst = max(worst, values[a].shape[0] * kappa ** 2)
    return worst if np.isfinite(worst) else 1e8


def term_scales(cotangent, values):
    """The size of the terms an answer is a sum of, before any cancellation: for
    the output, the largest value in the graph; for every gradient, Σ|c| max(1, |v|max).
    A result that cancels to ~0 (the gradient of sum(softmax(x)), or a saturated
    softmax's 1 - p) is then held to rounding relative to its terms, not to its
    own residue. `values`: every value of the graph in float64."""
    biggest = max(float(np.max(np.abs(v))) for v in values)
    # a rounding error u in a local derivative (1 - tanh² at saturation) reaches an
    # input multiplied by the partials above it, which the largest value bounds
    return biggest, float(np.sum(np.abs(cotangent))) * max(1.0, biggest)


def perturbed_outputs(program, inputs, samples=2, round_inputs=False, seed=0, u=U32):
    """The output, `samples` times, of the program run in float64 with float32's
    rounding simulated by random relative errors |δ| ≤ u (Monte Carlo arithmetic):
    on the result of every operation that rounds, on the operands of the summing
    ones (each operation's `rounding` in mflow.ops), and on the inputs when float32 would round them
    (`round_inputs`: a float64 case, which the torch float32 run casts). The spread
    is what float32 rounding does to this case, condition included: a fuzz
    campaign found inv(trace(X)) with Σ|Xᵢᵢ| / |tr X| ≈ 1,600, where torch's one
    float32 run happened to be exact and gauged the error as 0. Exact data stays
    exact (1 - (1 - 2⁻¹³) in float32 has no error, and jittering it would make a
    1/x there look 8,000 u uncertain and hide a wrong VJP). Seeded per call, so a
    case's tolerance does not depend on what was checked before it."""
    rng = np.random.default_rng(seed)

    def jitter(x):  # one independent draw per sample, operands without a batch axis too
        x = np.asarray(x)
        if x.dtype.kind != "f":
            return x  # (x + x δ, not x (1 + δ): 1 + δ would round δ ~ u₆₄ away)
        return x + x * (u * rng.uniform(-1, 1, (samples, *x.shape[-2:])))

    def perturbed(name, f):
        rounding = OPS[name].rounding if name in OPS else "result"
        if rounding == "exact":
            return f
        if rounding == "sums":
            return lambda *xs, **kw: jitter(f(*[jitter(x) for x in xs], **kw))
        return lambda *xs, **kw: jitter(f(*xs, **kw))
    ops = {name: perturbed(name, f) for name, f in NUMPY_OPS.items()}
    batch = [np.broadcast_to(np.asarray(x, np.float64), (samples, *np.shape(x))) for x in inputs]
    if round_inputs:
        batch = [jitter(x) for x in batch]
    with np.errstate(all="ignore"):
        out = interpret(program, ops, lambda x: x, lambda a: a.astype(np.float64), batch)[-1]
    return np.broadcast_to(out, (samples, *out.shape[-2:]))


def refine(verdict):
    """Measure float32's rounding on the backward pass too (module docstring) and
    forget the tolerances computed so far. False when nothing more can be measured."""
    case = verdict.case
    if verdict.gauge_absolute or not verdict.values:
        return False
    program = as_dtype(case.program, "float64")
    rounds = case.program.dtype == "float64"
    try:
        exact = perturbed_gradients(program, case.inputs, case.cotangent, u=0.0)
        samples = perturbed_gradients(program, case.inputs, case.cotangent, samples=4,
                                      round_inputs=rounds, u=U_REFINE)
        outputs = perturbed_outputs(program, case.inputs, samples=8, round_inputs=rounds, seed=1,
                                    u=U_REFINE)
    except Exception:  # noqa: BLE001 - outside mflow's domain: nothing more to measure
        return False
    spread = [max((norm(s - e[0]) for s in runs if np.all(np.isfinite(s))), default=0.0)
              for runs, e in zip(samples, exact)]
    forward = max((norm(o - verdict.values[-1]) for o in outputs if np.all(np.isfinite(o))),
                  default=0.0)
    # in float32's units, as the other measurements are (ad_tolerance scales by u / U32)
    verdict.gauge_absolute = [x * U32 / U_REFINE for x in [forward] + spread]
    verdict.tolerances.clear()
    return True


def perturbed_gradients(program, inputs, cotangent, samples=1, round_inputs=False, seed=0,
                        u=U32):
    """Every input's gradient from mflow's own rules run in float64, as `samples`
    Monte Carlo arithmetic runs (as `perturbed_outputs`, on the forward pass and
    on every VJP: its cotangent, its operands and its results): a list per input
    of `samples` arrays (u=0: the exact run). It measures how the backward pass
    of this case amplifies rounding, whatever engine is under test."""
    from mflow.node import _topological, _unbroadcast

    from .engine import MflowEngine
    rng = np.random.default_rng(seed)
    engine = MflowEngine()
    nodes = interpret(program, engine.ops, engine.leaf, engine.constant,
                      [np.asarray(x, np.float64) for x in inputs])
    leaves, out = nodes[:len(inputs)], nodes[-1]
    order = _topological(out, every=True)

    def jitter(x):
        return x + x * (u * rng.uniform(-1, 1, np.shape(x))) if u else x

    runs = [[] for _ in leaves]
    for _ in range(samples):
        value = {}
        with np.errstate(all="ignore"):
            for node in order:  # the forward pass, perturbed
                if node.op is None:
                    value[node] = jitter(node.value) if round_inputs else node.value
                    continue
                rounding = node.op.rounding
                args = [value[p] for p in node.parents]
                if rounding == "sums":
                    args = [jitter(a) for a in args]
                y = node.op.forward(*args, **node.attrs)
                value[node] = y if rounding == "exact" else jitter(y)
            grads = {out: np.asarray(cotangent, np.float64)}
            for node in reversed(order):  # and the backward pass
                g = grads.pop(node, None)
                if g is None or node.op is None:
                    if g is not None:
                        grads[node] = g  # a leaf: keep its gradient
                    continue
                exact = node.op.rounding == "exact"
                parents = [value[p] for p in node.parents]
                if not exact:
                    g, parents = jitter(g), [jitter(a) for a in parents]
                parts = node.op.vjp(g, value[node], *parents, **node.attrs)
                for p, gp in zip(node.parents, parts):
                    gp = _unbroadcast(np.asarray(gp, np.float64), p.value.astype(np.float64),
                                      node.op)
                    gp = gp if exact else jitter(gp)
                    grads[p] = grads[p] + gp if p in grads else gp
        for k, leaf in enumerate(leaves):
            runs[k].append(grads.get(leaf, np.zeros(leaf.shape)))
    return runs


def rounding_floor(program, u, condition, size):
    """F (steps + 1) κ u · size: what a backward-stable computation with unit
    roundoff u may be off by, `size` being ||answer|| plus its terms (`term_scales`)
    and κ the `condition_factor`. The tolerance when nothing measures it better."""
    return F_FLOOR * (len(program) + 1) * u * condition * size


def as_dtype(program, dtype):
    """The same program in another dtype."""
    return program if program.dtype == dtype else program.with_dtype(dtype)


def perturbed_tangents(program, inputs, tangents, samples=1, round_inputs=False, seed=0,
                       u=U32):
    """J ṫ from mflow's own JVP rules run in float64, as `samples` Monte Carlo
    arithmetic runs (as `perturbed_gradients`, on the forward pass and on every JVP:
    its operands, their tangents and its result): a list of `samples` arrays (u=0:
    the exact run). How the forward-mode pass of this case amplifies rounding."""
    from mflow.node import _topological

    from .engine import MflowEngine
    rng = np.random.default_rng(seed)
    engine = MflowEngine()
    nodes = interpret(program, engine.ops, engine.leaf, engine.constant,
                      [np.asarray(x, np.float64) for x in inputs])
    leaves, out = nodes[:len(inputs)], nodes[-1]
    given = dict(zip(leaves, (np.asarray(t, np.float64) for t in tangents)))

    def jitter(x):
        return x + x * (u * rng.uniform(-1, 1, np.shape(x))) if u else x

    runs = []
    for _ in range(samples):
        value, tangent = {}, {}
        with np.errstate(all="ignore"):
            for node in _topological(out, every=True):
                if node.op is None:
                    value[node] = jitter(node.value) if round_inputs else node.value
                    tangent[node] = given.get(node, np.zeros(node.shape))
                    continue
                exact = node.op.rounding == "exact"
                args = [value[p] for p in node.parents]
                ts = tuple(tangent[p] for p in node.parents)
                if node.op.rounding == "sums":
                    args = [jitter(a) for a in args]
                y = node.op.forward(*args, **node.attrs)
                value[node] = y if exact else jitter(y)
                if not exact:
                    ts = tuple(jitter(t) for t in ts)
                t = node.op.jvp(ts, value[node], *args, **node.attrs)
                tangent[node] = np.broadcast_to(t if exact else jitter(t), node.shape)
        runs.append(np.array(tangent[out], np.float64))
    return runs
