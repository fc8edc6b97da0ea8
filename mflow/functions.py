"""The public functions and Node's operators. Each applies one table entry; the
one-operand functions are also Node methods (`x.relu()`, `x.sum(axis=0)`), and the
operators (+ - * / @ ** unary -, .T, x[rows, cols]) are attached to Node here, where
the table is known. Results always stay 2-D."""

from .node import Node, lift, too_large
from .ops import apply
from .shapes import ShapeError, normalise_index


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


# --- Node's operators --------------------------------------------------------------

def _binary(op, reflected=False):
    # the op by name, looked up per call, so that a patched table entry is seen everywhere
    def method(self, other):
        if type(other) is not Node:
            given, other = other, lift(other, self)
            if other is None:
                if isinstance(given, int):
                    raise ValueError(too_large(op, given))
                return NotImplemented
        return apply(op, other, self) if reflected else apply(op, self, other)
    return method


for _name, _dunder in [("add", "add"), ("sub", "sub"), ("mul", "mul"),
                       ("div", "truediv"), ("matmul", "matmul")]:
    setattr(Node, f"__{_dunder}__", _binary(_name))
    setattr(Node, f"__r{_dunder}__", _binary(_name, reflected=True))


def _neg(self):
    return apply("neg", self)


def _pow(self, p):
    if isinstance(p, Node) or isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"pow: the exponent must be a Python number; got {type(p).__name__}")
    return apply("pow", self, p=p)


def _getitem(self, key):
    try:
        rows, cols = normalise_index(key, self.shape)
    except ShapeError as e:
        raise ShapeError(f"getitem: {e}") from None
    return apply("getitem", self, rows=rows, cols=cols)


Node.__neg__, Node.__pow__, Node.__getitem__ = _neg, _pow, _getitem
Node.T = property(lambda self: apply("transpose", self), doc="The transpose.")
