"""Shared by the engine's tests: inputs drawn inside an operation's domain (the
domains' meaning is in strategies/domains.py), and the comparison of two AD systems."""

import numpy as np
from mflow.oracles.catalogue import CATALOGUE
from mflow.strategies.domains import clear_of_ties, sample


def operands(name, shapes, attrs, rng, dtype=np.float64):
    """Inputs inside the operation's domains, off its kinks and ties (tested apart)."""
    op = CATALOGUE[name]
    attrs = op.complete(attrs)
    for _ in range(100):
        xs = [sample(d, s, rng, op.kinks_at(attrs)).astype(dtype)
              for d, s in zip(op.domains(len(shapes), attrs), shapes)]
        if clear_of_ties(op, [x.astype(np.float64) for x in xs], attrs):
            return xs
    raise AssertionError(f"{name}: no operands of {shapes} clear of its ties in 100 draws")


# Two float64 AD systems differ only by rounding in differently ordered but
# backward-stable computations: a relative error of a few hundred ulps at most on
# these well-conditioned inputs (cond(X) < 3 for inv/det). 1e-10 leaves a wide
# margin and is still ~1e6 times tighter than any wrong rule's error.
RTOL64, ATOL64 = 1e-10, 1e-12
# float32: rounding of ~1e-7 per op, a few ops deep, with cond < 3.
RTOL32, ATOL32 = 1e-4, 1e-5


def assert_close(actual, expected, dtype=np.float64, what=""):
    rtol, atol = (RTOL64, ATOL64) if dtype == np.float64 else (RTOL32, ATOL32)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)
