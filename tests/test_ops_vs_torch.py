"""Every operation's forward value and VJP against PyTorch autograd, on random
inputs inside its domain, including every broadcasting pattern."""

import numpy as np
import pytest
from mflow.oracles import torch_backend as torch_ops
from mflow.oracles.catalogue import CATALOGUE

import mflow
from mflow.ops import OPS
from tests.helpers import assert_close, operands

# op name -> [(operand shapes, attrs)]: each record's samples
CASES = {name: list(rec.samples) for name, rec in CATALOGUE.items()}

PARAMS = [pytest.param(name, shapes, CATALOGUE[name].complete(attrs), id=f"{name}-{i}")
          for name, cases in CASES.items() for i, (shapes, attrs) in enumerate(cases)]


def test_every_operation_has_cases_and_a_torch_counterpart():
    assert all(CASES.values()) and set(CASES) == set(OPS)
    assert set(torch_ops.TORCH_OPS) == set(OPS)


def mflow_vjp(name, values, attrs, cotangent):
    leaves = [mflow.Node(v, requires_grad=True) for v in values]
    out = mflow.apply(name, *leaves, **attrs)
    out.backward(cotangent)
    return out.value, [x.grad for x in leaves]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name,shapes,attrs", PARAMS)
def test_matches_torch_float64(name, shapes, attrs, seed):
    rng = np.random.default_rng(seed)
    xs = operands(name, shapes, attrs, rng)
    out_shape = CATALOGUE[name].shape(*shapes, **attrs)
    cot = rng.uniform(-1, 1, out_shape)
    value, grads = mflow_vjp(name, xs, attrs, cot)
    t_value, t_grads = torch_ops.op_vjp(name, xs, attrs, cot)
    assert value.shape == out_shape
    assert_close(value, t_value, what=f"{name} forward")
    for i, (g, tg) in enumerate(zip(grads, t_grads)):
        assert g.shape == xs[i].shape
        assert_close(g, tg, what=f"{name} gradient of operand {i}")


@pytest.mark.parametrize("name,shapes,attrs", PARAMS)
def test_float32_stays_float32_and_matches_torch(name, shapes, attrs):
    rng = np.random.default_rng(7)
    xs = operands(name, shapes, attrs, rng, np.float32)
    cot = rng.uniform(-1, 1, CATALOGUE[name].shape(*shapes, **attrs)).astype(np.float32)
    value, grads = mflow_vjp(name, xs, attrs, cot)
    t_value, t_grads = torch_ops.op_vjp(name, xs, attrs, cot)
    assert value.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert_close(value, t_value, np.float32, f"{name} forward")
    for g, tg in zip(grads, t_grads):
        assert_close(g, tg, np.float32, f"{name} gradient")


@pytest.mark.parametrize("name", ["relu"])
def test_kink_convention_matches_torch(name):
    """At a kink the derivative is a convention; mflow's must equal torch's
    (relu'(0) = 0 in both, as the table records)."""
    x = np.array([[-1.0, 0.0, 1.0]])
    _, (g,) = mflow_vjp(name, [x], {}, np.ones_like(x))
    _, (tg,) = torch_ops.op_vjp(name, [x], {}, np.ones_like(x))
    np.testing.assert_array_equal(g, tg)
    assert "relu'(0) = 0" in CATALOGUE[name].convention


def test_fixed_values():
    """Hand-computed values, independent of torch."""
    x = mflow.Node([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    y = (mflow.relu(x) * x).sum()  # relu(x) x = x² where x > 0
    y.backward()
    np.testing.assert_array_equal(y.value, [[1 + 9 + 0.25]])
    np.testing.assert_array_equal(x.grad, [[2.0, 0.0], [6.0, 1.0]])
    s = mflow.softmax(mflow.Node([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(s.value, [[0.5, 0.5, 0.0]])
    ls = mflow.log_softmax(mflow.Node([[1000.0, 0.0]]))
    np.testing.assert_allclose(ls.value, [[0.0, -1000.0]])
    assert np.all(np.isfinite(mflow.sigmoid(mflow.Node([[-1e3, 1e3]])).value))
