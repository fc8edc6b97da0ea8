"""Second order, for engines that offer it (`hvp` in the adapter, engine.py): the
Hessian-vector product H ṫ = ∂/∂x ⟨ȳ, J(x) ṫ⟩, for every input, the derivative of
the engine's own VJP along the case's tangent ṫ. Against torch double backward
(float64), JAX (forward over reverse: jax.jvp of the compiled interpreter's VJP, float64)
and a central difference of the engine's own gradient along ṫ, projected on a
random direction w: d/dε ⟨w, ∇(x + εṫ)⟩ = ⟨w, H ṫ⟩. That last one needs no
second-order reference: a backward pass that is right in value but not
differentiable (a rule built from `.value`, a detached `ans`) differs from it.

Tolerances, by the same measured-rounding model as the VJP's (tolerance.py): per
input, 32 x ||torch32 - torch64|| of H ṫ (torch's own float32 double backward)
scaled to the dtype, plus the floor 16 (steps + 1) κ u (||H ṫ|| + Σ|ȳ| Σ|ṫ|
max(1, |v|max)²): a second derivative sums products of two partials and the
tangent, each bounded by the largest value of the graph. The central difference
passes within its own bound (Richardson step + rounding, as finite_differences.py,
the rounding of each gradient taken as K u Σ|w| times the gradient's terms) plus
Σᵢ ||wᵢ|| tolᵢ. When a comparison fails, the second-order pass's rounding is
measured first (`refine`: Monte Carlo arithmetic at 4 u₆₄ on the inputs and every
rounded value of mflow's forward graph, then mflow's H ṫ, 4 times; the spread joins
the measured error) and the VJP's (tolerance.refine), and the comparisons are made
again, as in forward mode."""

import numpy as np

from .finite_differences import U, along, steps_along, straddles
from .forward_mode import collect
from .numpy_backend import NUMPY_OPS
from .program import interpret
from .tolerance import (
    C_ROUNDING,
    OVERFLOW_FACTOR,
    U32,
    U64,
    U_REFINE,
    UNGAUGED,
    as_dtype,
    rounding_floor,
)
from .verdict import Comparison, compare_arrays, norm, relative


def has_hvp(engine):
    return callable(getattr(engine, "hvp", None))


def run_engine_hvp(engine, program, inputs, cotangent, tangents):
    """H ṫ per input as numpy arrays, through either form of the protocol."""
    if hasattr(engine, "vjp"):  # functional form: hvp(fn, inputs, cotangent, tangents)
        constant = getattr(engine, "constant", lambda a: a)

        def fn(*xs):
            return interpret(program, engine.ops, lambda x: x, constant, xs)[-1]
        hs = engine.hvp(fn, list(inputs), cotangent, list(tangents))
    else:  # graph form: hvp(output, leaves, cotangent, tangents)
        values = interpret(program, engine.ops, engine.leaf, engine.constant, inputs)
        hs = engine.hvp(values[-1], values[:len(inputs)], cotangent, list(tangents))
    return [h if isinstance(h, np.ndarray) else np.asarray(engine.to_numpy(h)) for h in hs]


def torch_hvp(program, inputs, cotangent, tangents):
    """torch's double backward: the gradient of ⟨Jᵀȳ, ṫ⟩ (create_graph=True)."""
    import torch

    from .torch_backend import TORCH_OPS
    xs = [torch.tensor(np.asarray(x), requires_grad=True) for x in inputs]
    out = interpret(program, TORCH_OPS, lambda x: x, torch.tensor, xs)[-1]
    zero = [np.zeros(np.shape(x), np.asarray(x).dtype) for x in inputs]
    if not out.requires_grad:
        return zero
    grads = torch.autograd.grad(out, xs, torch.tensor(np.asarray(cotangent)), create_graph=True,
                                allow_unused=True)
    inner = sum((g * torch.tensor(np.asarray(t))).sum() for g, t in zip(grads, tangents)
                if g is not None and g.requires_grad)
    if not isinstance(inner, torch.Tensor):
        return zero
    hs = torch.autograd.grad(inner, xs, allow_unused=True)
    return [z if h is None else h.detach().numpy() for h, z in zip(hs, zero)]


