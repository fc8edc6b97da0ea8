"""Forward mode, for engines that offer it (`jvp` in the adapter, engine.py): the
engine's J ṫ along a tangent drawn from the case itself, against torch.func.jvp
(float64), jax.jvp (float64, the compiled interpreter) and a central difference
along ṫ; and the transpose identity ⟨ȳ, J ṫ⟩ = ⟨Jᵀ ȳ, ṫ⟩ between the engine's
own JVP and VJP, which needs no reference at all.

Tolerances, by the same measured-rounding model as the VJP's (tolerance.py): for
J ṫ, 32 x ||torch32 - torch64|| (torch's own float32 JVP) scaled to the dtype,
plus the floor 16 (steps + 1) κ u (||J ṫ|| + Σ|ṫ| max(1, |v|max)), the tangent's
terms counted as the gradient's cotangent terms are. A central difference along
ṫ estimates ⟨ȳ, J ṫ⟩ and passes within its own bound plus ||ȳ|| x that tolerance.
The transpose identity passes within ||ȳ|| tol(J ṫ) + Σᵢ ||ṫᵢ|| tol(gradient i):
each side is off by at most its array's tolerance, projected (Cauchy-Schwarz).
When a comparison fails, the forward-mode pass's own rounding is measured first
(`refine`: Monte Carlo arithmetic on mflow's JVP rules, joining the measured
error), the VJP's too (tolerance.refine), and the comparisons are made again,
as the VJP's are."""

import warnings

import numpy as np

from .program import interpret
from .tolerance import (
    C_ROUNDING,
    OVERFLOW_FACTOR,
    U32,
    U64,
    UNGAUGED,
    ad_tolerance,
    as_dtype,
    rounding_floor,
)
from .verdict import Comparison, compare_arrays, norm, relative

# torch.func.jvp calls the deprecated torch.jit.script inside: torch's, not the user's
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated",
                        category=DeprecationWarning)


def has_jvp(engine):
    return callable(getattr(engine, "jvp", None))


def tangents_of(case, rng):
    """ṫ per input, in the case's dtype, drawn from the case's own generator: a
    replay of the case checks the same tangent."""
    return [rng.uniform(-1, 1, x.shape).astype(x.dtype) for x in case.inputs]


def run_engine_jvp(engine, program, inputs, tangents):
    """(output, J ṫ) as numpy arrays, through either form of the protocol."""
    if hasattr(engine, "vjp"):  # functional form: jvp(fn, inputs, tangents)
        constant = getattr(engine, "constant", lambda a: a)

        def fn(*xs):
            return interpret(program, engine.ops, lambda x: x, constant, xs)[-1]
        out, t = engine.jvp(fn, list(inputs), list(tangents))
    else:  # graph form: jvp(output, leaves, tangents)
        values = interpret(program, engine.ops, engine.leaf, engine.constant, inputs)
        out = values[-1]
        t = engine.jvp(out, values[:len(inputs)], list(tangents))
    as_array = lambda v: v if isinstance(v, np.ndarray) else np.asarray(engine.to_numpy(v))  # noqa: E731
    return as_array(out), as_array(t)


def torch_jvp(program, inputs, tangents):
    """torch's (output, J ṫ), by dual tensors (torch.autograd.forward_ad): the same
    answers as torch.func.jvp, bit for bit on 150 drawn graphs, at 0.6 of its cost
    per call (0.49 ms against 0.79-0.85 ms warm, graphs of 10 drawn operations)."""
    import torch
    from torch.autograd import forward_ad

    from .torch_backend import TORCH_OPS
    with forward_ad.dual_level():
        xs = [forward_ad.make_dual(torch.tensor(np.asarray(x)), torch.tensor(np.asarray(t)))
              for x, t in zip(inputs, tangents)]
        out, t = forward_ad.unpack_dual(interpret(program, TORCH_OPS, lambda x: x,
                                                  torch.tensor, xs)[-1])
        out = out.detach().numpy()
        return out, np.zeros_like(out) if t is None else t.detach().numpy()


def references(checker, case, verdict, tangents):
    """The references' J ṫ into verdict.jvps (errors into verdict.errors)."""
    p64 = as_dtype(case.program, "float64")
    x64 = [np.asarray(x, np.float64) for x in case.inputs]
    t64 = [np.asarray(t, np.float64) for t in tangents]
    runs = {"torch": lambda: torch_jvp(p64, x64, t64)[1],
            "jax": lambda: checker.jax.jvp(p64, x64, t64)[1]}
    collect(checker, verdict, runs, verdict.jvps, "jvp")


def gauge(checker, case, verdict):
    """torch's float32 J ṫ, the rounding gauge (run only once the floor alone failed)."""
    collect(checker, verdict, {"torch32": lambda: torch_jvp(
        as_dtype(case.program, "float32"), [np.asarray(x, np.float32) for x in case.inputs],
        [np.asarray(t, np.float32) for t in verdict.tangents])[1]}, verdict.jvps, "jvp")


def collect(checker, verdict, runs, into, mode):
    """Each reference's answer {who: run()} into `into`; one that raises into
    verdict.errors as "WHO MODE" (JAX only where the checker uses it)."""
    for who, run in runs.items():
        if who == "jax" and "jax" not in checker.oracles:
            continue
        try:
            with np.errstate(all="ignore"):
                into[who] = run()
        except Exception as e:  # noqa: BLE001 - a reference that raises is reported
            verdict.errors[f"{who} {mode}"] = f"{type(e).__name__}: {e}"


