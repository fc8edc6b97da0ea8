"""mflow.grad: first order against backward(), second order (Hessian-vector products
through create_graph=True) against torch's double backward, closed forms, dtypes, errors."""

import dataclasses
from unittest import mock

import numpy as np
import pytest
import torch
from mflow.oracles.torch_backend import TORCH_OPS, double_backward

import mflow
from mflow import Node
from mflow.ops import OPS
from tests.helpers import assert_close, operands, sample
from tests.test_ops_vs_torch import CASES

# every drawn attribute value: test_ops_vs_torch's cases lack pow's 1.5 and 2.5
PARAMS = [pytest.param(name, shapes, OPS[name].complete(attrs), id=f"{name}-{i}")
          for name, cases in {**CASES, "pow": [*CASES["pow"], (((3, 4),), {"p": 1.5}),
                                               (((3, 4),), {"p": 2.5})]}.items()
          for i, (shapes, attrs) in enumerate(cases)]


def assert_norm_close(actual, expected, what=""):
    """float64 AD vs AD: the same derivative, its terms summed in another order, so
    rounding only, a few hundred ulps of the result at most on these conditioned inputs
    (cond < 3); norm-wise, as an entry that cancels to ~0 has no relative error worth
    the name. 1e-10 of the norm (1e-12 absolute, for results that are ~0) is far below
    a wrong second-order rule's O(1) error."""
    err = np.linalg.norm(actual - expected)
    assert err <= 1e-10 * np.linalg.norm(expected) + 1e-12, f"{what}: off by {err:.3g}"


def mflow_hvp(f, xs, c, ts):
    leaves = [Node(x, requires_grad=True) for x in xs]
    gs = mflow.grad(f(*leaves), leaves, gradient=c, create_graph=True)
    s = sum((g * Node(t)).sum() for g, t in zip(gs, ts))  # Σ ⟨gᵢ, ṫᵢ⟩, built with mflow
    return [g.value for g in gs], [h.value for h in mflow.grad(s, leaves)]


def torch_hvp(f, xs, c, ts):
    """(gradients, H ṫ) by torch: autograd, then the suite's double backward."""
    leaves = [torch.tensor(x, requires_grad=True) for x in xs]
    out = f(*leaves)
    gs = torch.autograd.grad(out, leaves, torch.tensor(c), retain_graph=True,
                             materialize_grads=True)
    return [g.numpy() for g in gs], double_backward(out, leaves, c, ts)


def compare_hvps(f_mflow, f_torch, xs, c, ts, what):
    for kind, mine, ref in zip(("gradient", "HVP"), mflow_hvp(f_mflow, xs, c, ts),
                               torch_hvp(f_torch, xs, c, ts)):
        for i in range(len(xs)):
            assert_norm_close(mine[i], ref[i], f"{what}: {kind} of operand {i}")


def draw(name, shapes, attrs, seed, dtype=np.float64):
    """In-domain operands, a cotangent c of the result and a tangent ṫᵢ per operand."""
    rng = np.random.default_rng(seed)
    xs = operands(name, shapes, attrs, rng, dtype)
    c = rng.uniform(-1, 1, OPS[name].shape(*shapes, **attrs)).astype(dtype)
    return xs, c, [rng.uniform(-1, 1, x.shape).astype(dtype) for x in xs]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name,shapes,attrs", PARAMS)
def test_hvp_matches_torch_double_backward(name, shapes, attrs, seed):
    compare_hvps(lambda *a: mflow.apply(name, *a, **attrs),
                 lambda *a: TORCH_OPS[name](*a, **attrs), *draw(name, shapes, attrs, seed),
                 f"{name} {attrs}")


@pytest.mark.parametrize("name,shapes,attrs", PARAMS)
def test_hvp_matches_jax(name, shapes, attrs):
    """The same against JAX: jax.jvp of jax.vjp, op by op (oracles/jax_backend.py)."""
    from mflow.oracles.jax_backend import plain_hvp
    from mflow.oracles.program import Program, Step
    xs, c, ts = draw(name, shapes, attrs, seed=7)
    program = Program(tuple(shapes), (Step(name, tuple(range(len(shapes))), attrs),))
    for i, (mine, ref) in enumerate(zip(mflow_hvp(lambda *a: mflow.apply(name, *a, **attrs),
                                                  xs, c, ts)[1], plain_hvp(program, xs, c, ts))):
        assert_norm_close(mine, ref, f"{name} {attrs}: HVP of operand {i}")


def test_every_drawn_attribute_value_is_covered():
    from mflow.oracles.catalogue import CATALOGUE
    for name, op in CATALOGUE.items():
        mine = [p.values for p in PARAMS if p.values[0] == name]
        assert set(op.arities) <= {len(shapes) for _, shapes, _ in mine}, name
        for attr, values in op.drawn.items():  # None: drawn to fit (getitem's indices)
            assert values is None or set(values) <= {a[attr] for *_, a in mine}, (name, attr)


def test_a_rule_that_loses_its_second_derivative_is_caught():
    """exp's rule reading ans.value: right first order, but d/dx of the gradient misses
    the path through ans."""
    wrong = dataclasses.replace(OPS["exp"], vjp=lambda F, g, ans, x: (g * ans.value,))
    with mock.patch.dict(OPS, {"exp": wrong}), pytest.raises(AssertionError, match="HVP"):
        test_hvp_matches_torch_double_backward("exp", ((3, 4),), {}, 0)


