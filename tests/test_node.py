"""Construction, attributes and operator overloading of Node."""

import numpy as np
import pytest

import mflow
from mflow import Node


@pytest.mark.parametrize("value,shape,dtype", [
    (3, (1, 1), np.float64), (2.5, (1, 1), np.float64), (np.float32(1), (1, 1), np.float32),
    (np.array(4.0), (1, 1), np.float64), ([[1, 2, 3]], (1, 3), np.float64),
    (np.ones((2, 3), dtype=np.int32), (2, 3), np.float64),
    (np.ones((2, 3), dtype=np.float32), (2, 3), np.float32), ([[True, False]], (1, 2), np.float64),
])
def test_values_become_float_matrices(value, shape, dtype):
    x = Node(value)
    assert x.shape == shape and x.dtype == dtype
    assert x.tensor is x.value and x.grad is None and x.is_leaf and not x.requires_grad


def test_value_is_copied_and_attributes_are_kept():
    a = np.ones((2, 2))
    x = Node(a, requires_grad=True, name="w")
    a[0, 0] = 5.0
    assert x.value[0, 0] == 1.0
    assert x.name == "w" and x.requires_grad and "name='w'" in repr(x)
    y = x @ x
    assert not y.is_leaf and y.requires_grad and y.op.name == "matmul" and y.parents == (x, x)


def test_operators_with_numbers_and_arrays_on_either_side():
    x = Node([[1.0, 2.0], [3.0, 4.0]])
    a = np.array([[10.0, 20.0]])
    v = x.value
    for node, expected in [
        (x + 1, v + 1), (1 + x, 1 + v), (x - a, v - a), (a - x, a - v), (2 * x, 2 * v),
        (x * a, v * a), (x / 2, v / 2), (2 / x, 2 / v), (a / x, a / v), (-x, -v),
        (x @ np.eye(2), v), (np.eye(2) @ x, v), (x ** 3, v ** 3), (x.T, v.T),
        (x[1, :], v[1:2, :]), (x[:, 0], v[:, 0:1]), (x[::-1, [0, 0]], v[::-1][:, [0, 0]]),
        (x[range(1, 2), -1], v[1:2, -1:]), (x.sum(axis=0), v.sum(0, keepdims=True)),
        (x.mean(), np.array([[2.5]])), (x.exp().log(), v),
    ]:
        assert isinstance(node, Node)
        np.testing.assert_allclose(node.value, expected)
        assert node.value.ndim == 2


def test_iterating_a_node_is_an_error():
    with pytest.raises(TypeError):
        list(Node([[1.0, 2.0]]))


def test_mflow_scalar_multiply_is_element_wise_not_matmul():
    """MatrixFlow did scalar * matrix as a matmul with a ones matrix."""
    x = Node(np.ones((2, 3)), requires_grad=True)
    y = 3.0 * x
    assert y.op.name == "mul" and y.shape == (2, 3)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 3.0))


def test_public_names_exist():
    for name in ["Node", "ShapeError", "relu", "exp", "log", "tanh", "sigmoid", "sin", "cos",
                 "sum", "mean", "concat", "softmax", "log_softmax", "trace", "inv", "det",
                 "conv2d"]:
        assert hasattr(mflow, name), name
    for method in ["relu", "exp", "log", "tanh", "sigmoid", "sin", "cos", "sum", "mean",
                   "softmax", "log_softmax", "trace", "inv", "det", "backward", "zero_grad"]:
        assert callable(getattr(Node, method)), method
    from mflow.nn import MLPRegressor, RNNRegressor  # noqa: F401
