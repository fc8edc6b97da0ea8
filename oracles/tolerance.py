"""The tolerance model: how far two correct answers may be apart.

One formula for every array of every mode (the VJP's output and gradients, forward
mode's J ṫ, second order's H ṫ per input); the modes differ only in what they measure
with it (oracles/modes.py: their references, their float32 gauge, the size of their
terms, their Monte Carlo runs).

Tolerances, and why
-------------------
AD against AD differs only by rounding, and how much rounding can move an
answer depends on the case: a graph that cancels or inverts amplifies it. We
measure that amplification instead of guessing it: torch also runs the case in
float32, and ||f₃₂ - f₆₄|| is (to first order) the condition of the answer
times float32's unit roundoff. A backward-stable float64 computation is then off
by about that times u₆₄/u₃₂. So, norm-wise, for every array (the output and
each input's gradient) compared in dtype d:

    tol = C · e₃₂ · u_d / u₃₂  +  F · (steps + 1) · κ · u_d · (||torch₆₄|| + terms)

where e₃₂ is the larger of this array's own float32 error ||torch₃₂ - torch₆₄||
and the case's largest relative float32 error (over the output and every
gradient) times ||torch₆₄||: one array's float32 error can be small by luck
(a fuzz campaign found such a case, a det of exp(X); it is in the gate), and
the arrays share one computation. A whole float32 run can be lucky too (found:
inv(trace(X)) with a trace that cancels), so the case's relative error is also
measured by Monte Carlo arithmetic on the output (`perturbed_outputs`). The terms
are the size of what the array sums (mode.terms: for the VJP `term_scales`; for
J ṫ, Σ|ṫ| max(1, |v|max); for H ṫ, Σ|ȳ| max(1, |v|max)² Σ|ṫ|). κ is
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
Monte Carlo arithmetic on mflow's own rules of the mode (`perturbed_gradients`,
`perturbed_tangents`, `perturbed_hvp`, run through mflow's public walks): the spread
of each array, absolute, joins e₃₂. Those runs perturb by 4 u₆₄,
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

Half precision
--------------
float16 and bfloat16 answers are compared with the float64 references on the same
inputs (exact in float64), so the tolerance must hold the whole of half's rounding,
which is too large to scale from float32's (u is 2⁻¹¹ and 2⁻⁸, against 2⁻²⁴; at that
size rounding is no longer linear: a tanh saturates, a cancellation loses every bit).
It is measured at the dtype's own u, by Monte Carlo arithmetic on mflow's rules of the
mode (the same runs as `refine`, perturbed by u_d instead of 4 u₆₄, 8 of them):

    tol = C_HALF · spread_d + F_HALF · (steps + 1) · u_d · (||reference|| + terms)

C_HALF covers an engine whose rounding is not the simulated one (torch accumulates
half sums in float32, numpy rounds every partial sum) and the spread of 8 samples
under the largest error: measured in benchmarks/results/half_precision.md as the
largest ratio of a correct engine's error (mflow's and torch's own half runs) to the
spread, with a margin written there. F_HALF is the floor for answers every run gets
exactly (a sum of small integers); smaller than float32's F, since the measurement is
at the dtype itself, not scaled from another. torch's own run in the dtype (CPU) is a
peer: compared with the engine, and with the float64 reference, by the same
tolerance; the peer outside it is a reference problem (the model, or torch, wrong
there), never the engine's fault. Values outside what the dtype represents are a
domain, not a tolerance: the strategies keep every value and answer of a half case
inside it (strategies/domains.py, HALF_MAGNITUDE).

Finite differences carry their own bound per probe (see finite_differences.py);
a probe compares ⟨gradient, v⟩ with the estimate and passes within
bound + the AD tolerance above, projected.
"""

import numpy as np

from .catalogue import CATALOGUE
from .numpy_backend import NUMPY_OPS
from .program import HALF, UNIT, interpret
from .verdict import arrays, norm

