"""What each domain name of `mflow.ops` means: how to draw a fresh input inside
it, and whether an existing value may serve as an operand there.

The operation table says *which* domain each operand has; this file alone says
what the names mean, so strategies and tests agree on it.
"""

import numpy as np

KINK_MARGIN = 0.05  # fresh inputs of a kinked operation stay this far from the kink
MAX_MAGNITUDE = 1e4  # larger intermediate values are not used: they only make overflow
MAX_CONDITION = 100.0  # for inv and det: rounding and FD errors grow with the condition
# and their smallest singular value at least this, so that X⁻¹ (which every derivative of
# inv and det holds, squared at second order) stays below MAX_MAGNITUDE / 10: a perfectly
# conditioned but tiny matrix (the corner of a saturated softmax, 4e-192) tests the
# underflow and overflow of X⁻¹ products, not gradients (JAX's second derivative of det,
# through LU, overflowed to NaN there while torch and mflow answered)
MIN_SINGULAR = 1e-3
# Half precision. float16's range ends at 65504: its computed values stay within 2^10,
# leaving 64x for an engine's partial sums and for gradients (the checker leaves out, and
# counts, a case whose float64 answers pass 2^12: oracles/checker.py, HALF_RANGE);
# bfloat16 has float32's range and keeps MAX_MAGNITUDE. A value computed in half is off
# by about u times the values it came from, so which side of a kink, tie or domain end
# it falls on is known only beyond that: a computed operand keeps ROUNDING_MARGIN u B
# (steps + 1) clear of them besides the usual margin, B the largest value drawn so far
# (in bfloat16, u = 2^-8, relu(x - y) of x, y near 2 needs |x - y| > 0.05 + 0.25 at 3 steps).
HALF_MAGNITUDE = {"float16": 2.0 ** 10, "bfloat16": MAX_MAGNITUDE}
ROUNDING_MARGIN = 8.0


def _accepts_invertible(v):
    if v.shape[0] != v.shape[1] or not np.all(np.isfinite(v)):
        return False
    s = np.linalg.svd(v, compute_uv=False)
    return bool(s[-1] >= MIN_SINGULAR and s[0] <= MAX_CONDITION * s[-1])


ACCEPTS = {
    "real": lambda v: True,
    "bounded": lambda v: bool(np.max(v) <= 5.0),  # exp(5) ~ 148
    "nonzero": lambda v: bool(np.min(np.abs(v)) >= 0.2),
    "positive": lambda v: bool(np.min(v) >= 0.2),
    "invertible": _accepts_invertible,
    "wide": lambda v: bool(np.max(np.abs(v)) <= 1e3),
    # where e^-|x| does not underflow to 0: torch's double backward of logaddexp (softplus)
    # is NaN there (softplus of -1024 in a campaign; JAX says 0): underflow, not gradients
    "moderate": lambda v: bool(np.max(np.abs(v)) <= 50.0),
    # positive, and the end of the domain exactly, where the derivative is still defined
    # (x ** 1.5 at 0: 0); never in between, where it is large and rounding-bound
    "nonnegative": lambda v: bool(np.all((v >= 0.2) | (v == 0))),
    # a product's factors: exact zeros (torch's exact path), else at least FACTOR_FLOOR of
    # the largest; torch's second order of prod and cumprod divides by the factor, so a
    # cancellation's residue (7e-18 among values of 1, in a campaign) lost every digit
    # of torch's H t (30.6 off; JAX and finite differences agreed): rounding, not gradients
    "factors": lambda v: bool(np.all((v == 0) | (np.abs(v) >= FACTOR_FLOOR *
                                                  np.max(np.abs(v))))),
}
FACTOR_FLOOR = 1e-4
# the domains a zero (either sign) belongs to
HOLDS_ZERO = ("real", "bounded", "wide", "moderate", "nonnegative", "factors")


def _clear(distances, exact, margin=0.0):
    """Every distance at least the margin (+ `margin`, a computed value's rounding), or
    (`exact`) exactly 0: on the point itself."""
    return bool(np.all((distances >= KINK_MARGIN + margin) | (exact & (distances == 0))))


def accepts(domain, value, kinks=(), exact=False, margin=0.0):
    """May `value` be an operand in `domain`, clear of `kinks` (or, `exact`, on one)?
    `margin`: how far off the value may be (computed in half precision): the domain
    must hold anywhere within it, and the kinks stay that much further."""
    if not ACCEPTS[domain](value):
        return False
    if margin and not (ACCEPTS[domain](value - margin) and ACCEPTS[domain](value + margin)
                       and (domain != "nonzero" or np.min(np.abs(value)) >= 0.2 + margin)):
        return False
    return all(_clear(np.abs(value - k), exact, margin) for k in kinks)


