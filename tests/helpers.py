"""Shared by the engine's tests: inputs drawn inside an operation's domain, and
the float64 comparison between two AD systems."""

import numpy as np

from mflow.ops import OPS


def sample(domain, shape, rng, dtype=np.float64):
    """Values inside a domain of `mflow.ops` (see its docstring), all distinct."""
    if domain == "invertible":  # well conditioned: I plus a perturbation of norm < 1/2
        n = shape[0]
        x = np.eye(n) + rng.uniform(-0.5, 0.5, shape) / n
        x[0] *= rng.choice([-1.0, 1.0])  # both signs of the determinant
    elif domain in ("nonzero", "positive"):
        x = rng.uniform(0.5, 2.0, shape)
        if domain == "nonzero":
            x *= rng.choice([-1.0, 1.0], shape)
    else:  # "real", "bounded", "wide"
        x = rng.uniform(-2.0, 2.0, shape)
    return x.astype(dtype)


def operands(name, shapes, attrs, rng, dtype=np.float64):
    domains = OPS[name].domains(len(shapes), attrs)
    xs = [sample(d, s, rng, dtype) for d, s in zip(domains, shapes)]
    for kink in OPS[name].kinks:  # keep a margin from kinks: their convention is tested apart
        xs = [np.where(np.abs(x - kink) < 0.1, x + 0.2, x).astype(dtype) for x in xs]
    return xs


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
