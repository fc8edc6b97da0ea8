"""What a check concludes: each comparison, the verdict on a case, and the kinds
of failure (each its own exception type, so that Hypothesis reports, and
shrinks, each bug apart).

The engine is accused only when the references agree among themselves and the
engine disagrees with them (`EngineBug` and its kinds). When the references
disagree, or one of them raises, the truth is unknown: that is a
`ReferenceProblem`, a finding about the suite, never about the engine.
"""

import math
from dataclasses import dataclass, field

import numpy as np

ORACLES = ("torch", "jax", "fd")  # the references a check can use


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


class EngineHang(EngineCrash):
    """The engine did not return within the time limit (checker.TIME_LIMIT)."""


class EngineMisbehaved(EngineBug):
    """The engine changed the arrays it was given (the inputs or the cotangent) in place."""


class TangentMismatch(EngineBug):
    """Forward mode: the engine's JVP differs from the references' (torch's forward-mode
    AD, jax.jvp, a central difference along the tangent), or from its own VJP by the
    transpose identity ⟨ȳ, J ṫ⟩ = ⟨Jᵀ ȳ, ṫ⟩. Checked where the engine offers `jvp`."""


class HessianMismatch(EngineBug):
    """Second order: the engine's Hessian-vector product (the derivative of its VJP
    along the tangent) differs from torch double backward, JAX's, or a central
    difference of a gradient along it (JAX's VJP, else the engine's own). Checked where
    the engine offers `hvp`."""


class NumericallyUnsafe(EngineBug):
    """The engine's answers are right, but it warned computing them (an overflow or
    an invalid value inside its rules: autograd's tanh VJP g / cosh(x)² at x = 400).
    Counted and shown always; a failure only when asked for (--mflow-fail-on-warnings)."""


class NotReproducible(EngineBug):
    """The same case checked twice gave different verdicts: the engine's answers
    depend on what it computed before (a gradient buffer never zeroed, a cache
    keyed by id()). Saved at once, unreduced: reducing needs a reproducible failure."""


class ReferenceProblem(Failure):
    """References disagree among themselves, or one raised: not the engine's fault.
    Saved as a *guard* (a case the suite itself once got wrong), never counted
    against the engine (README, "What a failure means")."""


class ReferenceDisagreement(UserWarning):
    """Warned when a check finds a ReferenceProblem: the run goes on, the case is
    saved as a guard, and a strict run (this project's own CI) ends with status 6."""


def accuses_engine(failure):
    """True for an engine bug; False for a finding about the references."""
    return isinstance(failure, EngineBug)


def same_failure(original, other):
    """Whether `other` is the failure `original` was, as the reducer must keep it:
    the same kind, the same exception type for a crash or a reference that raised,
    and the first failed comparison's oracle pair and kind of array (forward or
    gradient) among other's failed comparisons."""
    if other is None or type(other) is not type(original):
        return False
    def raised(f):
        return {who: e.split(":", 1)[0] for who, e in f.verdict.errors.items() if who != "torch32"}
    if raised(original) != raised(other):
        return False
    first = original.verdict.failures[:1]
    if not first:
        return True
    def key(c):
        return c.pair, c.what.split(" ", 1)[0]
    return key(first[0]) in {key(c) for c in other.verdict.failures}


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

    @property
    def ratio(self):
        """|error| / tolerance: at most 1 passes."""
        if self.tolerance > 0:
            return float(self.abs_err / self.tolerance)
        return 0.0 if self.abs_err == 0 else float("inf")

    def __str__(self):
        return (f"{self.what}: {self.pair[0]} vs {self.pair[1]}: |error| {self.abs_err:.3g} "
                f"(relative {self.rel_err:.3g}) at {self.worst}, tolerance {self.tolerance:.3g} "
                f"[{self.reason}]")