U32, U64 = UNIT["float32"], UNIT["float64"]
C_ROUNDING, F_FLOOR, OVERFLOW_FACTOR = 32.0, 16.0, 1e4
C_HALF, F_HALF, HALF_SAMPLES = 8.0, 1.0, 8  # "Half precision" above
SUBNORMAL = {"float16": 2.0 ** -24, "bfloat16": 2.0 ** -133}  # the smallest of each
U_REFINE = 4 * U64  # refine's Monte Carlo: small enough to stay linear (see the docstring)
UNGAUGED = "the floor alone (float32 not gauged yet: the least tolerance a gauge can give)"
UNGAUGED_HALF = "the floor alone (the dtype's rounding not measured yet: the least tolerance)"


def floor_alone(*reasons):
    """A note for a bound built on tolerances whose reasons are `reasons`: said when one is
    still the floor alone (lazy gauging above), whose ratio under 1 is a pass by
    construction, not a near miss."""
    return "; the AD part: the floor alone" if set(reasons) & {UNGAUGED, UNGAUGED_HALF} else ""


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


_NAMES = {}  # dtype -> its name, which numpy computes anew each time (~8 µs)


def tolerance(verdict, mode, i, dtype):
    """(tolerance, reason) for array i of `mode` (modes.py) when two answers are compared
    in `dtype`: the same for every pair, so computed once per case (module docstring)."""
    name = _NAMES.get(dtype) or _NAMES.setdefault(dtype, np.dtype(dtype).name)
    key = (mode.name, mode.names(verdict.case)[i], name)
    if key not in verdict.tolerances:
        answers = mode.answers(verdict)
        reference = answers["torch" if "torch" in answers else "jax"][i]
        # the answer's size as the references know it, the larger: one may cancel to 0
        # where the other does not (torch's float64 gelu(-10), 1 + erf(x/√2), is -0, JAX's
        # -7.6e-23; the floor scaled by torch's 0 held a right bfloat16 GELU to 1.8e-35)
        scale = max(norm(answers[who][i]) for who in ("torch", "jax") if who in answers)
        gauged = answers.get("torch32")
        u = UNIT[name]
        size = scale + mode.terms(verdict)[i]
        if name in HALF:  # (the output's own rounding is all in the spread: its terms, the
            # largest value anywhere in the graph, made tanh(7)'s floor 6 % of the answer)
            forward = mode.names(verdict.case)[i] == "forward"
            verdict.tolerances[key] = half_tolerance(
                verdict, mode, i, name, scale if forward else size)
            return verdict.tolerances[key]
        floor = rounding_floor(verdict.case.program, u, verdict.condition, size)
        if mode.name not in verdict.gauged:
            verdict.tolerances[key] = (floor, UNGAUGED)
        elif gauged is None or not all(np.all(np.isfinite(a)) for a in gauged):
            verdict.tolerances[key] = (OVERFLOW_FACTOR * floor,
                                       "float32 run overflowed: the floor x 1e4")
        else:
            spread = verdict.spread.get(mode.name)
            measured = max(norm(np.asarray(gauged[i], np.float64) - reference),
                           verdict.gauge_relative * scale, spread[i] if spread else 0.0)
            verdict.tolerances[key] = (C_ROUNDING * measured * u / U32 + floor,
                                       f"{np.dtype(dtype).name}: 32 x measured rounding"
                                       f"{mode.gauged_by} + floor")
    return verdict.tolerances[key]


def half_tolerance(verdict, mode, i, dtype, size):
    """(tolerance, reason) in float16 or bfloat16 ("Half precision" above); `size` is
    ||reference|| + terms, as for float32: an answer that cancels to a residue (var's
    gradient Σ 2(xᵢ - x̄)/n is 0, torch's half run 0.01 from x̄ rounded) is held to the
    rounding of its terms, which Monte Carlo on mflow's rules does not see there."""
    u, steps = UNIT[dtype], len(verdict.case.program) + 1
    floor = F_HALF * steps * u * verdict.condition * size
    # and underflow's: a value below the dtype's smallest normal keeps only an absolute
    # accuracy of its smallest subnormal per rounding (float16: 6e-8; a gradient of 5e-10,
    # exp(-x²) of erf', is 0 in float16), carried by partials up to the largest value
    n = max(1, int(np.prod(mode.shapes(verdict.case)[i])))
    floor += steps * max(1.0, verdict.scales[0]) * SUBNORMAL[dtype] * np.sqrt(n)
    if mode.name not in verdict.gauged:
        return floor, UNGAUGED_HALF
    spread = verdict.spread[mode.name]
    if spread is None:
        return OVERFLOW_FACTOR * floor, f"{dtype}: rounding not measurable: the floor x 1e4"
    return (C_HALF * spread[i] + floor,
            f"{dtype}: {C_HALF:g} x Monte Carlo spread at u = {u:.3g} + floor")


