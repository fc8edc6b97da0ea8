"""What each domain name of `mflow.ops` means: how to draw a fresh input inside
it, and whether an existing value may serve as an operand there.

The operation table says *which* domain each operand has; this file alone says
what the names mean, so strategies and tests agree on it.
"""

import numpy as np
from hypothesis import strategies as st

KINK_MARGIN = 0.05  # fresh inputs of a kinked operation stay this far from the kink
MAX_MAGNITUDE = 1e4  # larger intermediate values are not used: they only make overflow
MAX_CONDITION = 100.0  # for inv and det: rounding and FD errors grow with the condition


def _accepts_invertible(v):
    if v.shape[0] != v.shape[1]:
        return False
    with np.errstate(all="ignore"):
        return bool(np.linalg.cond(v) <= MAX_CONDITION)


ACCEPTS = {
    "real": lambda v: True,
    "bounded": lambda v: bool(np.max(v) <= 5.0),  # exp(5) ~ 148
    "nonzero": lambda v: bool(np.min(np.abs(v)) >= 0.2),
    "positive": lambda v: bool(np.min(v) >= 0.2),
    "invertible": _accepts_invertible,
    "wide": lambda v: bool(np.max(np.abs(v)) <= 1e3),
}


def accepts(domain, value, kinks=()):
    """May `value` be an operand in `domain` (and, for a kinked operation, clear of its kinks)?"""
    if not ACCEPTS[domain](value):
        return False
    return all(np.min(np.abs(value - k)) >= KINK_MARGIN for k in kinks)


GRID = 10 ** 6  # values are multiples of 1e-6: many distinct values, no denormal-scale
# magnitudes (which test underflow, not gradients), and they shrink towards small integers


def _floats(lo, hi):
    return st.integers(round(lo * GRID), round(hi * GRID)).map(lambda i: i / GRID)


def values(shape, domain="real", kinks=()):
    """A fresh matrix in `domain` with distinct values, from one drawn seed.

    Values never shrink towards simple numbers here, on purpose: simple values
    (zeros, equal elements, symmetric matrices) hide wrong rules (x ** p and
    x ** (p - 1) agree at 0 and 1, a transposed gradient is right on a symmetric
    matrix), so shrinking towards them made Hypothesis keep extra steps to get
    generic values back. Structure shrinks; the seed shrinks to 0, a fixed generic
    matrix. (Every element is drawn apart: arrays()' default fill would make most
    of them equal.)"""
    size = shape[0] * shape[1]
    if domain == "invertible":  # identity-dominated, both signs of the determinant
        n = shape[0]
        sign = np.ones((n, 1))
        sign[0] = -1
        return st.tuples(_matrix(shape, -0.5, 0.5, size), st.booleans()).map(
            lambda t: (np.eye(n) + t[0] / n) * (sign if t[1] else 1.0))
    if domain in ("positive", "nonzero"):
        m = _matrix(shape, 0.5, 2.0, size)
        if domain == "nonzero":
            m = st.tuples(m, _matrix(shape, -1, 1, size)).map(
                lambda t: t[0] * np.where(t[1] < 0, -1.0, 1.0))
        return m
    if domain == "wide":  # values up to 1e3, where a naive exp overflows
        return st.tuples(_matrix(shape, -2.0, 2.0, size), st.sampled_from([1.0, 10.0, 500.0])
                         ).map(lambda t: t[0] * t[1])
    m = _matrix(shape, -2.0, 2.0, size)
    if kinks:  # move elements out of the margin around each kink, keeping their side
        def clear(x):
            for k in kinks:
                near = np.abs(x - k) < KINK_MARGIN
                x = np.where(near, k + np.where(x >= k, 1, -1) * (KINK_MARGIN + np.abs(x - k)), x)
            return x
        m = m.map(clear)
    return m


def _matrix(shape, lo, hi, size):
    return st.integers(0, 2 ** 32 - 1).map(
        lambda seed: np.round(np.random.default_rng(seed).uniform(lo, hi, shape) * GRID) / GRID)