def references(checker, case, verdict):
    """The references' H ṫ into verdict.hvps (errors into verdict.errors)."""
    p64 = as_dtype(case.program, "float64")
    x64 = [np.asarray(x, np.float64) for x in case.inputs]
    c64 = np.asarray(case.cotangent, np.float64)
    t64 = [np.asarray(t, np.float64) for t in verdict.tangents]
    runs = {"torch": lambda: torch_hvp(p64, x64, c64, t64),
            "jax": lambda: checker.jax.hvp(p64, x64, c64, t64)}
    collect(checker, verdict, runs, verdict.hvps, "hvp")


def gauge(checker, case, verdict):
    """torch's float32 H ṫ, the rounding gauge (run only once the floor alone failed)."""
    collect(checker, verdict, {"torch32": lambda: torch_hvp(
        as_dtype(case.program, "float32"), [np.asarray(x, np.float32) for x in case.inputs],
        np.asarray(case.cotangent, np.float32),
        [np.asarray(t, np.float32) for t in verdict.tangents])}, verdict.hvps, "hvp")


def engine_difference(gradient, program, inputs, tangents, directions, scales, base):
    """A central difference of the engine's own gradient along ṫ, projected on w:
    (estimate of ⟨w, H ṫ⟩, bound, valid, resolved). `gradient(xs)`: the engine's
    VJP at xs (float64); `scales`: each gradient's term size (tolerance.term_scales)."""
    xs = [np.asarray(x, np.float64) for x in inputs]
    ts = [np.asarray(t, np.float64) for t in tangents]
    h, steps = steps_along(xs, ts)
    psi = []
    for s in steps * h:
        grads = gradient([x + s * t for x, t in zip(xs, ts)])
        psi.append(sum(float(np.sum(w * np.asarray(g, np.float64)))
                       for w, g in zip(directions, grads)))
    psi = np.asarray(psi).reshape(len(steps), 1)
    with np.errstate(all="ignore"):  # the kinks its evaluations straddle, from numpy's pass
        values = interpret(program, NUMPY_OPS, lambda x: x,
                           lambda a: a.astype(np.float64),
                           [x + (steps * h)[:, None, None] * t for x, t in zip(xs, ts)])
    valid = bool(np.isfinite(psi).all()) and not bool(
        straddles(program, base, values, 1, len(steps))[0])
    rounding = 64 * (len(program.steps) + 1) * U * sum(
        float(np.abs(w).sum()) * s for w, s in zip(directions, scales))
    estimate, error, resolved = along(psi, h, rounding)
    return estimate, error, valid, resolved and valid


def tolerance(verdict, i, dtype):
    """(tolerance, reason) for input i's H ṫ compared in `dtype` (module docstring)."""
    key = ("hvp", i, np.dtype(dtype).name)
    if key not in verdict.tolerances:
        ref, gauge = verdict.hvps["torch"][i], verdict.hvps.get("torch32")
        u = U32 if np.dtype(dtype) == np.float32 else U64
        biggest = max(float(np.max(np.abs(v))) for v in verdict.values)
        terms = (float(np.sum(np.abs(verdict.case.cotangent))) * max(1.0, biggest) ** 2
                 * sum(float(np.sum(np.abs(t))) for t in verdict.tangents))
        floor = rounding_floor(verdict.case.program, u, verdict.condition, norm(ref) + terms)
        if "hvp" not in verdict.gauged:
            verdict.tolerances[key] = (floor, UNGAUGED)
        elif gauge is None or not all(np.all(np.isfinite(g)) for g in gauge):
            verdict.tolerances[key] = (OVERFLOW_FACTOR * floor,
                                       "float32 run overflowed: the floor x 1e4")
        else:
            spread = verdict.hvp_spread[i] if verdict.hvp_spread else 0.0
            measured = max(norm(np.asarray(gauge[i], np.float64) - ref),
                           verdict.gauge_relative * norm(ref), spread)
            verdict.tolerances[key] = (C_ROUNDING * measured * u / U32 + floor,
                                       f"{np.dtype(dtype).name}: 32 x measured rounding of "
                                       "torch's float32 double backward + floor")
    return verdict.tolerances[key]


