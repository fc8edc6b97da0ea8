"""Central finite differences of φ(x) = ⟨cotangent, f(x)⟩, as a reference for
the gradient, with an error bound for every estimate.

Each probe is a direction v in one input: a unit vector per element for small
inputs (the full gradient), or a few signed random directions for large ones
(⟨∇φ, v⟩ costs two evaluations, the full gradient 2N). All probes of all inputs, at steps
±h, ±rh, ±r²h, ±r³h and ±r⁴h (r the golden ratio, see below), are stacked along
a leading axis and evaluated in one batched numpy pass, always in float64.

For each probe, with D(s) = (φ(x + s v) - φ(x - s v)) / 2s = ⟨∇φ, v⟩ + a s² + b s⁴ ...:
  R     = (r² D(h) - D(rh)) / (r² - 1)     (one Richardson step: error r² b h⁴)
  error = |D(rh) - D(h)|                   ((r² - 1) a h² + (r⁴ - 1) b h⁴: at
                                            least R's truncation error)
        + 2 K u Φ / h                      (rounding: each φ is off by at most about
                                            K u Φ, Φ = Σ|c ⊙ f| + Σ|c| max|v| over every
                                            value v of the graph (terms that cancel still
                                            round), u the unit roundoff, K = 64 (steps + 1);
                                            R's share of it is at most 2 K u Φ / h)
h = u^(1/3) max(1, |x|∞) / |v|∞ balances the two for central differences.

Resolved or not. The bound holds only where φ is smooth on the scale of the
steps. A computed value can sit near a pole (inv of cos x at x ≈ π/2: a fuzz
campaign found one 4e-4 away, where sin(1/cos x) turns 72 radians per step h)
and there every D(s) is noise of size 1/h, and the bound was wrong by 40x.
So the estimates must converge as a Taylor series makes them: each ratio of
successive differences Δⱼ = D(rʲ⁺¹h) - D(rʲh), Δⱼ₊₁ / Δⱼ, must lie in
[r² / 2, 1.5 r⁴] (r² where the h² term leads, r⁴ where the h⁴ term does),
unless Δⱼ is within the rounding noise of its two estimates (3 K u Φ / rʲh:
truncation is then invisible; Δⱼ₊₁ may be up to 1.5 r⁴ times that). A probe
that fails is *unresolved*: left out and counted per operation, like a kink,
never compared. Why the golden ratio and five steps: steps in powers of 2
alias an oscillation whose period divides h (sin(kθ) ≈ k sin θ for every
integer k when θ ≈ 2πn), and 12 % of such probes passed; with r = (1 + √5)/2
0.02 % pass, as do 0.03 % of probes whose estimates are independent noise,
while 93 % of smooth probes in the truncation-dominated regime resolve (more
are noise-dominated, and resolve). Measured on a million draws each;
tests/test_false_alarms.py keeps the figures.

On the scale of the steps, too. Five steps that agree can all lie beyond where φ
curves: logsumexp of values a t, |a| ~ 1e3 (a product with an exact zero factor
among values of 1e3), is linear in t beyond |t| ~ 1e-3 with another slope on each
side, so every D(s) from s = h = 6e-3 up is the mean of the two slopes, agreeing to
the last digit, and the true derivative (0) is 2e4 away (a float32 campaign found
it; another one had |a| ~ 1e9, from products of cumulative sums). So differences at
far smaller steps s = 7e-4 h, 1e-6 h and 1e-9 h must agree with the estimate within
both bounds: |D(s) - R| ≤ error + 2 K u Φ / s (their truncation is smaller than
R's, their rounding h / s times D(h)'s: where rounding rules, the check is loose by
itself); else the probe is unresolved. Six more evaluations per probe.

A probe whose evaluations put any operand of a kinked operation (relu) on
both sides of its kink measures the average of two one-sided slopes, not the
derivative: it is marked invalid and left out (counted, never silently), and the
kink's convention is tested apart. Likewise a probe whose evaluations are not
finite (a perturbation outside an operation's domain).
"""

from dataclasses import dataclass

import numpy as np

from .catalogue import CATALOGUE
from .numpy_backend import NUMPY_OPS
from .program import interpret

U = np.finfo(np.float64).eps / 2
R = (1 + 5 ** 0.5) / 2           # the ratio of successive steps: no integer multiple aliases
STEPS = R ** np.arange(5)        # h, rh, ..., r⁴h
FAR = np.array([R ** -15, 1e-6, 1e-9])  # steps far below h: the scale check
SCALES = np.append(STEPS, FAR)           # every step evaluated, ±


def forward_values(program, inputs):
    """Every value of the program, evaluated with numpy in float64."""
    with np.errstate(all="ignore"):
        return interpret(program, NUMPY_OPS, lambda x: x, lambda a: a.astype(np.float64),
                         [np.asarray(x, np.float64) for x in inputs])