def gauge_half(verdict, mode):
    """The spread of mode's arrays under the half dtype's rounding (Monte Carlo
    arithmetic at its u, on mflow's rules of the mode: "Half precision" above)."""
    if mode.name not in verdict.spread:
        with np.errstate(all="ignore"):
            try:
                verdict.spread[mode.name] = mode.spread(
                    verdict, u=UNIT[verdict.case.program.dtype], samples=HALF_SAMPLES)
            except Exception:  # noqa: BLE001 - outside mflow's domain: the floor x 1e4
                verdict.spread[mode.name] = None


def ad_tolerance(verdict, i, dtype):
    """The VJP's tolerance for array i (0 the output, then each gradient)."""
    from .modes import VJP
    return tolerance(verdict, VJP, i, dtype)


def refine(verdict, mode):
    """Measure float32's rounding on the mode's own pass (module docstring: Monte Carlo
    arithmetic on mflow's rules of the mode), and forget the mode's tolerances. False
    when nothing more can be measured (done already, or outside mflow's domain)."""
    if mode.name in verdict.spread or not verdict.values or verdict.case.program.dtype in HALF:
        return False  # (a half case's spread is its gauge, measured at its own u)
    try:
        with np.errstate(all="ignore"):
            spread = mode.spread(verdict)
    except Exception:  # noqa: BLE001 - outside mflow's domain: nothing more to measure
        return False
    # in float32's units, as the other measurements are (tolerance scales by u / U32)
    verdict.spread[mode.name] = [x * U32 / U_REFINE for x in spread]
    for key in [k for k in verdict.tolerances if k[0] == mode.name]:
        del verdict.tolerances[key]
    return True


def spread_of(exact, runs):
    """The largest distance of a finite run from the exact answer (0 if none is finite)."""
    return max((norm(r - exact) for r in runs if np.all(np.isfinite(r))), default=0.0)


def condition_factor(program, values):
    """n κ², the largest over operands whose domain is "invertible" (inv, det), κ
    the condition number and n the side: the gradient of an inverse is a product
    of two inverses (d X⁻¹ = -X⁻¹ dX X⁻¹), each off by up to κ times the roundoff,
    and det's relative condition is n κ. 1 if the graph has neither."""
    worst = 1.0
    for step in program.steps:
        if step.op in CATALOGUE:
            domains = CATALOGUE[step.op].domains(len(step.args), step.attrs)
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


def rounding_floor(program, u, condition, size):
    """F (steps + 1) κ u · size: what a backward-stable computation with unit
    roundoff u may be off by, `size` being ||answer|| plus its terms (`term_scales`)
    and κ the `condition_factor`. The tolerance when nothing measures it better."""
    return F_FLOOR * (len(program) + 1) * u * condition * size


def as_dtype(program, dtype):
    """The same program in another dtype."""
    return program if program.dtype == dtype else program.with_dtype(dtype)


# --- Monte Carlo arithmetic: float32's rounding simulated on a float64 run ----------

def _rounding(name):
    return CATALOGUE[name].rounding if name in CATALOGUE else "result"


SHIFTS = ("shift", "log-shift")


def _shifted(rounding, y, x, jitter):
    """A shifting operation's result (catalogue: y = exp(x - c), "shift", or x - c,
    "log-shift", with c as large as x, as softmax's logsumexp) with the error of that
    subtraction, u max|x| absolutely, on x - c: y moved by it relatively, or absolutely.
    Jittering its operand cannot show it (the max element's x - c cancels whatever moves
    x): a campaign found JAX's and torch's float64 J t 9 % apart through a log_softmax
    entry of -2e-16, a residue of that rounding, in a product with values of 1e3."""
    big = np.max(np.abs(x), axis=(-2, -1), keepdims=True)
    big = np.broadcast_to(big, np.broadcast_shapes(np.shape(big), np.shape(y)))
    e = jitter(big) - big
    return y + e if rounding == "log-shift" else y * (1 + e)