def clear_of_ties(op, operands, attrs, exact=False, margin=0.0):
    """Are the operands of an operation that chooses (maximum, max, maxpool2d) clear of
    its ties by the kink margin (+ twice `margin`, for two values each off by it), the
    choice the same under any smaller perturbation (or, `exact`, exactly at a tie)?"""
    with np.errstate(all="ignore"):
        return all(_clear(np.abs(s), exact, 2 * margin) for s in op.switches(operands, attrs))


GRID = 10 ** 6  # values are rounded to multiples of 1e-6: no denormal-scale magnitudes,
# which test underflow rather than gradients, and values that print exactly


def sample(domain, shape, rng, kinks=()):
    """A fresh matrix in `domain` from a numpy Generator: distinct values, rounded
    to the grid. The tests of single operations call this directly; the
    strategies draw the seed."""
    if domain == "invertible":  # identity-dominated, both signs of the determinant
        n = shape[0]
        x = np.eye(n) + rng.uniform(-0.5, 0.5, shape) / n
        if rng.random() < 0.5:
            x[0] *= -1
    elif domain in ("positive", "nonzero", "nonnegative"):
        x = rng.uniform(0.5, 2.0, shape)
        if domain == "nonzero":
            x *= rng.choice([-1.0, 1.0], shape)
    elif domain == "wide":  # up to 1e3, where a naive exp overflows
        x = rng.uniform(-2.0, 2.0, shape) * rng.choice([1.0, 10.0, 500.0])
    else:  # "real", "bounded", "factors"
        x = rng.uniform(-2.0, 2.0, shape)
        if domain == "factors":  # none within 1e-3 of 0 (FACTOR_FLOOR x 2 at most)
            x = np.where(np.abs(x) < 1e-3, np.where(x < 0, -1e-3, 1e-3), x)
    for k in kinks:  # move elements out of the margin around each kink, keeping their side
        near = np.abs(x - k) < KINK_MARGIN
        x = np.where(near, k + np.where(x >= k, 1, -1) * (KINK_MARGIN + np.abs(x - k)), x)
    return np.round(x * GRID) / GRID


SEEDS = 2 ** 32  # a matrix's seed is drawn from range(SEEDS)


# One seed in SPECIAL stands for a matrix with interesting points on purpose: a random
# float64 matrix meets an exact zero, tie or kink about never, and the bugs of real
# engines sit there (a quotient rule dividing by a numerator that relu made 0, max
# counting ties, a gradient doubled for two equal leaves). Seed 0 stays generic.
SPECIAL = 4
POINTS = ("zeros", "integers", "repeats", "kinks")


def special(x, domain, rng, kinks=(), at_kinks=False):
    """x with interesting points put in by `rng`: exact zeros of either sign, small
    integers (ties, exact products), a row or column repeated (ties along the other
    axis, equal pooling windows), elements exactly at the kinks (`at_kinks`: where the
    references' conventions agree); x itself where the result is outside the domain."""
    how = POINTS[rng.integers(len(POINTS))]
    some = rng.random(x.shape) < 0.4
    some.flat[rng.integers(x.size)] = True
    if how == "zeros":
        y = np.where(some, np.where(rng.random(x.shape) < 0.5, 0.0, -0.0), x)
    elif how == "integers":
        y = np.round(x)
    elif how == "repeats" and x.size > 1:
        axis = rng.integers(2) if min(x.shape) > 1 else int(x.shape[0] == 1)
        y = np.array(x)
        i, j = rng.choice(x.shape[axis], 2, replace=x.shape[axis] == 1)
        if axis == 0:
            y[i] = y[j]
        else:
            y[:, i] = y[:, j]
    else:
        y = np.where(some, rng.choice(kinks or (0.0,), x.shape), x)
    return y if accepts(domain, y, kinks, exact=at_kinks) else x


def from_seed(domain, shape, seed, kinks=(), points=None):
    """The matrix in `domain` that a drawn `seed` stands for (strategies.graphs draws
    the seed with its own span label, then calls this).

    Values never shrink towards simple numbers here, on purpose: simple values
    (zeros, equal elements, symmetric matrices) hide wrong rules (x ** p and
    x ** (p - 1) agree at 0 and 1, a transposed gradient is right on a symmetric
    matrix), so shrinking towards them made Hypothesis keep extra steps to get
    generic values back. Structure shrinks; the seed shrinks to 0, a fixed generic
    matrix, every element different.

    With `points` (not None: the strategies' default), one seed in SPECIAL stands for
    a matrix with interesting points (`special`, exactly at the kinks where `points`
    is True): they stay when a failure needs them, as any seed does."""
    rng = np.random.default_rng(seed)
    x = sample(domain, shape, rng, kinks)
    if points is not None and seed % SPECIAL == SPECIAL - 1 and domain != "invertible":
        x = special(x, domain, rng, kinks, points)
    return x
