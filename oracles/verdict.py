"""Run a case on the engine and every reference, compare, and give a verdict.

References: PyTorch autograd (float64), JAX `jax.vjp` (float64) and central
finite differences (float64). The engine runs in the program's dtype.

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

Verdicts
--------
The engine is blamed only when the references agree among themselves (torch
against JAX, and finite differences against torch) and the engine disagrees
with them. When references disagree or one of them raises, the failure is a
ReferenceProblem: the truth is unknown and the engine is not accused. Each kind
of failure is its own exception type, so Hypothesis reports (and shrinks)
each bug apart.
"""

from dataclasses import dataclass, field

import numpy as np

from .engine import Result, run_engine
from .finite_differences import finite_differences, forward_values
from .program import Case

U32, U64 = np.finfo(np.float32).eps / 2, np.finfo(np.float64).eps / 2
C_ROUNDING, F_FLOOR, OVERFLOW_FACTOR = 32.0, 16.0, 1e4
ORACLES = ("torch", "jax", "fd")


class Failure(AssertionError):
    """A case the suite does not accept. `verdict` has every comparison."""

    def __init__(self, message, verdict=None):
        super().__init__(message)
        self.verdict = verdict


class EngineBug(Failure):
    """The engine disagrees with references that agree among themselves."""


class ForwardMismatch(EngineBug):
    """The engine's forward value differs from the references'."""


class GradientMismatch(EngineBug):
    """An input's gradient differs from the references'."""


class ShapeOrDtypeMismatch(EngineBug):
    """An answer of the wrong shape or dtype."""


class EngineCrash(EngineBug):
    """The engine raised where the references did not."""


class ReferenceProblem(Failure):
    """References disagree among themselves, or one raised: not the engine's fault."""


@dataclass
class Comparison:
    what: str        # "forward", "gradient of x1"
    pair: tuple      # (who, against whom)
    abs_err: float   # norm-wise |a - b|, or the worst probe's |⟨g, v⟩ - estimate|
    rel_err: float   # abs_err relative to the reference's norm
    worst: tuple     # index of the worst element (or probe)
    tolerance: float
    reason: str
    ok: bool

    def __str__(self):
        return (f"{self.what}: {self.pair[0]} vs {self.pair[1]}: |error| {self.abs_err:.3g} "
                f"(relative {self.rel_err:.3g}) at {self.worst}, tolerance {self.tolerance:.3g} "
                f"[{self.reason}]")


@dataclass
class Verdict:
    case: Case
    engine_name: str
    results: dict = field(default_factory=dict)      # who -> Result
    comparisons: list = field(default_factory=list)
    skipped_probes: int = 0                          # finite differences across a kink
    scales: list = field(default_factory=list)       # per array: the size of its terms
    tolerances: dict = field(default_factory=dict)   # (array, dtype) -> (tolerance, reason)
    values: list = field(default_factory=list)       # every value of the graph, numpy float64
    condition: float = 1.0                           # n κ² of the worst inv/det operand
    gauge_relative: float = 0.0                      # float32's relative error on this case
    errors: dict = field(default_factory=dict)       # who -> exception text

    @property
    def failures(self):
        return [c for c in self.comparisons if not c.ok]

    def describe(self):
        lines = [f"engine {self.engine_name!r} on a program of {len(self.case.program)} steps "
                 f"({', '.join(self.case.program.ops())}), dtype {self.case.program.dtype}"]
        lines += [f"  {who} raised: {err}" for who, err in self.errors.items()]
        lines += [f"  FAIL {c}" for c in self.failures]
        if self.skipped_probes:
            lines.append(f"  ({self.skipped_probes} finite-difference probes straddled a kink "
                         "and were left out)")
        return "\n".join(lines)


def _relative(err, size):
    """err / size; 0 when both are 0, inf when only the reference is 0."""
    return err / size if size > 0 else (0.0 if err == 0 else float("inf"))


def _norm(a):
    a = np.ravel(np.asarray(a, np.float64))
    return float(np.sqrt(np.dot(a, a)))


