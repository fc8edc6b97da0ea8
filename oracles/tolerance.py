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

Finite differences carry their own bound per probe (see finite_differences.py);
a probe compares ⟨gradient, v⟩ with the estimate and passes within
bound + the AD tolerance above, projected.
"""

import numpy as np

from mflow.ops import OPS

from .numpy_backend import NUMPY_OPS
from .program import Program, interpret
from .verdict import arrays, norm

U32, U64 = np.finfo(np.float32).eps / 2, np.finfo(np.float64).eps / 2
C_ROUNDING, F_FLOOR, OVERFLOW_FACTOR = 32.0, 16.0, 1e4


def measure(verdict):
    """Fill the verdict's term scales, condition factor and float32 relative error
    (from torch's float32 run and Monte Carlo arithmetic on the output), which every
    AD tolerance of the case reads."""
    case = verdict.case
    program = case.program
    gauge = verdict.results.get("torch32")
    out_scale, grad_scale = term_scales(case.cotangent, verdict.values)
    verdict.scales = [out_scale] + [grad_scale] * len(case.inputs)
    verdict.condition = condition_factor(program, verdict.values)
    ref64 = verdict.results.get(verdict.reference) if verdict.reference else None
    if gauge is not None and ref64 is not None:
        # float32's relative error, the largest over the output and every gradient: one
        # array's float32 error can be small by chance; they share the same computation
        # (relative to the array's terms as well as its norm, so that an answer that
        # cancels to rounding residue does not inflate everyone's tolerance)
        verdict.gauge_relative = max(
            norm(np.asarray(g, np.float64) - r) / (norm(r) + scale)
            if norm(r) + scale > 0 else 0.0
            for g, r, scale in zip(arrays(gauge), arrays(ref64), verdict.scales))
    if gauge is not None and verdict.values:
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
    if gauge is None or not all(np.all(np.isfinite(a)) for a in arrays(gauge)):
        return OVERFLOW_FACTOR * floor, "float32 run overflowed: the floor x 1e4"
    own = norm(np.asarray(arrays(gauge)[i], np.float64) - reference)
    measured = max(own, verdict.gauge_relative * norm(reference))
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
            return x
        return x * (1 + u * rng.uniform(-1, 1, (samples, *x.shape[-2:])))

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


def rounding_floor(program, u, condition, size):
    """F (steps + 1) κ u · size: what a backward-stable computation with unit
    roundoff u may be off by, `size` being ||answer|| plus its terms (`term_scales`)
    and κ the `condition_factor`. The tolerance when nothing measures it better."""
    return F_FLOOR * (len(program) + 1) * u * condition * size


def as_dtype(program, dtype):
    """The same program in another dtype."""
    return program if program.dtype == dtype else Program(program.inputs, program.steps, dtype)