@pytest.mark.parametrize("name,shapes,attrs", PARAMS)
def test_first_order_equals_backward(name, shapes, attrs):
    xs, c, _ = draw(name, shapes, attrs, 1)
    leaves = [Node(x, requires_grad=True) for x in xs]
    out = mflow.apply(name, *leaves, **attrs)
    gs = mflow.grad(out, leaves, gradient=c)
    mflow.grad(out, leaves, gradient=c, create_graph=True)
    assert all(x.grad is None for x in leaves)  # grad leaves .grad alone
    out.backward(c)
    for x, g in zip(leaves, gs):  # the same rules on the same arrays: bit for bit
        np.testing.assert_array_equal(g.value, x.grad, err_msg=name)


@pytest.mark.parametrize("name,shapes,attrs", PARAMS)
def test_float32_stays_float32(name, shapes, attrs):
    xs, c, ts = draw(name, shapes, attrs, 2, np.float32)
    gs, hs = mflow_hvp(lambda *a: mflow.apply(name, *a, **attrs), xs, c, ts)
    assert all(v.dtype == np.float32 for v in gs + hs), name


def hvp(f, x, v):  # of a 1x1 f, at the array x, along v
    return mflow_hvp(f, [x], np.ones((1, 1)), [v])[1][0]


def test_closed_forms():
    rng = np.random.default_rng(3)
    a, b, X, V = (rng.normal(size=s) for s in ((3, 1), (4, 1), (3, 4), (3, 4)))
    A, B = rng.normal(size=(3, 3)), rng.normal(size=(4, 3))
    # aᵀ X b and tr(A X B) are linear in X: no second derivative at all
    assert not hvp(lambda x: Node(a).T @ x @ Node(b), X, V).any()
    assert not hvp(lambda x: (Node(A) @ x @ Node(B)).trace(), X, V).any()
    # sum(X ⊙ X): Hessian 2I
    assert_close(hvp(lambda x: (x * x).sum(), X, V), 2 * V)
    # log det X: d² = -tr(X⁻¹ V X⁻¹ V)
    x, v = sample("invertible", (4, 4), rng), rng.normal(size=(4, 4))
    xv = np.linalg.solve(x, v)
    assert_close(np.sum(v * hvp(lambda x: mflow.log(mflow.det(x)), x, v)), -np.trace(xv @ xv))


def test_third_order():
    """d³/dx³ Σ x⁴ = 24 x, through three nested grads."""
    x = Node([[1.0, -2.0, 0.5]], requires_grad=True)
    (g,) = mflow.grad((x ** 4).sum(), [x], create_graph=True)           # 4 x³
    (h,) = mflow.grad(g, [x], gradient=np.ones((1, 3)), create_graph=True)  # 12 x²
    (k,) = mflow.grad(h, [x], gradient=np.ones((1, 3)))                     # 24 x
    assert_close(k.value, 24 * x.value)


def test_graph_with_fan_out_and_broadcasting():
    """h is used three times, X twice, the (1, n) row r is broadcast over (m, n)."""
    def f(X, r, W, tanh, sigmoid):
        h = tanh(X @ W + r)
        return h * h * X + sigmoid(h) * r

    rng = np.random.default_rng(4)
    xs = [rng.normal(size=s) for s in ((5, 3), (1, 3), (3, 3))]
    c, ts = rng.normal(size=(5, 3)), [rng.normal(size=x.shape) for x in xs]
    compare_hvps(lambda *a: f(*a, mflow.tanh, mflow.sigmoid),
                 lambda *a: f(*a, torch.tanh, torch.sigmoid), xs, c, ts, "graph")


def test_errors_and_unused_inputs():
    x, y = Node(np.ones((2, 3)), requires_grad=True), Node(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        mflow.grad(x * 2.0, [x])
    with pytest.raises(ValueError, match="gradient has shape"):
        mflow.grad(x * 2.0, [x], gradient=np.ones((3, 2)))
    with pytest.raises(TypeError, match="input 1 is a ndarray"):
        mflow.grad(x.sum(), [x, np.ones((2, 3))])
    for create_graph in (False, True):
        (g,) = mflow.grad(x.sum(), [y], create_graph=create_graph)
        np.testing.assert_array_equal(g.value, np.zeros((2, 2)))
    c = Node([[2.0, 3.0, 1.0]])  # tracked or not, the output depends on it: not silently zero
    with pytest.raises(ValueError, match="input 0 does not require grad"):
        mflow.grad((c * x).sum(), [c])
    with pytest.raises(TypeError, match="output is a ndarray"):
        mflow.grad(np.ones((1, 1)), [x])
    (g,) = mflow.grad((x * x).sum(), (v for v in [x]))  # any iterable of inputs
    np.testing.assert_array_equal(g.value, 2 * np.ones((2, 3)))
    x32 = Node(np.ones((2, 3), np.float32), requires_grad=True)
    (g,) = mflow.grad(x32 * 2.0, [x32], gradient=Node(np.ones((2, 3))), create_graph=True)
    assert g.dtype == np.float32  # a constant float64 gradient is cast, as an array is
