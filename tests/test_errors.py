"""Bad input raises the named error, with a message naming the operation and the shapes."""

import numpy as np
import pytest

import mflow
from mflow import Node, ShapeError

A34, A52, A24, A23 = (Node(np.ones(s)) for s in [(3, 4), (5, 2), (2, 4), (2, 3)])

BAD = [
    (lambda: A34 @ A52, ShapeError,
     r"matmul: cannot multiply \(3, 4\) by \(5, 2\): inner dimensions 4 and 5 differ"),
    (lambda: A34 + A24, ShapeError, r"add: cannot broadcast \(3, 4\) with \(2, 4\): axis 0"),
    (lambda: A34 - A24, ShapeError, r"sub: cannot broadcast \(3, 4\) with \(2, 4\)"),
    (lambda: A34 * A52, ShapeError, r"mul: cannot broadcast"),
    (lambda: A34 / np.ones((3, 2)), ShapeError, r"div: cannot broadcast \(3, 4\) with \(3, 2\)"),
    (lambda: mflow.inv(A34), ShapeError, r"inv: needs a square matrix; got \(3, 4\)"),
    (lambda: mflow.det(A23), ShapeError, r"det: needs a square matrix; got \(2, 3\)"),
    (lambda: mflow.trace(A23), ShapeError, r"trace: needs a square matrix"),
    (lambda: mflow.inv(Node(np.zeros((2, 2)))), np.linalg.LinAlgError, r"inv: Singular matrix"),
    (lambda: mflow.concat([A34, A24], axis=1), ShapeError,
     r"concat: cannot join \(3, 4\), \(2, 4\) along axis 1"),
    (lambda: mflow.concat([A34], axis=2), ShapeError, r"concat: axis must be 0 or 1; got 2"),
    (lambda: mflow.concat([]), ShapeError, r"concat: needs at least one operand"),
    (lambda: mflow.sum(A34, axis=2), ShapeError, r"sum: axis must be None, 0 or 1; got 2"),
    (lambda: mflow.mean(A34, axis=-1), ShapeError, r"mean: axis must be None, 0 or 1"),
    (lambda: mflow.softmax(A34, axis=None), ShapeError, r"softmax: axis must be 0 or 1"),
    (lambda: A34[5, :], ShapeError, r"getitem: row index 5 is out of range for 3 rows"),
    (lambda: A34[:, 2:2], ShapeError, r"getitem: slice .* selects no columns of 4"),
    (lambda: A34[0, 1, 2], ShapeError, r"getitem: a matrix takes x\[rows, cols\]; got 3"),
    (lambda: A34["a", :], ShapeError, r"getitem: row index must be an int, slice"),
    (lambda: mflow.conv2d(A23, A34), ShapeError,
     r"conv2d: kernel \(3, 4\) is larger than image \(2, 3\)"),
    (lambda: mflow.conv2d(A34, A23, stride=2, padding="same"), ShapeError,
     r"conv2d: padding='same' needs stride=1"),
    (lambda: mflow.conv2d(A34, A23, padding="full"), ShapeError, r"conv2d: padding must be"),
    (lambda: mflow.conv2d(A34, A23, stride=0), ShapeError, r"conv2d: stride must be a positive"),
    (lambda: A34 ** A34, TypeError, r"pow: the exponent must be a Python number; got Node"),
    (lambda: mflow.apply("nope", A34), ValueError, r"unknown operation 'nope'"),
    (lambda: mflow.apply("exp", A34, A34), TypeError, r"exp: takes 1 operand\(s\), got 2"),
    (lambda: mflow.apply("exp", A34, axis=1), TypeError, r"exp: .*axis"),
    (lambda: mflow.exp("x"), TypeError, r"exp: operands must be Nodes, arrays or numbers; got str"),
    (lambda: A34 + "x", TypeError, r"unsupported operand"),
    (lambda: Node(np.ones((2, 2, 2))), ShapeError,
     r"Node: values are 2-D matrices; got a 3-D value of shape \(2, 2, 2\)\. Reshape"),
    (lambda: Node([1.0, 2.0]), ShapeError, r"got a 1-D value of shape \(2,\).*x.reshape\(1, -1\)"),
    (lambda: Node([[1.0], [2.0, 3.0]]), ShapeError, r"Node: value is not a rectangular matrix"),
    (lambda: Node(np.ones((0, 3))), ShapeError, r"Node: got an empty matrix of shape \(0, 3\)"),
    (lambda: Node("abc"), TypeError, r"Node: value must be real numbers"),
    (lambda: Node(1 + 2j), TypeError, r"dtype complex128"),
    (lambda: Node(None), TypeError, r"dtype object"),
]


@pytest.mark.parametrize("make,error,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_input_raises_named_error(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_shape_error_is_a_value_error():
    assert issubclass(ShapeError, ValueError)


# --- junk calls found from outside: each a documented error naming the operation ----

def test_numbers_beyond_float_are_named_errors():
    x = mflow.Node(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(ValueError, match="add: the number, an int of 401 digits"):
        x + 10 ** 400
    with pytest.raises(ValueError, match="mul: the number"):
        10 ** 400 * x
    with pytest.raises(ShapeError, match="pow: the exponent, an int of 401 digits"):
        x ** 10 ** 400


def test_a_huge_slice_step_selects_one_element():
    x = mflow.Node(np.arange(4.0).reshape(2, 2))
    assert np.array_equal(x[0:2:10 ** 30, [0]].value, [[0.0]])
    assert x[0:100].shape == (2, 2)                       # a stop past the end clips, as numpy


def test_requires_grad_must_be_a_bool_and_tensor_is_checked_as_value():
    with pytest.raises(TypeError, match="requires_grad must be True or False"):
        mflow.Node(1.0, requires_grad="no")
    x = mflow.Node(np.ones((2, 2)))
    with pytest.raises(ShapeError, match="tensor: values are 2-D"):
        x.tensor = np.ones((2, 2, 2))


def test_the_derivative_of_x_to_the_zero_is_zero_at_zero_as_in_torch():
    x = mflow.Node(np.zeros((1, 2)), requires_grad=True)
    (x ** 0).backward(np.ones((1, 2)))
    assert np.array_equal(x.grad, [[0.0, 0.0]])
