"""The modes a check runs, as data: reverse mode (the VJP), forward mode (J ṫ) and
second order (H ṫ). A mode says what it compares (its arrays), how its references
answer (torch and JAX in float64; torch in float32, the rounding gauge), how the
engine is asked (through the normalised adapter, engine.py), the size of the terms
its answers sum (the tolerance's floor), how its rounding is measured by Monte Carlo
arithmetic on mflow's rules, its finite differences and other checks that need no
array reference, and what its failure is called. The checker (checker.py) runs
every mode through the one path; the tolerance model (tolerance.py) has one formula.

- VJP: the output and each input's gradient. Against torch autograd, JAX (the
  compiled interpreter) and central finite differences of ⟨ȳ, f(x)⟩, per element or
  along signed random directions (finite_differences.py).
- JVP (`jvp` in the adapter): J ṫ along a tangent drawn from the case itself, against
  torch's forward-mode AD, jax.jvp and a central difference along ṫ; and the transpose
  identity ⟨ȳ, J ṫ⟩ = ⟨Jᵀȳ, ṫ⟩ between the engine's own two modes, which needs no
  reference at all (it passes within ||ȳ|| tol(J ṫ) + Σᵢ ||ṫᵢ|| tol(gradient i):
  each side off by at most its array's tolerance, projected).
- HVP (`hvp` in the adapter): H ṫ = ∂/∂x ⟨ȳ, J(x) ṫ⟩ per input, against torch double
  backward, JAX (forward over reverse through the compiled interpreter), and a central
  difference of a gradient along ṫ, projected on a random w: JAX's VJP at the 16 points
  in one batched call (the engine is asked once per mode), else the engine's own VJP at
  each point. A backward pass right in value but not differentiable (a detached factor)
  differs from it.
"""

import numpy as np

from . import torch_backend
from .catalogue import CATALOGUE
from .finite_differences import (
    directional,
    finite_differences,
    forward_values,
    gradient_difference,
)
from .program import HALF
from .tolerance import (
    U_REFINE,
    ad_tolerance,
    as_dtype,
    floor_alone,
    measure,
    perturbed_gradients,
    perturbed_hvp,
    perturbed_outputs,
    perturbed_tangents,
    spread_of,
    tolerance,
)
from .verdict import (
    Comparison,
    ForwardMismatch,
    GradientMismatch,
    HessianMismatch,
    TangentMismatch,
    array_names,
    arrays,
    compare_arrays,
    norm,
    relative,
)

PEER = "torch_half"  # torch's own run of a float16 or bfloat16 case, in that dtype


def _peer(case, run):
    """{PEER: run} for a half-precision case (torch's own run in its dtype), else {}."""
    return {PEER: run} if case.program.dtype in HALF else {}


def _f64(xs):
    return [np.asarray(x, np.float64) for x in xs]


def _f32(xs):
    return [np.asarray(x, np.float32) for x in xs]


