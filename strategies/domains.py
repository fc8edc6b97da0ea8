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
}


def accepts(domain, value, kinks=()):
    """May `value` be an operand in `domain` (and, for a kinked operation, clear of its kinks)?"""
    if not ACCEPTS[domain](value):
        return False
    return all(np.min(np.abs(value - k)) >= KINK_MARGIN for k in kinks)


def clear_of_ties(op, operands, attrs):
    """Are the operands of an operation that chooses (maximum, max, maxpool2d) clear of
    its ties, by the kink margin: the choice the same under any perturbation smaller?"""
    with np.errstate(all="ignore"):
        return all(np.min(np.abs(s)) >= KINK_MARGIN for s in op.switches(operands, attrs))


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
    elif domain in ("positive", "nonzero"):
        x = rng.uniform(0.5, 2.0, shape)
        if domain == "nonzero":
            x *= rng.choice([-1.0, 1.0], shape)
    elif domain == "wide":  # up to 1e3, where a naive exp overflows
        x = rng.uniform(-2.0, 2.0, shape) * rng.choice([1.0, 10.0, 500.0])
    else:  # "real", "bounded"
        x = rng.uniform(-2.0, 2.0, shape)
    for k in kinks:  # move elements out of the margin around each kink, keeping their side
        near = np.abs(x - k) < KINK_MARGIN
        x = np.where(near, k + np.where(x >= k, 1, -1) * (KINK_MARGIN + np.abs(x - k)), x)
    return np.round(x * GRID) / GRID


SEEDS = 2 ** 32  # a matrix's seed is drawn from range(SEEDS)


def from_seed(domain, shape, seed, kinks=()):
    """The matrix in `domain` that a drawn `seed` stands for (strategies.graphs draws
    the seed with its own span label, then calls this).

    Values never shrink towards simple numbers here, on purpose: simple values
    (zeros, equal elements, symmetric matrices) hide wrong rules (x ** p and
    x ** (p - 1) agree at 0 and 1, a transposed gradient is right on a symmetric
    matrix), so shrinking towards them made Hypothesis keep extra steps to get
    generic values back. Structure shrinks; the seed shrinks to 0, a fixed generic
    matrix, every element different."""
    return sample(domain, shape, np.random.default_rng(seed), kinks)