def refine(verdict):
    """How much float64 rounding can move H ṫ on this case (module docstring), in
    float32's units; forget the second-order tolerances. False when already done."""
    if verdict.hvp_spread is not None or not verdict.values:
        return False
    case = verdict.case
    program, rng = as_dtype(case.program, "float64"), np.random.default_rng(0)
    x64 = [np.asarray(x, np.float64) for x in case.inputs]
    c64 = np.asarray(case.cotangent, np.float64)
    t64 = [np.asarray(t, np.float64) for t in verdict.tangents]
    try:
        with np.errstate(all="ignore"):
            exact = perturbed_hvp(program, x64, c64, t64, rng, u=0.0)
            runs = [perturbed_hvp(program, x64, c64, t64, rng) for _ in range(4)]
    except Exception:  # noqa: BLE001 - outside mflow's domain: nothing more to measure
        return False
    verdict.hvp_spread = [max((norm(r[i] - e) for r in runs if np.all(np.isfinite(r[i]))),
                              default=0.0) * U32 / U_REFINE for i, e in enumerate(exact)]
    for key in [k for k in verdict.tolerances if k[0] == "hvp"]:
        del verdict.tolerances[key]
    return True


def perturbed_hvp(program, inputs, cotangent, tangents, rng, u=U_REFINE):
    """mflow's H ṫ with every input and every rounded value of the forward graph
    moved by a random relative error of at most u (Monte Carlo arithmetic on the
    values the second-order rules read): a saturated tanh's 1 - Y² cancels, and one
    ulp of Y moves it by 1e-4 relative (a correct engine failed by that much before)."""
    from mflow.node import _topological

    from .engine import MflowEngine
    engine = MflowEngine()

    def jitter(x):
        return x + x * (u * rng.uniform(-1, 1, x.shape))
    nodes = interpret(program, engine.ops, engine.leaf, engine.constant,
                      [jitter(x) for x in inputs])
    for node in _topological(nodes[-1], every=True):
        if node.op is not None and node.op.rounding != "exact":
            node.value = jitter(node.value)
    return engine.hvp(nodes[-1], nodes[:len(inputs)], cotangent, tangents)


def _array(verdict, i, pair, a, b, dtype):
    verdict.comparisons.append(compare_arrays(f"hvp of x{i}", pair, a, b,
                                              *tolerance(verdict, i, dtype)))


def compare_references(verdict):
    """JAX's H ṫ against torch's."""
    if "jax" in verdict.hvps:
        for i, (a, b) in enumerate(zip(verdict.hvps["jax"], verdict.hvps["torch"])):
            _array(verdict, i, ("jax hvp", "torch hvp"), a, b, np.float64)


def compare_engine(verdict, engine_hvp, dtype):
    """The engine's H ṫ against each reference and the difference of its own gradient."""
    for who in ("torch", "jax"):
        if who in verdict.hvps:
            for i, (a, b) in enumerate(zip(engine_hvp, verdict.hvps[who])):
                _array(verdict, i, ("engine hvp", f"{who} hvp"), a, b, dtype)
    fd = verdict.fd_hvp
    if fd is None or not (fd[2] and fd[3]):
        return
    w = verdict.hvp_directions
    lhs = sum(float(np.sum(wi * np.asarray(h, np.float64))) for wi, h in zip(w, engine_hvp))
    bound = fd[1] + sum(norm(wi) * tolerance(verdict, i, dtype)[0] for i, wi in enumerate(w))
    err = abs(lhs - fd[0]) if np.isfinite(lhs - fd[0]) else float("inf")
    verdict.comparisons.append(Comparison(
        "hvp", ("engine hvp", "fd of engine vjp"), err, relative(err, abs(fd[0])), ("projected",),
        bound, "central difference of the engine's gradient along the tangent: its bound + "
        "Σ ||w_i|| x the HVP tolerances", bool(err <= bound)))