def perturbed_outputs(program, inputs, samples=2, round_inputs=False, seed=0, u=U32):
    """The output, `samples` times, of the program run in float64 with float32's
    rounding simulated by random relative errors |δ| ≤ u (Monte Carlo arithmetic):
    on the result of every operation that rounds, on the operands of the summing
    ones (each record's `rounding` in the catalogue), and on the inputs when float32
    would round them (`round_inputs`: a float64 case, which the torch float32 run
    casts). The spread is what float32 rounding does to this case, condition
    included: a fuzz campaign found inv(trace(X)) with Σ|Xᵢᵢ| / |tr X| ≈ 1,600, where
    torch's one float32 run happened to be exact and gauged the error as 0. Exact data
    stays exact (1 - (1 - 2⁻¹³) in float32 has no error, and jittering it would make a
    1/x there look 8,000 u uncertain and hide a wrong VJP). Seeded per call, so a
    case's tolerance does not depend on what was checked before it."""
    rng = np.random.default_rng(seed)

    def jitter(x):  # one independent draw per sample, operands without a batch axis too
        x = np.asarray(x)
        if x.dtype.kind != "f":
            return x  # (x + x δ, not x (1 + δ): 1 + δ would round δ ~ u₆₄ away)
        return x + x * (u * rng.uniform(-1, 1, (samples, *x.shape[-2:])))

    def perturbed(name, f):
        rounding = _rounding(name)
        if rounding == "exact":
            return f
        if rounding == "sums":
            return lambda *xs, **kw: jitter(f(*[jitter(x) for x in xs], **kw))
        if rounding in SHIFTS:
            return lambda x, **kw: _shifted(rounding, jitter(f(jitter(x), **kw)), x, jitter)
        return lambda *xs, **kw: jitter(f(*xs, **kw))
    ops = {name: perturbed(name, f) for name, f in NUMPY_OPS.items()}
    batch = [np.broadcast_to(np.asarray(x, np.float64), (samples, *np.shape(x))) for x in inputs]
    if round_inputs:
        batch = [jitter(x) for x in batch]
    with np.errstate(all="ignore"):
        out = interpret(program, ops, lambda x: x, lambda a: a.astype(np.float64), batch)[-1]
    return np.broadcast_to(out, (samples, *out.shape[-2:]))


def _graph(program, inputs):
    """mflow's graph of a float64 program: (leaves, output, every node in order)."""
    from mflow.node import topological

    from .engine import MflowEngine
    engine = MflowEngine()
    nodes = interpret(program, engine.ops, engine.leaf, engine.constant,
                      [np.asarray(x, np.float64) for x in inputs])
    return nodes[:len(inputs)], nodes[-1], topological(nodes[-1], every=True)


def _jittered_forward(order, jitter, round_inputs):
    """Every node's value, recomputed with float32's rounding simulated (as
    `perturbed_outputs`, on mflow's own forward rules)."""
    value = {}
    for node in order:
        if node.op is None:
            value[node] = jitter(node.value) if round_inputs else node.value
            continue
        rounding = _rounding(node.op.name)
        args = [value[p] for p in node.parents]
        if rounding == "sums" or rounding in SHIFTS:
            args = [jitter(a) for a in args]
        y = node.op.forward(*args, **node.attrs)
        value[node] = y if rounding == "exact" else jitter(y)
        if rounding in SHIFTS:
            value[node] = _shifted(rounding, value[node], args[0], jitter)
    return value


class _Jittered:
    """The rules' namespace (mflow.rule_ops.ARRAYS) with the result of each call that
    rounds jittered too: a rounding inside a rule can matter alone (var's VJP subtracts
    a mean it rounded: of a large-mean operand in bfloat16 that one rounding is the
    whole error, and torch's half run has it as well)."""
    ROUNDS = {"cos", "sin", "exp", "sigmoid", "sum", "cumsum", "cumprod", "prod", "conv2d",
              "inv", "solve", "adjugate"}

    def __init__(self, jitter):
        self.jitter = jitter

    def __getattr__(self, name):
        from mflow.rule_ops import ARRAYS
        f = getattr(ARRAYS, name)
        if name not in self.ROUNDS:
            return f
        return lambda *args, **kw: self.jitter(np.asarray(f(*args, **kw)))


