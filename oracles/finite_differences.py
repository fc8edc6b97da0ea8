"""Central finite differences of φ(x) = ⟨cotangent, f(x)⟩, as a reference for
the gradient, with an error bound for every estimate.

Each probe is a direction v in one input: a unit vector per element for small
inputs (the full gradient), or a few signed random directions for large ones
(DESIGN.md: ⟨∇φ, v⟩ costs two evaluations, the full gradient 2N). All probes
of all inputs, at steps ±h and ±2h, are stacked along a leading axis and
evaluated in one batched numpy pass, always in float64.

For each probe:
  D(h)  = (φ(x + h v) - φ(x - h v)) / 2h,  with truncation error ≈ a h²
  R     = (4 D(h) - D(2h)) / 3             (one Richardson step: error O(h⁴))
  error = |D(2h) - D(h)|                   (3 a h², three times D(h)'s own
                                            truncation error, so a safe bound on R's)
        + K u Φ / h                        (rounding: each φ is off by at most about
                                            K u Φ, Φ = Σ|c ⊙ f| + Σ|c| max|v| over every
                                            value v of the graph (terms that cancel still
                                            round), u the unit roundoff, K = 64 (steps + 1))
h = u^(1/3) max(1, |x|∞) / |v|∞ balances the two for central differences.

A probe whose ±2h evaluations put any operand of a kinked operation (relu) on
both sides of its kink measures the average of two one-sided slopes, not the
derivative: it is marked invalid and left out (counted, never silently), and the
kink's convention is tested apart. Likewise a probe whose evaluations are not
finite (a perturbation outside an operation's domain).
"""

from dataclasses import dataclass

import numpy as np

from mflow.ops import OPS

from .numpy_backend import NUMPY_OPS
from .program import interpret

U = np.finfo(np.float64).eps / 2


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


def finite_differences(program, inputs, cotangent, rng, full_limit=16, directions=3,
                       base=None):
    """Probes for every input (a list, in input order). `base`: the unperturbed
    values of every step, if the caller has them already."""
    xs = [np.asarray(x, np.float64) for x in inputs]
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
    steps = np.array([1.0, -1.0, 2.0, -2.0])  # multiples of h, as 4 blocks of q rows
    batch = []
    start = 0
    for x, (v, h, _) in zip(xs, per_input):
        delta = np.zeros((4, q, *x.shape))
        delta[:, start:start + len(v)] = steps[:, None, None, None] * (h[:, None, None] * v)
        batch.append(x + delta.reshape(4 * q, *x.shape))
        start += len(v)
    if base is None:
        base = forward_values(program, xs)
    with np.errstate(all="ignore"):
        values = interpret(program, NUMPY_OPS, lambda x: x, lambda a: a.astype(np.float64), batch)
        out = np.broadcast_to(values[-1], (4 * q, *c.shape))  # unbatched if no input reaches it
        phi = (out * c).sum(axis=(-2, -1)).reshape(4, q)
    valid = np.isfinite(phi).all(axis=0) & ~_straddles(program, base, values, q)
    biggest = max(np.abs(v).max() for v in base)  # rounding grows with the largest term, even
    phi_abs = np.abs(base[-1] * c).sum() + np.abs(c).sum() * biggest  # if it cancels later
    rounding = 64 * (len(program.steps) + 1) * U * phi_abs
    out, start = [], 0
    for v, h, full in per_input:
        rows = slice(start, start + len(v))
        d1 = (phi[0, rows] - phi[1, rows]) / (2 * h)
        d2 = (phi[2, rows] - phi[3, rows]) / (4 * h)
        out.append(Probes(v, full, (4 * d1 - d2) / 3, np.abs(d2 - d1) + rounding / h,
                          valid[rows]))
        start += len(v)
    return out


def _straddles(program, base, values, q):
    """(q,) True where a probe's perturbed evaluations put an operand of a kinked
    operation on another side of a kink (or on it) than the unperturbed one."""
    hit = np.zeros(q, bool)
    for step in program.steps:
        for kink in OPS[step.op].kinks if step.op in OPS else ():
            for a in step.args:
                side = np.sign(base[a] - kink)
                moved = np.sign(np.broadcast_to(values[a], (4 * q, *base[a].shape)) - kink)
                hit |= (moved != side).reshape(4, q, -1).any(axis=(0, 2))
    return hit