class Checker:
    """Checks cases on one engine against the chosen references.

    >>> from oracles.engine import MflowEngine
    >>> checker = Checker(MflowEngine())
    >>> verdict = checker.check(case)      # raises a Failure subclass on disagreement
    """

    def __init__(self, engine, oracles=ORACLES, seed=0):
        unknown = set(oracles) - set(ORACLES)
        if unknown or not oracles:
            raise ValueError(f"oracles must be a non-empty subset of {ORACLES}; got {oracles}")
        from .torch_backend import TorchEngine  # the float32 rounding gauge needs torch always
        self.engine, self.oracles = engine, tuple(oracles)
        self.torch64, self.torch32 = TorchEngine(), TorchEngine()
        if "jax" in self.oracles:
            from .jax_backend import JaxOracle
            self.jax = JaxOracle()
        self.rng = np.random.default_rng(seed)
        self.stats = Stats()

    def _references(self, case, verdict):
        program = case.program
        p64 = _as(program, "float64")
        x64 = [np.asarray(x, np.float64) for x in case.inputs]
        c64 = np.asarray(case.cotangent, np.float64)
        runs = {"torch": lambda: run_engine(self.torch64, p64, x64, c64),
                "jax": lambda: self.jax.run(p64, x64, c64)}
        for who in self.oracles:
            if who in runs:
                try:
                    verdict.results[who] = runs[who]()
                except Exception as e:  # noqa: BLE001 - a reference that raises is reported
                    verdict.errors[who] = f"{type(e).__name__}: {e}"
        try:
            p32 = _as(program, "float32")
            with np.errstate(all="ignore"):
                verdict.results["torch32"] = run_engine(
                    self.torch32, p32, [x.astype(np.float32) for x in x64], c64.astype(np.float32))
        except Exception as e:  # noqa: BLE001
            verdict.errors["torch32"] = f"{type(e).__name__}: {e}"
        try:  # numpy's forward pass: the values every tolerance is scaled by
            verdict.values = forward_values(p64, x64)
        except Exception as e:  # noqa: BLE001 - a singular inv operand, say
            verdict.errors["numpy"] = f"{type(e).__name__}: {e}"
            return
        if "fd" in self.oracles:
            try:
                verdict.results["fd"] = finite_differences(p64, x64, c64, self.rng,
                                                           base=verdict.values)
            except Exception as e:  # noqa: BLE001
                verdict.errors["fd"] = f"{type(e).__name__}: {e}"

    def check(self, case):
        """The verdict on one case; raises the matching Failure when it fails."""
        verdict = Verdict(case, self.engine.name)
        program, dtype = case.program, case.program.np_dtype
        self._references(case, verdict)
        errors = {k: v for k, v in verdict.errors.items() if k != "torch32"}
        if errors:
            raise ReferenceProblem(f"a reference raised:\n{verdict.describe()}", verdict)
        try:
            inputs = [np.asarray(x, dtype) for x in case.inputs]
            verdict.results["engine"] = run_engine(self.engine, program, inputs,
                                                   np.asarray(case.cotangent, dtype))
        except Exception as e:  # noqa: BLE001
            verdict.errors["engine"] = f"{type(e).__name__}: {e}"
            raise EngineCrash(f"the engine raised {type(e).__name__}: {e}\n"
                              f"{verdict.describe()}", verdict) from e
        gauge = verdict.results.get("torch32")
        out_scale, grad_scale = term_scales(case.cotangent, verdict.values)
        verdict.scales = [out_scale] + [grad_scale] * len(case.inputs)
        verdict.condition = condition_factor(case.program, verdict.values)
        ref64 = verdict.results.get("torch") or verdict.results.get("jax")
        if gauge is not None and ref64 is not None:
            # float32's relative error, the largest over the output and every gradient: one
            # array's float32 error can be small by chance; they share the same computation
            # (relative to the array's terms as well as its norm, so that an answer that
            # cancels to rounding residue does not inflate everyone's tolerance)
            verdict.gauge_relative = max(
                _norm(np.asarray(g, np.float64) - r) / (_norm(r) + scale)
                if _norm(r) + scale > 0 else 0.0
                for g, r, scale in zip(_arrays(gauge), _arrays(ref64), verdict.scales))
        if gauge is not None and verdict.values:
            # and the same measured by Monte Carlo arithmetic: a second, independent
            # look at float32's error on the output (see `perturbed_outputs`)
            exact, scale = verdict.values[-1], verdict.scales[0]
            if _norm(exact) + scale > 0:
                samples = perturbed_outputs(_as(program, "float64"), case.inputs,
                                            round_inputs=program.dtype == "float64")
                verdict.gauge_relative = max([
                    verdict.gauge_relative,
                    *(_norm(s - exact) / (_norm(exact) + scale) for s in samples
                      if np.all(np.isfinite(s)))])
        ref = verdict.results.get("torch") or verdict.results.get("jax")
        names = ["forward"] + [f"gradient of x{i}" for i in range(len(case.inputs))]

        # 1. the references among themselves
        if "torch" in verdict.results and "jax" in verdict.results:
            for i, name in enumerate(names):
                self._compare(verdict, name, ("jax", "torch"), _arrays(verdict.results["jax"])[i],
                              _arrays(verdict.results["torch"])[i], gauge, i, np.float64)
        if "fd" in verdict.results and ref is not None:
            self._compare_fd(verdict, ("fd", "torch" if "torch" in verdict.results else "jax"),
                             ref, gauge, np.float64)
        if verdict.failures:
            raise ReferenceProblem(f"the references disagree:\n{verdict.describe()}", verdict)

        # 2. the engine against each reference
        engine = verdict.results["engine"]
        for i, (name, a) in enumerate(zip(names, _arrays(engine))):
            expected = program.output_shape if i == 0 else program.inputs[i - 1]
            if a.shape != tuple(expected) or a.dtype != dtype:
                verdict.comparisons.append(Comparison(
                    name, ("engine", "program"), np.inf, np.inf, (), 0.0,
                    f"expected shape {tuple(expected)} and dtype {dtype}, got {a.shape} "
                    f"and {a.dtype}", False))
        if verdict.failures:
            raise ShapeOrDtypeMismatch(f"wrong shape or dtype:\n{verdict.describe()}", verdict)
        for who in ("torch", "jax"):
            if who in verdict.results:
                for i, name in enumerate(names):
                    self._compare(verdict, name, ("engine", who), _arrays(engine)[i],
                                  _arrays(verdict.results[who])[i], gauge, i, dtype)
        if "fd" in verdict.results:
            self._compare_fd(verdict, ("engine", "fd"), engine, gauge, dtype)
        self.stats.add(verdict)
        if any(c.what == "forward" for c in verdict.failures):
            raise ForwardMismatch(f"forward values differ:\n{verdict.describe()}", verdict)
        if verdict.failures:
            raise GradientMismatch(f"gradients differ:\n{verdict.describe()}", verdict)
        return verdict

    def _tolerance(self, verdict, gauge, i, reference, dtype):
        key = (i, dtype)  # the same for every pair compared in this dtype: compute it once
        if key not in verdict.tolerances:
            verdict.tolerances[key] = self._tolerance_of(verdict, gauge, i, reference, dtype)
        return verdict.tolerances[key]

    def _tolerance_of(self, verdict, gauge, i, reference, dtype):
        u = U32 if dtype == np.float32 else U64
        floor = rounding_floor(verdict.case.program, u, verdict.condition,
                               _norm(reference) + verdict.scales[i])
        if gauge is None or not all(np.all(np.isfinite(a)) for a in _arrays(gauge)):
            return OVERFLOW_FACTOR * floor, "float32 run overflowed: the floor x 1e4"
        own = _norm(np.asarray(_arrays(gauge)[i], np.float64) - reference)
        measured = max(own, verdict.gauge_relative * _norm(reference))
        return (C_ROUNDING * measured * u / U32 + floor,
                f"{np.dtype(dtype).name}: 32 x measured rounding + floor")

    def _compare(self, verdict, name, pair, a, b, gauge, i, dtype):
        ref64 = _reference(verdict)[i]
        tol, reason = self._tolerance(verdict, gauge, i, ref64, np.dtype(dtype).type)
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a64.shape != b64.shape:
            verdict.comparisons.append(Comparison(name, pair, np.inf, np.inf, (), tol,
                                                  f"shapes {a64.shape} and {b64.shape}", False))
            return
        diff = np.abs(a64 - b64)
        if not np.isfinite(diff).all():  # NaN on both sides agrees; anything else is infinitely off
            both = np.isnan(a64) & np.isnan(b64)
            diff = np.where(both, 0.0, np.where(np.isfinite(diff), diff, np.inf))
        err = _norm(diff)
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
        ok = bool(err <= tol)
        verdict.comparisons.append(Comparison(name, pair, err, _relative(err, _norm(b64)),
                                              tuple(int(k) for k in worst), tol, reason, ok))

    def _compare_fd(self, verdict, pair, result, gauge, dtype):
        for k, probes in enumerate(verdict.results["fd"]):
            g = np.asarray(result.grads[k], np.float64)
            ref_g = _reference(verdict)[k + 1]
            tol_ad, _ = self._tolerance(verdict, gauge, k + 1, ref_g, np.dtype(dtype).type)
            projected = np.tensordot(probes.directions, g, axes=2)
            scale = np.sqrt((probes.directions ** 2).sum(axis=(1, 2)))
            bound = probes.error + tol_ad * scale
            diff = np.where(probes.valid, np.abs(projected - probes.estimate), 0.0)
            verdict.skipped_probes += int((~probes.valid).sum()) if pair[0] == "engine" else 0
            ratio = np.where(probes.valid, diff / np.maximum(bound, 1e-300), 0.0)
            j = int(np.argmax(ratio))
            worst = (np.unravel_index(j, g.shape) if probes.full else ("direction", j))
            ok = bool(np.all((diff <= bound) | ~probes.valid))
            verdict.comparisons.append(Comparison(
                f"gradient of x{k}", pair, float(diff[j]),
                _relative(float(diff[j]), abs(float(probes.estimate[j]))),
                tuple(int(w) if not isinstance(w, str) else w for w in worst), float(bound[j]),
                "finite-difference bound (Richardson + rounding) + the AD tolerance"
                + ("" if probes.full else ", along signed random directions"), ok))


