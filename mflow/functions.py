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


def abs(x):  # noqa: A001 - numpy's and torch's name
    """|x| element-wise; its derivative at 0 is 0, as in torch (JAX: 1)."""
    return apply("abs", x)


def sqrt(x):
    """Square root; x must be positive."""
    return apply("sqrt", x)


def log1p(x):
    """log(1 + x), exact for small x; x > -1."""
    return apply("log1p", x)


def expm1(x):
    """exp(x) - 1, exact for small x."""
    return apply("expm1", x)


def softplus(x):
    """log(1 + exp(x)), without overflow."""
    return apply("softplus", x)


def erf(x):
    return apply("erf", x)


def logsumexp(x, axis=None):
    """log Σ exp(x) over everything, axis 0 or axis 1 (shapes as in `sum`), shifted by
    the max so that it does not overflow."""
    return apply("logsumexp", x, axis=axis)


def prod(x, axis=None):
    """Product over everything, axis 0 or axis 1; shapes as in `sum`."""
    return apply("prod", x, axis=axis)


def var(x, axis=None):
    """Population variance (divided by N) over everything, axis 0 or axis 1."""
    return apply("var", x, axis=axis)


def norm(x, axis=None):
    """The Frobenius norm (axis None), or each column's (0) or row's (1)."""
    return apply("norm", x, axis=axis)


def cumsum(x, axis=0):
    """Running sums down the rows (axis 0) or along each row (axis 1)."""
    return apply("cumsum", x, axis=axis)


def cumprod(x, axis=0):
    """Running products down the rows (axis 0) or along each row (axis 1)."""
    return apply("cumprod", x, axis=axis)


def reshape(x, shape):
    """The elements in row-major order, as a matrix of `shape`; one side may be -1."""
    return apply("reshape", x, shape=tuple(shape))


def flip(x, axis=0):
    """The rows (axis 0) or the columns (axis 1) in reverse order."""
    return apply("flip", x, axis=axis)


def pad(x, widths):
    """x with zeros around it: widths = (top, bottom, left, right)."""
    return apply("pad", x, widths=tuple(widths))


def tile(x, reps):
    """x repeated reps = (down, across) times, as numpy.tile."""
    return apply("tile", x, reps=tuple(reps))


def broadcast_to(x, shape):
    """x spread along its sides of size 1 to `shape`."""
    return apply("broadcast_to", x, shape=tuple(shape))


def tril(x, k=0):
    """The lower triangle: zeros above the k-th diagonal."""
    return apply("tril", x, k=k)


def triu(x, k=0):
    """The upper triangle: zeros below the k-th diagonal."""
    return apply("triu", x, k=k)


def clip(x, lo, hi):
    """x limited to [lo, hi]; its derivative is 1 at the bounds, as in torch (JAX: 1/2)."""
    return apply("clip", x, lo=lo, hi=hi)


def maximum(a, b):
    """The larger of a and b element-wise (broadcasting); at a tie each gets 1/2 of the
    gradient, as in torch and JAX."""
    return apply("maximum", a, b)


def minimum(a, b):
    """The smaller of a and b element-wise; a tie as in `maximum`."""
    return apply("minimum", a, b)


def where(mask, a, b):
    """a where mask is true, else b: mask a constant boolean matrix of the operands'
    broadcast shape."""
    import numpy as np
    mask = np.asarray(mask, bool)
    return apply("where", a, b, mask=tuple(map(tuple, mask.tolist())))


def max(x, axis=None):  # noqa: A001 - numpy's and torch's name
    """The largest element over everything, axis 0 or axis 1 (shapes as in `sum`); a tie
    shares the gradient evenly, as torch's amax and JAX's max."""
    return apply("max", x, axis=axis)


def min(x, axis=None):  # noqa: A001
    """The smallest element; shapes and ties as in `max`."""
    return apply("min", x, axis=axis)


def maxpool2d(x, size=2, stride=2):
    """The max of each size x size window, windows `stride` apart (no padding); a tie in
    a window gives all of its gradient to the first maximum (row-major), as torch and JAX."""
    return apply("maxpool2d", x, size=size, stride=stride)


def solve(a, b):
    """X with A X = B (A square and invertible)."""
    return apply("solve", a, b)


def logdet(x):
    """log |det X| of a square invertible matrix, as 1x1."""
    return apply("logdet", x)


for _f in (relu, exp, log, tanh, sigmoid, sin, cos, sum, mean, softmax, log_softmax,
           trace, inv, det, abs, sqrt, log1p, expm1, softplus, erf, logsumexp, prod, var, norm,
           cumsum, cumprod, reshape, flip, pad, tile, broadcast_to, tril, triu, logdet, clip,
           max, min, maxpool2d):
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