@dataclass
class Probes:
    """Finite-difference estimates of ⟨∇φ, v⟩ for one input's probe directions."""
    directions: np.ndarray   # (q, m, n)
    full: bool               # the directions are the unit basis: estimate is the gradient
    estimate: np.ndarray     # (q,)
    error: np.ndarray        # (q,) bound on |estimate - true value|
    valid: np.ndarray        # (q,) bool: no kink straddled, every value finite
    resolved: np.ndarray     # (q,) bool: the estimates converge at the expected order


def finite_differences(program, inputs, cotangent, rng, full_limit=16, directions=3,
                       base=None):
    """Probes for every input (a list, in input order). `base`: the unperturbed
    values of every step, if the caller has them already."""
    xs = [np.asarray(x, np.float64) for x in inputs]
    if not xs:
        return []
    c = np.asarray(cotangent, np.float64)
    per_input = []
    for x in xs:
        full = x.size <= full_limit
        if full:
            v = np.eye(x.size).reshape(x.size, *x.shape)
        else:
            v = rng.standard_normal((directions, *x.shape))
        h = U ** (1 / 3) * max(1.0, np.abs(x).max()) / np.abs(v).max(axis=(1, 2))
        per_input.append((v, h, full))
    q = sum(len(v) for v, _, _ in per_input)
    steps = np.repeat(SCALES, 2) * np.tile([1.0, -1.0], len(SCALES))  # ±rʲh: blocks of q rows
    b = len(steps)
    batch = []
    start = 0
    for x, (v, h, _) in zip(xs, per_input):
        delta = np.zeros((b, q, *x.shape))
        delta[:, start:start + len(v)] = steps[:, None, None, None] * (h[:, None, None] * v)
        batch.append(x + delta.reshape(b * q, *x.shape))
        start += len(v)
    if base is None:
        base = forward_values(program, xs)
    with np.errstate(all="ignore"):
        values = interpret(program, NUMPY_OPS, lambda x: x, lambda a: a.astype(np.float64), batch)
        out = np.broadcast_to(values[-1], (b * q, *c.shape))  # unbatched if no input reaches it
        phi = (out * c).sum(axis=(-2, -1)).reshape(b, q)
    valid = np.isfinite(phi).all(axis=0) & ~straddles(program, base, values, q, b)
    biggest = max(np.abs(v).max() for v in base)  # rounding grows with the largest term, even
    phi_abs = np.abs(base[-1] * c).sum() + np.abs(c).sum() * biggest  # if it cancels later
    rounding = rounding_of(program, phi_abs)
    h = np.concatenate([h for _, h, _ in per_input])  # every input's probes in one pass
    d = (phi[0::2] - phi[1::2]) / (2 * SCALES[:, None] * h)
    estimate, error, resolved = _richardson(d, h, rounding)
    out, start = [], 0
    for v, _, full in per_input:
        rows = slice(start, start + len(v))
        out.append(Probes(v, full, estimate[rows], error[rows], valid[rows],
                          resolved[rows] & valid[rows]))
        start += len(v)
    return out


def _richardson(d, h, rounding):
    """(estimate, bound, resolved) from the differences d at the steps SCALES (module
    docstring): one Richardson step, its bound, the convergence and the scale checks."""
    r2 = R * R
    estimate = (r2 * d[0] - d[1]) / (r2 - 1)
    error = np.abs(d[1] - d[0]) + 2 * rounding / h
    with np.errstate(all="ignore"):
        resolved = converges(d[:len(STEPS)], rounding / h)
        for far, d_far in zip(FAR, d[len(STEPS):]):
            resolved &= np.abs(d_far - estimate) <= error + 2 * rounding / (far * h)
    return estimate, error, resolved


def rounding_of(program, size):
    """K u Φ, K = 64 (steps + 1): how far rounding can move one evaluation of a sum whose
    terms add up to `size` in absolute value (the module docstring's Φ)."""
    return 64 * (len(program.steps) + 1) * U * size


def converges(d, noise):
    """(q,) True where the estimates d = [D(h), D(rh), ..., D(r⁴h)] converge as a
    Taylor series makes them (module docstring); `noise`: D(h)'s rounding."""
    ok = np.ones(np.shape(d[0]), bool)
    lo, hi = R ** 2 / 2, 1.5 * R ** 4
    for j in range(len(d) - 2):
        first, second = d[j + 1] - d[j], d[j + 2] - d[j + 1]
        below = 3 * noise / R ** j          # the rounding of D(rʲh) and D(rʲ⁺¹h), with room
        ratio = second / np.where(first == 0, np.inf, first)
        in_noise = (np.abs(first) <= below) & (np.abs(second) <= hi * below)
        ok &= in_noise | ((ratio >= lo) & (ratio <= hi))
    return ok