def _arrays(result):
    return [result.forward] + list(result.grads)


def condition_factor(program, values):
    """n κ², the largest over operands whose domain is "invertible" (inv, det), κ
    the condition number and n the side: the gradient of an inverse is a product
    of two inverses (d X⁻¹ = -X⁻¹ dX X⁻¹), each off by up to κ times the roundoff,
    and det's relative condition is n κ. 1 if the graph has neither."""
    from mflow.ops import OPS
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
    from mflow.ops import OPS

    from .numpy_backend import NUMPY_OPS
    from .program import interpret
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


def _reference(verdict):
    """The output and gradients of the first AD reference: torch, else JAX."""
    return _arrays(verdict.results.get("torch") or verdict.results.get("jax"))


def _as(program, dtype):
    if program.dtype == dtype:
        return program
    from .program import Program
    return Program(program.inputs, program.steps, dtype)


# Disagreement histograms: log10(|error| / tolerance) in bins of a quarter decade
# from 1e-12 to 1e4, one more bin each side (below, exact agreement included; above).
# Fixed bins merge across workers by adding counts and stay small in any campaign.
HIST_LO, HIST_HI, HIST_STEP = -12.0, 4.0, 0.25
HIST_BINS = int(round((HIST_HI - HIST_LO) / HIST_STEP)) + 2


