"""The operations the VJP rules of mflow.ops are written with, on numpy arrays and
on Nodes alike (autograd's approach: rules written against a namespace).

On arrays they are numpy: the ordinary backward pass. On Nodes they are mflow's
own operations: `mflow.grad(..., create_graph=True)` runs the same rules on the
graph's Nodes, so that a gradient is itself a graph that can be differentiated
again (Hessian-vector products, any order). Each rule is written once; the
operators (+ - * / @ ** .T and slicing) already work on both.

    >>> cos(np.zeros((1, 2)))
    array([[1., 1.]])
"""

import numpy as np


def _apply(name, *operands, **attrs):
    from .node import apply  # node.py imports the table, which imports this module
    return apply(name, *operands, **attrs)


def _is_array(x):
    return type(x) is np.ndarray  # otherwise a Node


def cos(x):
    return np.cos(x) if _is_array(x) else _apply("cos", x)


def sin(x):
    return np.sin(x) if _is_array(x) else _apply("sin", x)


def exp(x):
    return np.exp(x) if _is_array(x) else _apply("exp", x)


def sum(x, axis):  # noqa: A001 - the table's name for it
    """Σ over `axis` (None: everything), keeping two axes."""
    if _is_array(x):
        return np.add.reduce(x, axis=axis, keepdims=True)  # np.sum's result, without its wrapper
    return _apply("sum", x, axis=axis)


def conv2d(image, kernel):
    """Cross-correlation, stride 1, no padding."""
    if _is_array(image):
        windows = np.lib.stride_tricks.sliding_window_view(image, kernel.shape)
        return np.tensordot(windows, kernel, axes=2)
    return _apply("conv2d", image, kernel, stride=1, padding="valid")


def spread(g, shape):
    """g broadcast to `shape`, as a new array (np.broadcast_to is ten times slower here);
    on a Node, g + zeros (exact), whose VJP sums back what was spread."""
    if _is_array(g):
        out = np.empty(shape, dtype=g.dtype)
        out[...] = g
        return out
    return g + np.zeros(shape, g.dtype)


def positive(x):
    """1 where x > 0, else 0: relu's derivative, a constant (its own derivative is 0
    away from the kink)."""
    return (x > 0) if _is_array(x) else (x.value > 0).astype(x.dtype)


def eye(n, like):
    return np.eye(n, dtype=like.dtype)  # a constant array: Node * array lifts it


def zeros(like):
    return np.zeros(like.shape, like.dtype)


def index(rows, cols):
    """numpy's index for (rows, cols) as mflow.shapes.normalise_index gives them:
    two slices as they are, else the outer product of the two index lists."""
    if isinstance(rows, slice) and isinstance(cols, slice):
        return rows, cols
    as_array = [np.arange(i.start, i.stop, i.step) if isinstance(i, slice) else np.array(i)
                for i in (rows, cols)]
    return np.ix_(*as_array)


def scatter(x, shape, rows, cols):
    """A zero matrix of `shape` with x added at (rows, cols): slices or tuples of
    ints, a repeated index receiving every contribution (getitem's VJP; also padding
    and dilation). On a Node, the primitive `scatter` (mflow.ops.SCATTER), whose VJP
    is getitem: each the other's transpose, so neither leans on a third operation."""
    if not _is_array(x):
        from .ops import SCATTER
        return _apply(SCATTER, x, shape=tuple(shape), rows=rows, cols=cols)
    out = np.zeros(shape, dtype=x.dtype)
    if isinstance(rows, slice) and isinstance(cols, slice):
        out[rows, cols] = x
    else:
        np.add.at(out, index(rows, cols), x)
    return out


def gather(x, rows, cols):
    """x at (rows, cols): getitem, on arrays and on Nodes."""
    return x[index(rows, cols)] if _is_array(x) else _apply("getitem", x, rows=rows, cols=cols)


def adjugate(x):
    """adj X, so that X adj X = det X · I. On arrays, singular X included (det X X⁻¹
    is not): with X = U S Vᵀ, adj X = det U det V · V adj(S) Uᵀ, adj(S)ᵢᵢ = ∏_{j≠i} sⱼ,
    products on either side of i, no division (in float64, so that a float32 partial
    product does not overflow where the entry itself is finite). On Nodes, det X · X⁻¹:
    differentiable where X is invertible (det's domain), not at a singular X."""
    if not _is_array(x):
        return _apply("det", x) * _apply("inv", x)
    if not np.all(np.isfinite(x)):  # the SVD would raise; NaN is the honest answer
        return np.full_like(x, np.nan)
    u, s, vt = np.linalg.svd(x.astype(np.float64, copy=False))
    one = np.ones(1)
    others = np.concatenate((one, np.cumprod(s[:-1]))) * np.concatenate(
        (np.cumprod(s[:0:-1])[::-1], one))
    adj = (np.linalg.det(u) * np.linalg.det(vt)) * (vt.T * others) @ u.T
    return adj.astype(x.dtype, copy=False)
