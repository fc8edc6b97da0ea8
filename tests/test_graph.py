"""The backward walk: shared sub-expressions, accumulation, depth, and errors."""

import dataclasses
import sys

import numpy as np
import pytest

import mflow
from mflow import Node


def test_shared_subexpression_seed_example():
    """x2 = x**2; y = x2*x2 + x2*x2 = 2x⁴, so dy/dx = 8x³ = 64 at x = 2."""
    x = Node(2.0, requires_grad=True)
    x2 = x ** 2
    y = x2 * x2 + x2 * x2
    y.backward()
    assert y.value[0, 0] == 32.0
    assert x.grad[0, 0] == 64.0
    assert x2.grad[0, 0] == 16.0  # intermediates get their gradient too


def test_each_rule_runs_once_per_backward(monkeypatch):
    calls = []
    sin = mflow.OPS["sin"]

    def counting_vjp(*args, **attrs):
        calls.append(1)
        return sin.vjp(*args, **attrs)
    monkeypatch.setitem(mflow.OPS, "sin", dataclasses.replace(sin, vjp=counting_vjp))
    x = Node(0.3, requires_grad=True)
    y = mflow.sin(x)
    for _ in range(10):  # 2¹⁰ paths from y down to sin(x)
        y = y + y
    y.backward()
    assert len(calls) == 1
    np.testing.assert_allclose(x.grad, [[2 ** 10 * np.cos(0.3)]])


def test_fan_out_doubling_40_levels_is_linear():
    """2⁴⁰ paths reach x; a walk per path would never finish."""
    x = Node(1.0, requires_grad=True)
    y = x
    for _ in range(40):
        y = y * 1.0 + y
    y.backward()
    assert x.grad[0, 0] == 2.0 ** 40


def test_deep_chain_has_no_recursion_limit():
    x = Node(np.ones((2, 2)), requires_grad=True)
    y = x
    depth = 100_000
    assert depth > sys.getrecursionlimit()
    for _ in range(depth):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 2)))
    y.zero_grad()
    assert x.grad is None
    del y  # freeing a deep graph must not overflow the C stack either


def test_gradients_accumulate_across_calls_and_zero_grad_clears():
    x = Node([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad, [[4.0, 8.0]])  # 2 * 2x
    y.zero_grad()
    assert x.grad is None and y.grad is None


def test_same_node_twice_in_one_operation():
    x = Node([[3.0]], requires_grad=True)
    (x * x).backward()
    assert x.grad[0, 0] == 6.0
    y = Node([[1.0, 2.0]], requires_grad=True)
    mflow.concat([y, y, y], axis=0).sum().backward()
    np.testing.assert_array_equal(y.grad, [[3.0, 3.0]])


def test_only_nodes_that_require_grad_get_one():
    w = Node([[2.0]], requires_grad=True)
    c = Node([[5.0]])
    y = w * c
    y.backward()
    assert c.grad is None and not (c * c).requires_grad
    assert w.grad[0, 0] == 5.0


def test_gradients_are_independent_arrays():
    a, b = Node([[1.0]], requires_grad=True), Node([[2.0]], requires_grad=True)
    (a + b).backward()
    a.grad[0, 0] = 99.0
    assert b.grad[0, 0] == 1.0


def test_mixed_dtypes_give_each_gradient_its_operand_dtype():
    a = Node(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    b = Node(np.ones((1, 2)), requires_grad=True)
    y = (a * b).sum()
    assert y.dtype == np.float64
    y.backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    assert (a * 2.0).dtype == np.float32  # a Python number takes the other operand's dtype


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Node(1.0).backward()
    x = Node(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"shape \(2, 3\) needs `gradient`"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match=r"gradient has shape \(3, 2\)"):
        (x * 2.0).backward(np.ones((3, 2)))
    (x * 2.0).backward(np.ones((2, 3)))
    np.testing.assert_array_equal(x.grad, 2 * np.ones((2, 3)))