class Mode:
    """What a mode is (see the module's docstring); VJP, JVP and HVP below."""
    name = label = gauged_by = ""

    def errors(self, verdict):
        """Its references' errors: keyed "WHO MODE" (the VJP's: "WHO")."""
        return {k: v for k, v in verdict.errors.items()
                if k.endswith(f" {self.name}") and not k.startswith("torch32")}

    def compare_references(self, verdict):
        """The references among themselves: JAX against torch, array by array, torch's
        own half-precision run (the peer) against torch's float64 one by the half
        tolerance, and the mode's own checks (finite differences)."""
        answers = self.answers(verdict)
        for who, dtype in (("jax", np.float64), (PEER, verdict.case.program.np_dtype)):
            if who in answers and "torch" in answers:
                for i, (a, b) in enumerate(zip(answers[who], answers["torch"])):
                    self._array(verdict, i, (self.who(who), self.who("torch")), a, b, dtype)
        self.check_references(verdict)

    def compare_engine(self, verdict, dtype):
        """The engine's answers against each reference (and the peer), array by array,
        and the mode's own checks; an answer the call did not ask for is None (an engine
        session reads a value alone: reports/sessions.py), not compared."""
        answers = self.answers(verdict)
        for who in ("torch", "jax", PEER):
            if who in answers:
                for i, (a, b) in enumerate(zip(answers["engine"], answers[who])):
                    if a is not None:
                        self._array(verdict, i, (self.who("engine"), self.who(who)), a, b,
                                    dtype)
        self.check_engine(verdict, dtype)

    def misshapen(self, case, answer):
        """(what, why) for each answer of the wrong number, shape or dtype (none: [])."""
        want, names = self.shapes(case), self.names(case)
        dtype = case.program.np_dtype
        if len(answer) != len(want):
            return [(names[0], f"expected {len(want)} array(s), {', '.join(names)}, got "
                               f"{len(answer)}")]
        return [(name, f"expected shape {tuple(s)} and dtype {dtype}, got {a.shape} and "
                       f"{a.dtype}") for name, s, a in zip(names, want, answer)
                if a is not None and (a.shape != tuple(s) or a.dtype != dtype)]

    def who(self, name):
        return name

    def _array(self, verdict, i, pair, a, b, dtype):
        verdict.comparisons.append(compare_arrays(self.names(verdict.case)[i], pair, a, b,
                                                  *tolerance(verdict, self, i, dtype)))

    def check_references(self, verdict):
        pass

    def check_engine(self, verdict, dtype):
        pass


