"""The public functions. Each applies one table entry; the one-operand ones are
also Node methods (`x.relu()`, `x.sum(axis=0)`). Results always stay 2-D."""

from .node import Node, apply


def relu(x):
    """max(x, 0) element-wise; its derivative at 0 is 0, as in torch and JAX."""
    return apply("relu", x)


def exp(x):
    return apply("exp", x)


def log(x):
    """Natural log; x must be positive."""
    return apply("log", x)


def tanh(x):
    return apply("tanh", x)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for any x."""
    return apply("sigmoid", x)


def sin(x):
    return apply("sin", x)


def cos(x):
    return apply("cos", x)


def sum(x, axis=None):
    """Sum over everything (1x1), axis 0 (a (1, n) row) or axis 1 (an (m, 1) column)."""
    return apply("sum", x, axis=axis)


def mean(x, axis=None):
    """Mean over everything, axis 0 or axis 1; shapes as in `sum`."""
    return apply("mean", x, axis=axis)


def softmax(x, axis=1):
    """exp(x) normalised along `axis`; shifted by the max, so inputs of 1e3 don't overflow."""
    return apply("softmax", x, axis=axis)


def log_softmax(x, axis=1):
    """log(softmax(x)) computed stably (x - max - log Σ exp(x - max))."""
    return apply("log_softmax", x, axis=axis)


def trace(x):
    """Sum of the diagonal of a square matrix, as 1x1."""
    return apply("trace", x)


def inv(x):
    """Inverse of a square matrix."""
    return apply("inv", x)


def det(x):
    """Determinant of a square matrix, as 1x1."""
    return apply("det", x)


def transpose(x):
    return apply("transpose", x)


def matmul(a, b):
    return apply("matmul", a, b)


def concat(nodes, axis=0):
    """Join any number of matrices along axis 0 (stack rows) or 1 (side by side)."""
    return apply("concat", *nodes, axis=axis)


def conv2d(image, kernel, stride=1, padding="valid"):
    """Cross-correlation of a matrix image with a matrix kernel, as torch's and
    JAX's conv2d with one channel. padding="same" keeps the image's shape
    (stride 1 only; an even kernel pads one more after than before)."""
    return apply("conv2d", image, kernel, stride=stride, padding=padding)


for _f in (relu, exp, log, tanh, sigmoid, sin, cos, sum, mean, softmax, log_softmax,
           trace, inv, det):
    setattr(Node, _f.__name__, _f)