@dataclass
class Verdict:
    case: object                                     # the Case checked
    engine_name: str
    results: dict = field(default_factory=dict)      # who -> Result (engine, torch, jax, torch32)
    probes: list = field(default_factory=list)       # finite differences: Probes per input
    comparisons: list = field(default_factory=list)
    skipped_probes: int = 0                          # finite differences across a kink
    unresolved_probes: int = 0                       # finite differences that did not converge
    scales: list = field(default_factory=list)       # per array: the size of its terms
    tolerances: dict = field(default_factory=dict)   # (array, dtype) -> (tolerance, reason)
    values: list = field(default_factory=list)       # every value of the graph, numpy float64
    condition: float = 1.0                           # n κ² of the worst inv/det operand
    gauge_relative: float = 0.0                      # float32's relative error on this case
    spread: dict = field(default_factory=dict)       # mode -> per array: the Monte Carlo
    #   spread of mflow's rules, once a comparison failed (tolerance.refine)
    gauged: set = field(default_factory=set)         # modes whose float32 gauge has run (only
    #   once a comparison against the floor alone failed: tolerance.py, "Lazily")
    errors: dict = field(default_factory=dict)       # who -> exception text
    warnings: list = field(default_factory=list)     # what the engine warned, as text
    modes: tuple = ("vjp",)                          # what was checked: "vjp", "jvp", "hvp"
    slow_once: bool = False                          # over the time limit once, not again
    tangents: list = field(default_factory=list)     # forward mode: ṫ per input (if checked)
    jvps: dict = field(default_factory=dict)         # who -> J ṫ (engine, torch, jax, torch32)
    fd_tangent: tuple | None = None                  # (estimate, bound, valid, resolved) of
    #   ⟨cotangent, J ṫ⟩ by a central difference along ṫ
    hvps: dict = field(default_factory=dict)         # who -> H ṫ per input (second order)
    hvp_directions: list = field(default_factory=list)  # w per input: the projection of
    fd_hvp: tuple | None = None                      # ⟨w, H ṫ⟩ by a central difference of a
    #   gradient along ṫ: (estimate, bound, valid, resolved)
    fd_hvp_of: str = ""                              # whose: "jax vjp" or "engine vjp"
    outcome: Failure | None = None                   # None: the case passed
    outside: str = ""                                # why a half case was not compared:
    #   an answer beyond what its dtype represents (checker.HALF_RANGE), a domain

    @property
    def numeric_warnings(self):
        """The engine's floating-point warnings (overflow, invalid value, division by
        zero: numpy's RuntimeWarning), not its other messages."""
        return [w for w in self.warnings if w.startswith(("RuntimeWarning", "FloatingPoint"))]

    @property
    def failures(self):
        return [c for c in self.comparisons if not c.ok]

    @property
    def reference(self):
        """The first AD reference that answered, torch else JAX (None if neither)."""
        return next((who for who in ("torch", "jax") if who in self.results), None)

    def describe(self):
        p = self.case.program
        lines = [f"engine {self.engine_name!r} on a program of {len(p)} steps "
                 f"({', '.join(p.ops())}), dtype {p.dtype}"]
        lines += [f"  {who} raised: {err}" for who, err in self.errors.items()]
        lines += [f"  FAIL {c}" for c in self.failures]
        lines += [f"  the engine warned: {w}" for w in self.warnings[:5]]
        if self.skipped_probes:
            lines.append(f"  ({self.skipped_probes} finite-difference probes straddled a kink "
                         "and were left out)")
        if self.unresolved_probes:
            lines.append(f"  ({self.unresolved_probes} finite-difference probes did not converge "
                         "(a pole or a fast oscillation nearby) and were left out)")
        return "\n".join(lines)


def compare_arrays(what, pair, a, b, tolerance, reason):
    """The Comparison of two arrays, norm-wise: NaN on both sides agrees, anything
    else not finite is infinitely off; other shapes fail outright. (~13 a graph: the
    common path, all finite, skips the NaN and inf rules; the same figures.)"""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape:
        return Comparison(what, pair, np.inf, np.inf, (), tolerance,
                          f"shapes {a64.shape} and {b64.shape}", False)
    with np.errstate(all="ignore"):
        diff = np.abs(a64 - b64)
        err = norm(diff)
    if not math.isfinite(err):  # (also a finite sum of squares beyond float64: the same)
        diff = np.where(np.isnan(a64) & np.isnan(b64), 0.0,
                        np.where(np.isfinite(diff), diff, np.inf))
        err = norm(diff)
    k = int(diff.argmax()) if diff.size else 0
    worst = (k // diff.shape[1], k % diff.shape[1]) if diff.ndim == 2 else \
        tuple(int(j) for j in np.unravel_index(k, diff.shape))
    return Comparison(what, pair, err, relative(err, norm(b64)), worst, tolerance, reason,
                      bool(err <= tolerance))


def array_names(case):
    """The arrays a check compares, in order: the output, then each input's gradient."""
    return ["forward"] + [f"gradient of x{i}" for i in range(len(case.inputs))]


def arrays(result):
    """A Result's arrays in the order of `array_names`."""
    return [result.forward] + list(result.grads)


def norm(a):
    # ravel, which copies a strided view (a column of JAX's padded slots): BLAS sums a
    # strided vector in another order, and the last bit of a figure would differ
    a = np.ravel(np.asarray(a, np.float64))
    return math.sqrt(np.dot(a, a))


def relative(err, size):
    """err / size; 0 when both are 0, inf when only the reference is 0."""
    return err / size if size > 0 else (0.0 if err == 0 else float("inf"))