class Reverse(Mode):
    name, label, gauged_by = "vjp", "", ""

    def names(self, case):
        return array_names(case)

    def shapes(self, case):
        return [case.program.output_shape, *case.program.inputs]

    def answers(self, verdict):
        return {who: arrays(r) for who, r in verdict.results.items()}

    def errors(self, verdict):
        return {k: v for k, v in verdict.errors.items() if " " not in k and k != "torch32"}

    @staticmethod
    def in_float64(case):
        """(program, inputs, cotangent) in float64, as the references take them (and as
        Checker.prefetch asks JAX for them ahead)."""
        return (as_dtype(case.program, "float64"), _f64(case.inputs),
                np.asarray(case.cotangent, np.float64))

    def references(self, checker, case, verdict):
        """torch and JAX, then numpy's forward values (which every tolerance is scaled
        by) and the finite differences."""
        p64, x64, c64 = self.in_float64(case)
        runs = {"torch": lambda: torch_backend.vjp(p64, x64, c64),
                "jax": lambda: checker.jax.run(p64, x64, c64),
                **_peer(case, lambda: torch_backend.vjp(case.program, case.inputs,
                                                        case.cotangent))}
        collect(checker, verdict, runs, verdict.results, "")
        try:
            verdict.values = forward_values(p64, x64)
        except Exception as e:  # noqa: BLE001 - a singular inv operand, say
            verdict.errors["numpy"] = f"{type(e).__name__}: {e}"
            return
        if "fd" in checker.oracles:
            from .checker import case_rng
            try:
                verdict.probes = finite_differences(p64, x64, c64, case_rng(case),
                                                    base=verdict.values)
            except Exception as e:  # noqa: BLE001
                verdict.errors["fd"] = f"{type(e).__name__}: {e}"
            else:
                verdict.skipped_probes += sum(int((~p.valid).sum()) for p in verdict.probes)
                verdict.unresolved_probes += sum(int((p.valid & ~p.resolved).sum())
                                                 for p in verdict.probes)
        with np.errstate(all="ignore"):
            measure(verdict)

    def gauge(self, checker, case, verdict):
        """torch's float32 VJP, then float32's relative error on this case (tolerance.gauge)."""
        from .tolerance import gauge
        try:
            verdict.results["torch32"] = torch_backend.vjp(
                as_dtype(case.program, "float32"), _f32(case.inputs),
                np.asarray(case.cotangent, np.float32))
        except Exception as e:  # noqa: BLE001 - then only the floor x 1e4 stands
            verdict.errors["torch32"] = f"{type(e).__name__}: {e}"
        gauge(verdict)

    def engine(self, checker, case, verdict, call):
        result = call(checker.normalised.vjp, case.program,
                      inputs=[np.asarray(x, case.program.np_dtype) for x in case.inputs],
                      cotangent=np.asarray(case.cotangent, case.program.np_dtype))
        verdict.results["engine"] = result
        return arrays(result)

    def terms(self, verdict):
        return verdict.scales

    def spread(self, verdict, u=U_REFINE, samples=4):
        """The Monte Carlo spread of the output and of every gradient."""
        case = verdict.case
        program = as_dtype(case.program, "float64")
        rounds = case.program.dtype == "float64"
        exact = perturbed_gradients(program, case.inputs, case.cotangent, u=0.0)
        runs = perturbed_gradients(program, case.inputs, case.cotangent, samples=samples,
                                   round_inputs=rounds, u=u)
        outputs = perturbed_outputs(program, case.inputs, samples=2 * samples,
                                    round_inputs=rounds, seed=1, u=u)
        return [spread_of(verdict.values[-1], outputs)] + [
            spread_of(e[0], r) for r, e in zip(runs, exact)]

    def check_references(self, verdict):
        if verdict.probes and verdict.reference is not None:
            self._fd(verdict, ("fd", verdict.reference), verdict.results[verdict.reference],
                     np.float64)

    def check_engine(self, verdict, dtype):
        if verdict.probes:
            self._fd(verdict, ("engine", "fd"), verdict.results["engine"], dtype)

    def misshapen(self, case, answer):
        if len(answer) != 1 + len(case.inputs):
            return [("gradients", f"expected one gradient per input, {len(case.inputs)}, "
                                  f"got {len(answer) - 1}")]
        return super().misshapen(case, answer)

    def failure(self, verdict):
        if any(c.what == "forward" for c in verdict.failures):
            return ForwardMismatch(f"forward values differ:\n{verdict.describe()}", verdict)
        return GradientMismatch(f"gradients differ:\n{verdict.describe()}", verdict)

    @staticmethod
    def _fd(verdict, pair, result, dtype):
        """⟨gradient, v⟩ against each probe's estimate, within its bound + the AD tolerance
        projected; probes across a kink or that do not converge are left out (counted)."""
        for k, probes in enumerate(verdict.probes):
            if result.grads[k] is None:  # not asked (compare_engine)
                continue
            g = np.asarray(result.grads[k], np.float64)
            tol_ad, why = ad_tolerance(verdict, k + 1, dtype)
            d = probes.directions  # (tensordot's own reshape and dot, without its checks)
            projected = np.dot(d.reshape(len(d), -1), g.reshape(-1, 1)).reshape(-1)
            scale = np.sqrt((probes.directions ** 2).sum(axis=(1, 2)))
            bound = probes.error + tol_ad * scale
            use = probes.valid & probes.resolved
            diff = np.where(use, np.abs(projected - probes.estimate), 0.0)
            ratio = np.where(use, diff / np.maximum(bound, 1e-300), 0.0)
            j = int(np.argmax(ratio))
            worst = (np.unravel_index(j, g.shape) if probes.full else ("direction", j))
            ok = bool(np.all((diff <= bound) | ~use))
            verdict.comparisons.append(Comparison(
                f"gradient of x{k}", pair, float(diff[j]),
                relative(float(diff[j]), abs(float(probes.estimate[j]))),
                tuple(int(w) if not isinstance(w, str) else w for w in worst), float(bound[j]),
                "finite-difference bound (Richardson + rounding) + the AD tolerance"
                + ("" if probes.full else ", along signed random directions")
                + floor_alone(why), ok))