def hist_bin(ratio):
    """The histogram bin of one |error| / tolerance."""
    if not ratio > 0:
        return 0
    if not np.isfinite(ratio):
        return HIST_BINS - 1
    k = int(np.floor((np.log10(ratio) - HIST_LO) / HIST_STEP)) + 1
    return min(max(k, 0), HIST_BINS - 1)


class Stats:
    """What a checker saw, for run summaries and comparison reports: graphs
    checked per operation and per oracle, and per oracle pair and operation the
    distribution of each graph's largest |error| / tolerance (a graph counts for
    every operation it contains), the largest relative error, probes left out at
    kinks. Plain JSON; `merge` adds two together."""

    def __init__(self):
        self.checked = 0
        self.ops = {}        # op -> graphs containing it
        self.oracles = {}    # oracle -> graphs it judged
        self.pairs = {}      # "engine vs torch" -> op -> {"hist": [...], "ratio": max, "rel": max}
        self.skipped = {}    # op -> finite-difference probes left out at a kink
        self.failures = []   # {"test", "kind", "report"} per saved failure

    def add(self, verdict):
        self.checked += 1
        ops = sorted(set(verdict.case.program.ops()))
        for op in ops:
            self.ops[op] = self.ops.get(op, 0) + 1
            if verdict.skipped_probes:
                self.skipped[op] = self.skipped.get(op, 0) + verdict.skipped_probes
        for who in ORACLES:
            if who in verdict.results:
                self.oracles[who] = self.oracles.get(who, 0) + 1
        per_pair = {}
        for c in verdict.comparisons:
            key = f"{c.pair[0]} vs {c.pair[1]}"
            ratio = c.abs_err / c.tolerance if c.tolerance > 0 else (0.0 if c.abs_err == 0
                                                                      else np.inf)
            rel = c.rel_err if np.isfinite(c.rel_err) else 0.0  # relative to a zero: no figure
            prev = per_pair.get(key, (0.0, 0.0))
            per_pair[key] = (max(prev[0], float(ratio)), max(prev[1], float(rel)))
        for key, (ratio, rel) in per_pair.items():
            for op in ops:
                cell = self.pairs.setdefault(key, {}).setdefault(
                    op, {"hist": [0] * HIST_BINS, "ratio": 0.0, "rel": 0.0})
                cell["hist"][hist_bin(ratio)] += 1
                cell["ratio"] = max(cell["ratio"], ratio)
                cell["rel"] = max(cell["rel"], rel)

    @property
    def worst(self):
        """Per oracle pair, the largest |error| / tolerance and relative error."""
        return {pair: {k: max(c[k] for c in by_op.values()) for k in ("ratio", "rel")}
                for pair, by_op in self.pairs.items()}

    def to_dict(self):
        return {"checked": self.checked, "ops": self.ops, "oracles": self.oracles,
                "pairs": self.pairs, "skipped": self.skipped, "failures": self.failures}

    @classmethod
    def from_dict(cls, d):
        s = cls()
        s.checked = d["checked"]
        s.ops, s.oracles, s.pairs = d["ops"], d["oracles"], d["pairs"]
        s.skipped, s.failures = d["skipped"], d["failures"]
        return s

    def merge(self, other):
        """Add another run's stats (another worker's) to these."""
        self.checked += other.checked
        for mine, theirs in ((self.ops, other.ops), (self.oracles, other.oracles),
                             (self.skipped, other.skipped)):
            for k, n in theirs.items():
                mine[k] = mine.get(k, 0) + n
        for pair, by_op in other.pairs.items():
            for op, cell in by_op.items():
                into = self.pairs.setdefault(pair, {}).setdefault(
                    op, {"hist": [0] * HIST_BINS, "ratio": 0.0, "rel": 0.0})
                into["hist"] = [a + b for a, b in zip(into["hist"], cell["hist"])]
                into["ratio"] = max(into["ratio"], cell["ratio"])
                into["rel"] = max(into["rel"], cell["rel"])
        self.failures += other.failures
        return self


__all__ = ["Checker", "Verdict", "Comparison", "Failure", "EngineBug", "ForwardMismatch",
           "GradientMismatch", "ShapeOrDtypeMismatch", "EngineCrash", "ReferenceProblem",
           "Result", "Stats"]
