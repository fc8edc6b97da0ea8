"""What VJP rules are written with, besides operators: a namespace, handed to each
rule as its first argument (`F`), autograd's approach of rules written against a
namespace. ARRAYS, here, runs a rule on numpy arrays: the ordinary backward pass.
`mflow.ops.NODES` has the same names as operations of the table, so that the same
rule run on Nodes (`mflow.grad(..., create_graph=True)`) builds a graph that can be
differentiated again. The operators (+ - * / @ ** .T and slicing) work on both.

This module imports nothing of mflow: the graph core and the table are built on it.

    >>> ARRAYS.cos(np.zeros((1, 2)))
    array([[1., 1.]])
"""

import numpy as np


def index(rows, cols):
    """numpy's index for (rows, cols) as mflow.shapes.normalise_index gives them:
    two slices as they are, else the outer product of the two index lists."""
    if isinstance(rows, slice) and isinstance(cols, slice):
        return rows, cols
    as_array = [np.arange(i.start, i.stop, i.step) if isinstance(i, slice) else np.array(i)
                for i in (rows, cols)]
    return np.ix_(*as_array)


def scatter(x, shape, rows, cols):
    """A zero matrix of `shape` with x added at (rows, cols): slices or tuples of ints,
    a repeated index receiving every contribution (getitem's VJP; also padding and
    dilation)."""
    out = np.zeros(shape, dtype=x.dtype)
    if isinstance(rows, slice) and isinstance(cols, slice):
        out[rows, cols] = x
    else:
        np.add.at(out, index(rows, cols), x)
    return out


def gather(x, rows, cols):
    """x at (rows, cols): getitem."""
    return x[index(rows, cols)]


def adjugate(x):
    """adj X, so that X adj X = det X · I, singular X included (det X X⁻¹ is not): with
    X = U S Vᵀ, adj X = det U det V · V adj(S) Uᵀ, adj(S)ᵢᵢ = ∏_{j≠i} sⱼ, products on
    either side of i, no division (in float64, so that a float32 partial product does
    not overflow where the entry itself is finite)."""
    if not np.all(np.isfinite(x)):  # the SVD would raise; NaN is the honest answer
        return np.full_like(x, np.nan)
    u, s, vt = np.linalg.svd(x.astype(np.float64, copy=False))
    one = np.ones(1)
    others = np.concatenate((one, np.cumprod(s[:-1]))) * np.concatenate(
        (np.cumprod(s[:0:-1])[::-1], one))
    adj = (np.linalg.det(u) * np.linalg.det(vt)) * (vt.T * others) @ u.T
    return adj.astype(x.dtype, copy=False)


def conv2d(image, kernel):
    """Cross-correlation, stride 1, no padding."""
    windows = np.lib.stride_tricks.sliding_window_view(image, kernel.shape)
    return np.tensordot(windows, kernel, axes=2)


def sigmoid(x):
    """1 / (1 + exp(-x)), never overflowing: sigmoid(-|x|) = e / (1 + e), e = exp(-|x|)."""
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


def flip(x, axis):
    return np.flip(x, axis).copy()


def cumsum(x, axis):
    return np.cumsum(x, axis=axis)


def cumprod(x, axis):
    return np.cumprod(x, axis=axis)


def prod(x, axis):
    return np.multiply.reduce(x, axis=axis, keepdims=True)


def reshape(x, shape):
    return np.reshape(x, shape).copy()


def spread(g, shape):
    """g broadcast to `shape`, as a new array (np.broadcast_to is ten times slower here)."""
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out


class Arrays:
    """The namespace on numpy arrays (see the module's docstring)."""
    cos, sin, exp = staticmethod(np.cos), staticmethod(np.sin), staticmethod(np.exp)
    conv2d, spread = staticmethod(conv2d), staticmethod(spread)
    scatter, gather, adjugate = staticmethod(scatter), staticmethod(gather), staticmethod(adjugate)
    sigmoid, flip, cumsum = staticmethod(sigmoid), staticmethod(flip), staticmethod(cumsum)
    cumprod, prod = staticmethod(cumprod), staticmethod(prod)
    reshape, inv, solve = staticmethod(reshape), staticmethod(np.linalg.inv), \
        staticmethod(np.linalg.solve)

    @staticmethod
    def tril(x, k):
        return np.tril(x, k)

    @staticmethod
    def triu(x, k):
        return np.triu(x, k)

    @staticmethod
    def sign(x):
        """abs's derivative, a constant (sign(0) = 0, as torch)."""
        return np.sign(x)

    @staticmethod
    def sum(x, axis):  # noqa: A003 - the table's name for it
        """Σ over `axis` (None: everything), keeping two axes."""
        return np.add.reduce(x, axis=axis, keepdims=True)  # np.sum's result, without its wrapper

    @staticmethod
    def positive(x):
        """1 where x > 0, else 0: relu's derivative (a constant: its own derivative is 0
        away from the kink)."""
        return x > 0

    @staticmethod
    def eye(n, like):
        return np.eye(n, dtype=like.dtype)

    @staticmethod
    def zeros(like):
        return np.zeros(like.shape, like.dtype)

    @staticmethod
    def constant(x):
        """x as a value no derivative flows through (arrays are constants already)."""
        return x


ARRAYS = Arrays()