class Forward(Mode):
    name, label, gauged_by = "jvp", " (forward mode)", " of torch's float32 JVP"

    def names(self, case):
        return ["tangent"]

    def shapes(self, case):
        return [case.program.output_shape]

    def who(self, name):
        return f"{name} jvp"

    def answers(self, verdict):
        return {who: [t] for who, t in verdict.jvps.items()}

    def references(self, checker, case, verdict):
        """torch's and JAX's J ṫ, and a central difference along ṫ."""
        tangents_for(case, verdict)
        p64 = as_dtype(case.program, "float64")
        x64, t64 = _f64(case.inputs), _f64(verdict.tangents)
        collect(checker, verdict, {"torch": lambda: torch_backend.jvp(p64, x64, t64)[1],
                                   "jax": lambda: checker.jax.jvp(p64, x64, t64)[1],
                                   **_peer(case, lambda: torch_backend.jvp(
                                       case.program, case.inputs, verdict.tangents)[1])},
                verdict.jvps, "jvp")
        if "fd" in checker.oracles and verdict.values:
            with np.errstate(all="ignore"):
                verdict.fd_tangent = directional(p64, case.inputs, verdict.tangents,
                                                 case.cotangent, base=verdict.values)
            if not verdict.fd_tangent[2] or not verdict.fd_tangent[3]:
                verdict.unresolved_probes += 1

    def gauge(self, checker, case, verdict):
        collect(checker, verdict, {"torch32": lambda: torch_backend.jvp(
            as_dtype(case.program, "float32"), _f32(case.inputs),
            _f32(verdict.tangents))[1]}, verdict.jvps, "jvp")

    def engine(self, checker, case, verdict, call):
        dtype = case.program.np_dtype
        _, t = call(checker.normalised.jvp, case.program,
                    inputs=[np.asarray(x, dtype) for x in case.inputs],
                    tangents=[np.asarray(t, dtype) for t in verdict.tangents])
        verdict.jvps["engine"] = t
        return [t]

    def terms(self, verdict):
        biggest = max(float(np.max(np.abs(v))) for v in verdict.values)
        return [sum(float(np.sum(np.abs(t))) for t in verdict.tangents) * max(1.0, biggest)]

    def spread(self, verdict, u=U_REFINE, samples=4):
        case = verdict.case
        program = as_dtype(case.program, "float64")
        exact = perturbed_tangents(program, case.inputs, verdict.tangents, u=0.0)[0]
        runs = perturbed_tangents(program, case.inputs, verdict.tangents, samples=samples,
                                  round_inputs=case.program.dtype == "float64", u=u)
        return [spread_of(exact, runs)]

    def check_references(self, verdict):
        fd = verdict.fd_tangent
        if fd is not None and fd[2] and fd[3]:
            c = np.asarray(verdict.case.cotangent, np.float64)
            self._scalar(verdict, ("fd jvp", "torch jvp"), fd[0],
                         float(np.sum(c * verdict.jvps["torch"])), np.float64)

    def check_engine(self, verdict, dtype):
        """A central difference along ṫ, and the transpose identity with the engine's VJP."""
        c = np.asarray(verdict.case.cotangent, np.float64)
        j = np.asarray(verdict.jvps["engine"], np.float64)
        lhs = float(np.sum(c * j))
        fd = verdict.fd_tangent
        if fd is not None and fd[2] and fd[3]:
            self._scalar(verdict, ("engine jvp", "fd jvp"), lhs, fd[0], dtype)
        grads = verdict.results["engine"].grads
        if any(g is None for g in grads):  # a session's JVP alone: no VJP to pair it with
            return
        rhs = float(sum(np.sum(np.asarray(g, np.float64) * t)
                        for g, t in zip(grads, verdict.tangents)))
        tols = [tolerance(verdict, self, 0, dtype)] + [
            ad_tolerance(verdict, i + 1, dtype) for i in range(len(verdict.tangents))]
        bound = sum(norm(x) * tol for x, (tol, _) in zip([c, *verdict.tangents], tols))
        _scalar(verdict, "tangent", ("engine jvp", "engine vjp"), lhs, rhs, bound,
                "transpose identity <cotangent, J t> = <J^T cotangent, t>: both sides' "
                "tolerances, projected" + floor_alone(*(why for _, why in tols)))

    def _scalar(self, verdict, pair, a, b, dtype):
        """⟨ȳ, J ṫ⟩ against the difference along ṫ: its bound + ||ȳ|| x the JVP tolerance."""
        c = np.asarray(verdict.case.cotangent, np.float64)
        tol, why = tolerance(verdict, self, 0, dtype)
        _scalar(verdict, "tangent", pair, a, b, verdict.fd_tangent[1] + norm(c) * tol,
                "finite difference along the tangent: its bound + ||cotangent|| x the JVP "
                "tolerance" + floor_alone(why))

    def failure(self, verdict):
        return TangentMismatch(f"forward mode differs:\n{verdict.describe()}", verdict)