def tolerance(verdict, dtype):
    """(tolerance, reason) for J ṫ compared in `dtype` (module docstring)."""
    key = ("jvp", np.dtype(dtype).name)
    if key not in verdict.tolerances:
        ref, gauge = verdict.jvps["torch"], verdict.jvps.get("torch32")
        u = U32 if np.dtype(dtype) == np.float32 else U64
        biggest = max(float(np.max(np.abs(v))) for v in verdict.values)
        terms = sum(float(np.sum(np.abs(t))) for t in verdict.tangents) * max(1.0, biggest)
        floor = rounding_floor(verdict.case.program, u, verdict.condition, norm(ref) + terms)
        if "jvp" not in verdict.gauged:
            verdict.tolerances[key] = (floor, UNGAUGED)
        elif gauge is None or not np.all(np.isfinite(gauge)):
            verdict.tolerances[key] = (OVERFLOW_FACTOR * floor,
                                       "float32 run overflowed: the floor x 1e4")
        else:
            measured = max(norm(np.asarray(gauge, np.float64) - ref),
                           verdict.gauge_relative * norm(ref), verdict.jvp_spread or 0.0)
            verdict.tolerances[key] = (C_ROUNDING * measured * u / U32 + floor,
                                       f"{np.dtype(dtype).name}: 32 x measured rounding of "
                                       "torch's float32 JVP + floor")
    return verdict.tolerances[key]


def refine(verdict):
    """Measure float32's rounding on the forward-mode pass itself, by Monte Carlo
    arithmetic on mflow's JVP rules (as tolerance.refine does for the VJP: torch's
    one float32 JVP can be exact by luck, a saturated tanh behind inv of a trace that
    cancels), and forget the JVP tolerances. False when nothing more can be measured."""
    from .tolerance import U_REFINE, perturbed_tangents
    if verdict.jvp_spread is not None or not verdict.values:
        return False
    case = verdict.case
    program = as_dtype(case.program, "float64")
    try:
        exact = perturbed_tangents(program, case.inputs, verdict.tangents, u=0.0)[0]
        samples = perturbed_tangents(program, case.inputs, verdict.tangents, samples=4,
                                     round_inputs=case.program.dtype == "float64", u=U_REFINE)
    except Exception:  # noqa: BLE001 - outside mflow's domain: nothing more to measure
        return False
    spread = max((norm(s - exact) for s in samples if np.all(np.isfinite(s))), default=0.0)
    verdict.jvp_spread = spread * U32 / U_REFINE  # in float32's units, as the others
    for key in [k for k in verdict.tolerances if k[0] == "jvp"]:
        del verdict.tolerances[key]
    return True


def _array(verdict, pair, a, b, dtype):
    verdict.comparisons.append(compare_arrays("tangent", pair, a, b, *tolerance(verdict, dtype)))


def _scalar(verdict, pair, a, b, bound, reason):
    err = abs(a - b) if np.isfinite(a - b) else float("inf")
    verdict.comparisons.append(Comparison("tangent", pair, err, relative(err, abs(b)),
                                          ("projected",), bound, reason, bool(err <= bound)))


def compare_references(verdict):
    """The references among themselves: jax vs torch, and fd vs torch along ṫ."""
    case = verdict.case
    if "jax" in verdict.jvps:
        _array(verdict, ("jax jvp", "torch jvp"), verdict.jvps["jax"], verdict.jvps["torch"],
               np.float64)
    fd = verdict.fd_tangent
    if fd is not None and fd[2] and fd[3]:
        tol, _ = tolerance(verdict, np.float64)
        c = np.asarray(case.cotangent, np.float64)
        _scalar(verdict, ("fd jvp", "torch jvp"), fd[0], float(np.sum(c * verdict.jvps["torch"])),
                fd[1] + norm(c) * tol, "finite difference along the tangent: its bound + "
                "||cotangent|| x the JVP tolerance")


def compare_engine(verdict, engine_jvp, engine_grads, dtype):
    """The engine's J ṫ against each reference, and the transpose identity."""
    case = verdict.case
    c = np.asarray(case.cotangent, np.float64)
    for who in ("torch", "jax"):
        if who in verdict.jvps:
            _array(verdict, ("engine jvp", f"{who} jvp"), engine_jvp, verdict.jvps[who], dtype)
    tol, _ = tolerance(verdict, dtype)
    fd = verdict.fd_tangent
    j = np.asarray(engine_jvp, np.float64)
    if j.shape != c.shape:
        return
    lhs = float(np.sum(c * j))
    if fd is not None and fd[2] and fd[3]:
        _scalar(verdict, ("engine jvp", "fd jvp"), lhs, fd[0], fd[1] + norm(c) * tol,
                "finite difference along the tangent: its bound + ||cotangent|| x the JVP "
                "tolerance")
    rhs = float(sum(np.sum(np.asarray(g, np.float64) * t)
                    for g, t in zip(engine_grads, verdict.tangents)))
    bound = norm(c) * tol + sum(norm(t) * ad_tolerance(verdict, i + 1, dtype)[0]
                                for i, t in enumerate(verdict.tangents))
    _scalar(verdict, ("engine jvp", "engine vjp"), lhs, rhs, bound,
            "transpose identity <cotangent, J t> = <J^T cotangent, t>: both sides' "
            "tolerances, projected")