def straddles(program, base, values, q, b):
    """(q,) True where a probe's perturbed evaluations put an operand of a kinked
    operation on another side of a kink (or on it) than the unperturbed one."""
    hit = np.zeros(q, bool)
    for step in program.steps:
        rec = CATALOGUE.get(step.op)
        if rec is None:
            continue
        for kink in rec.kinks_at(step.attrs):
            for a in step.args:
                side = np.sign(base[a] - kink)
                moved = np.sign(np.broadcast_to(values[a], (b * q, *base[a].shape)) - kink)
                hit |= (moved != side).reshape(b, q, -1).any(axis=(0, 2))
        if rec.ties is not None:  # an operation that chooses: the same choice, or left out
            moved = rec.switches([np.broadcast_to(values[a], (b * q, *base[a].shape))
                                  for a in step.args], step.attrs)
            for before, after in zip(rec.switches([base[a] for a in step.args], step.attrs),
                                     moved):
                changed = np.sign(after) != np.sign(before)
                hit |= changed.reshape(b, q, -1).any(axis=(0, 2))
    return hit


def directional(program, inputs, tangents, cotangent, base=None):
    """One probe along every input at once: the estimate of ⟨cotangent, J ṫ⟩, the
    directional derivative along `tangents` (one per input), with its bound, by the
    rules above (the same steps, Richardson step, rounding and convergence test).
    Returns (estimate, error, valid, resolved), floats and bools."""
    xs = [np.asarray(x, np.float64) for x in inputs]
    ts = [np.asarray(t, np.float64) for t in tangents]
    c = np.asarray(cotangent, np.float64)
    h, steps = steps_along(xs, ts)
    batch = [x + (steps * h)[:, None, None] * t for x, t in zip(xs, ts)]
    if base is None:
        base = forward_values(program, xs)
    with np.errstate(all="ignore"):
        values = interpret(program, NUMPY_OPS, lambda x: x, lambda a: a.astype(np.float64), batch)
        out = np.broadcast_to(values[-1], (len(steps), *c.shape))
        phi = (out * c).sum(axis=(-2, -1)).reshape(len(steps), 1)
    valid = bool(np.isfinite(phi).all()) and not bool(
        straddles(program, base, values, 1, len(steps))[0])
    biggest = max(np.abs(v).max() for v in base)
    rounding = rounding_of(program, np.abs(base[-1] * c).sum() + np.abs(c).sum() * biggest)
    estimate, error, resolved = along(phi, h, rounding)
    return estimate, error, valid, resolved and valid


def steps_along(xs, ts):
    """(h, the signed steps ±1, ±r, ... ±r⁴) for a difference along ts at xs."""
    reach = max(max(float(np.abs(t).max()) for t in ts), 1e-300)
    h = U ** (1 / 3) * max(1.0, max(float(np.abs(x).max()) for x in xs)) / reach
    return h, np.repeat(SCALES, 2) * np.tile([1.0, -1.0], len(SCALES))


def along(phi, h, rounding):
    """(estimate, bound, resolved) from φ at the steps ±h, ±rh, ... (rows of `phi`,
    one column), `rounding` the error of one φ: the rules of the module docstring."""
    d = [(phi[2 * j] - phi[2 * j + 1]) / (2 * k * h) for j, k in enumerate(SCALES)]
    estimate, error, resolved = _richardson(d, h, rounding)
    return float(estimate[0]), float(error[0]), bool(resolved[0])


def gradient_difference(gradients, program, inputs, tangents, directions, scales, base):
    """A central difference of a first-order gradient along ṫ, projected on w: an
    estimate of ⟨w, H ṫ⟩ that needs no second-order reference, with its bound (the
    rules above; each gradient's rounding taken as K u Σ|w| times its term size).
    `gradients(points)`: the VJP (float64) at each point, a list of inputs, all at once
    (JAX's, batched, or the engine's, one call per point); `scales`: each gradient's
    term size (tolerance.term_scales). Returns (estimate, bound, valid, resolved)."""
    xs = [np.asarray(x, np.float64) for x in inputs]
    ts = [np.asarray(t, np.float64) for t in tangents]
    h, steps = steps_along(xs, ts)
    psi = [sum(float(np.sum(w * np.asarray(g, np.float64))) for w, g in zip(directions, grads))
           for grads in gradients([[x + s * t for x, t in zip(xs, ts)] for s in steps * h])]
    psi = np.asarray(psi).reshape(len(steps), 1)
    with np.errstate(all="ignore"):  # the kinks its evaluations straddle, from numpy's pass
        values = interpret(program, NUMPY_OPS, lambda x: x, lambda a: a.astype(np.float64),
                           [x + (steps * h)[:, None, None] * t for x, t in zip(xs, ts)])
    valid = bool(np.isfinite(psi).all()) and not bool(
        straddles(program, base, values, 1, len(steps))[0])
    rounding = rounding_of(program, sum(float(np.abs(w).sum()) * s
                                        for w, s in zip(directions, scales)))
    estimate, error, resolved = along(psi, h, rounding)
    return estimate, error, valid, resolved and valid