class Second(Mode):
    name, label, gauged_by = "hvp", " (second order)", " of torch's float32 double backward"

    def names(self, case):
        return [f"hvp of x{i}" for i in range(len(case.inputs))]

    def shapes(self, case):
        return list(case.program.inputs)

    def who(self, name):
        return f"{name} hvp"

    def answers(self, verdict):
        return dict(verdict.hvps)

    def references(self, checker, case, verdict):
        tangents_for(case, verdict)
        p64 = as_dtype(case.program, "float64")
        x64, c64 = _f64(case.inputs), np.asarray(case.cotangent, np.float64)
        t64 = _f64(verdict.tangents)
        collect(checker, verdict, {"torch": lambda: torch_backend.hvp(p64, x64, c64, t64),
                                   "jax": lambda: checker.jax.hvp(p64, x64, c64, t64),
                                   **_peer(case, lambda: torch_backend.hvp(
                                       case.program, case.inputs, case.cotangent,
                                       verdict.tangents))},
                verdict.hvps, "hvp")
        if self._differences(checker) and "jax" in checker.oracles \
                and checker.jax.encode(p64) is not None:
            # JAX's VJP at the 16 points of the difference, in one batched call
            collect(checker, verdict, {"fd": lambda: self._difference(
                case, verdict, "jax vjp", lambda points: checker.jax.vjps(p64, points, c64))},
                {}, "hvp")

    @staticmethod
    def _differences(checker):
        return "fd" in checker.oracles and checker.float64

    @staticmethod
    def _difference(case, verdict, of, gradients):
        """⟨w, H ṫ⟩ by a central difference of `gradients` (float64) along ṫ."""
        from .checker import case_rng
        p64 = as_dtype(case.program, "float64")
        verdict.hvp_directions = tangents_of(case, case_rng(case, seed=2))
        verdict.fd_hvp = gradient_difference(gradients, p64, case.inputs, verdict.tangents,
                                             verdict.hvp_directions, verdict.scales[1:],
                                             verdict.values)
        verdict.fd_hvp_of = of
        if not (verdict.fd_hvp[2] and verdict.fd_hvp[3]):
            verdict.unresolved_probes += 1

    def gauge(self, checker, case, verdict):
        collect(checker, verdict, {"torch32": lambda: torch_backend.hvp(
            as_dtype(case.program, "float32"), _f32(case.inputs),
            np.asarray(case.cotangent, np.float32), _f32(verdict.tangents))},
            verdict.hvps, "hvp")

    def engine(self, checker, case, verdict, call):
        """H ṫ; then, where JAX's batched VJP could not be had (a program its
        interpreter does not hold, JAX not among the oracles), the central difference of
        the engine's own gradient along ṫ (in float64, where the engine has it), every
        call on fresh copies."""
        program, dtype = case.program, case.program.np_dtype
        hs = call(checker.normalised.hvp, program,
                  inputs=[np.asarray(x, dtype) for x in case.inputs],
                  cotangent=np.asarray(case.cotangent, dtype),
                  tangents=[np.asarray(t, dtype) for t in verdict.tangents])
        if self._differences(checker) and verdict.fd_hvp is None and "fd hvp" not in \
                verdict.errors:
            p64 = as_dtype(program, "float64")
            c64 = np.asarray(case.cotangent, np.float64)
            self._difference(case, verdict, "engine vjp", lambda points: [
                call(checker.normalised.vjp, p64, inputs=xs, cotangent=c64).grads
                for xs in points])
        verdict.hvps["engine"] = hs
        return hs

    def terms(self, verdict):
        """Σ|ȳ| max(1, |v|max)² Σ|ṫ|: a second derivative sums products of two partials
        and the tangent, each bounded by the largest value of the graph; times
        max |result| / min |x|² over the nonzero operands x of an operation whose
        reference divides by them at second order (catalogue `divides`: torch's H t of
        prod(x) = x at x = 0.046 is c t (1/x - x/x²), terms of 43 cancelling to a
        residue of 7e-15, three times the floor without them)."""
        biggest = max(float(np.max(np.abs(v))) for v in verdict.values)
        size = (float(np.sum(np.abs(verdict.case.cotangent))) * max(1.0, biggest) ** 2
                * sum(float(np.sum(np.abs(t))) for t in verdict.tangents))
        n, divided = len(verdict.case.inputs), 1.0
        for k, step in enumerate(verdict.case.program.steps):
            if step.op in CATALOGUE and CATALOGUE[step.op].divides:
                x = np.abs(verdict.values[step.args[0]])
                if np.any(x > 0):  # (twice by min |x|, not by its square: 1e-261 is a
                    # float64 factor where float32's is 0, and its square underflows)
                    result, least = np.max(np.abs(verdict.values[n + k])), np.min(x[x > 0])
                    with np.errstate(over="ignore"):
                        divided = max(divided, float(min(result / least / least, BIGGEST)))
        return [size * divided] * n

    def spread(self, verdict, u=U_REFINE, samples=4):
        """mflow's H ṫ with its inputs and rounded values perturbed at u (4 u₆₄ when
        refining float64 or float32; the dtype's own in half precision)."""
        case = verdict.case
        program, rng = as_dtype(case.program, "float64"), np.random.default_rng(0)
        x64, c64 = _f64(case.inputs), np.asarray(case.cotangent, np.float64)
        t64 = _f64(verdict.tangents)
        exact = perturbed_hvp(program, x64, c64, t64, rng, u=0.0)
        runs = [perturbed_hvp(program, x64, c64, t64, rng, u=u) for _ in range(samples)]
        return [spread_of(e, [r[i] for r in runs]) for i, e in enumerate(exact)]

    def check_engine(self, verdict, dtype):
        """⟨w, H ṫ⟩ against the difference of a gradient along ṫ (JAX's, or the
        engine's own): its bound + Σ ||wᵢ|| x the HVP tolerances."""
        fd = verdict.fd_hvp
        if fd is None or not (fd[2] and fd[3]):
            return
        w = verdict.hvp_directions
        lhs = sum(float(np.sum(wi * np.asarray(h, np.float64)))
                  for wi, h in zip(w, verdict.hvps["engine"]))
        tols = [tolerance(verdict, self, i, dtype) for i in range(len(w))]
        bound = fd[1] + sum(norm(wi) * tol for wi, (tol, _) in zip(w, tols))
        _scalar(verdict, "hvp", ("engine hvp", f"fd of {verdict.fd_hvp_of}"), lhs, fd[0], bound,
                f"central difference of the {verdict.fd_hvp_of} along the tangent: its bound + "
                "Σ ||w_i|| x the HVP tolerances" + floor_alone(*(why for _, why in tols)))

    def failure(self, verdict):
        return HessianMismatch(f"second order differs:\n{verdict.describe()}", verdict)


VJP, JVP, HVP = Reverse(), Forward(), Second()
MODES = {mode.name: mode for mode in (VJP, JVP, HVP)}


def tangents_of(case, rng):
    """ṫ per input, in the case's dtype, drawn from the case's own generator: a
    replay of the case checks the same tangent."""
    return [rng.uniform(-1, 1, x.shape).astype(x.dtype) for x in case.inputs]


def tangents_for(case, verdict):
    """The case's tangents (the same for forward mode and second order), drawn once."""
    if not verdict.tangents:
        from .checker import case_rng
        verdict.tangents = tangents_of(case, case_rng(case, seed=1))


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
            verdict.errors[f"{who} {mode}".strip()] = f"{type(e).__name__}: {e}"


BIGGEST = np.finfo(np.float64).max  # (a bound of inf times a zero size would be NaN)


def _scalar(verdict, what, pair, a, b, bound, reason):
    err = abs(a - b) if np.isfinite(a - b) else float("inf")
    verdict.comparisons.append(Comparison(what, pair, err, relative(err, abs(b)),
                                          ("projected",), bound, reason, bool(err <= bound)))