def perturbed_gradients(program, inputs, cotangent, samples=1, round_inputs=False, seed=0,
                        u=U32):
    """Every input's gradient from mflow's own rules run in float64, as `samples`
    Monte Carlo arithmetic runs (as `perturbed_outputs`, on the forward pass and on
    every VJP: its cotangent, its operands, its results and the rounding calls of its
    namespace, `_Jittered`), through mflow's one
    reverse walk (mflow.node.backpropagate): a list per input of `samples` arrays
    (u=0: the exact run). It measures how the backward pass of this case amplifies
    rounding, whatever engine is under test."""
    from mflow.node import backpropagate
    rng = np.random.default_rng(seed)
    leaves, out, order = _graph(program, inputs)

    def jitter(x):
        return x + x * (u * rng.uniform(-1, 1, np.shape(x))) if u else x
    F = _Jittered(jitter)

    def rule(op, g, ans, operands, attrs):
        if _rounding(op.name) == "exact":  # exact forward; its VJP may sum the cotangent
            parts = op.vjp(F, jitter(g), ans, *operands, **attrs)  # (broadcast_to, tile)
        else:
            parts = op.vjp(F, jitter(g), ans, *[jitter(a) for a in operands], **attrs)
        return [jitter(np.asarray(p, np.float64)) for p in parts]

    runs = [[] for _ in leaves]
    for _ in range(samples):
        with np.errstate(all="ignore"):
            value = _jittered_forward(order, jitter, round_inputs)
            grads = {}
            backpropagate(out, np.asarray(cotangent, np.float64), grads.__setitem__,
                          value=value.__getitem__, rule=rule)
        for k, leaf in enumerate(leaves):
            runs[k].append(grads.get(leaf, np.zeros(leaf.shape)))
    return runs


def perturbed_tangents(program, inputs, tangents, samples=1, round_inputs=False, seed=0,
                       u=U32):
    """J ṫ from mflow's own JVP rules run in float64, as `samples` Monte Carlo
    arithmetic runs (as `perturbed_gradients`, on the forward pass and on every JVP:
    its operands, their tangents and its result), through mflow's one forward-mode
    walk (mflow.forward.propagate): a list of `samples` arrays (u=0: the exact run)."""
    from mflow.forward import propagate
    rng = np.random.default_rng(seed)
    leaves, out, order = _graph(program, inputs)

    def jitter(x):
        return x + x * (u * rng.uniform(-1, 1, np.shape(x))) if u else x

    def rule(op, ts, ans, operands, attrs):
        if _rounding(op.name) == "exact":
            return op.jvp(ts, ans, *operands, **attrs)
        return jitter(op.jvp(tuple(jitter(t) for t in ts), ans, *operands, **attrs))

    runs = []
    for _ in range(samples):
        with np.errstate(all="ignore"):
            value = _jittered_forward(order, jitter, round_inputs)
            given = {x: np.asarray(t, np.float64) for x, t in zip(leaves, tangents)}
            t = propagate(out, given, value=value.__getitem__, rule=rule).get(out)
        runs.append(np.zeros(out.shape) if t is None else np.array(t, np.float64))
    return runs


def perturbed_hvp(program, inputs, cotangent, tangents, rng, u=U_REFINE):
    """mflow's H ṫ (mflow.hvp) with every input and every rounded value of the forward
    graph moved by a random relative error of at most u (Monte Carlo arithmetic on the
    values the second-order rules read): a saturated tanh's 1 - Y² cancels, and one ulp
    of Y moves it by 1e-4 relative (a correct engine failed by that much before)."""
    from mflow.gradients import hvp

    def jitter(x):
        return x + x * (u * rng.uniform(-1, 1, x.shape))
    leaves, out, order = _graph(program, [jitter(np.asarray(x, np.float64)) for x in inputs])
    for node in order:
        rounding = None if node.op is None else _rounding(node.op.name)
        if rounding not in (None, "exact"):
            node.value = jitter(node.value)
        if rounding in SHIFTS:
            node.value = _shifted(rounding, node.value, node.parents[0].value, jitter)
    return hvp(out, leaves, cotangent, tangents)
