"""numpy's counterpart of every operation, on stacks of matrices (..., m, n).

The finite-difference oracle evaluates all its perturbed inputs in one pass
along the leading axis, so every entry here broadcasts over leading axes.
Written apart from mflow on purpose: a reference must not share the engine's code.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _axis(axis):  # mflow's matrix axes 0 / 1 are the last two of a stack
    return axis - 2


def _reduce(f):
    def reduced(x, axis):
        return f(x, axis=(-2, -1) if axis is None else _axis(axis), keepdims=True)
    return reduced


def _getitem(x, rows, cols):
    r = np.arange(rows.start, rows.stop, rows.step) if isinstance(rows, slice) else list(rows)
    c = np.arange(cols.start, cols.stop, cols.step) if isinstance(cols, slice) else list(cols)
    return x[..., r, :][..., :, c]


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=_axis(axis), keepdims=True))
    return e / e.sum(axis=_axis(axis), keepdims=True)


def _log_softmax(x, axis):
    s = x - x.max(axis=_axis(axis), keepdims=True)
    return s - np.log(np.exp(s).sum(axis=_axis(axis), keepdims=True))


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _conv2d(image, kernel, stride, padding):
    kh, kw = kernel.shape[-2:]
    if padding == "same":
        ph, pw = kh - 1, kw - 1
        pad = [(0, 0)] * (image.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
        image = np.pad(image, pad)
    windows = sliding_window_view(image, (kh, kw), axis=(-2, -1))[..., ::stride, ::stride, :, :]
    return np.einsum("...ijkl,...kl->...ij", windows, kernel)


NUMPY_OPS = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "neg": np.negative, "pow": lambda x, p: x ** p, "relu": lambda x: np.maximum(x, 0),
    "exp": np.exp, "log": np.log, "tanh": np.tanh, "sigmoid": _sigmoid,
    "sin": np.sin, "cos": np.cos, "matmul": np.matmul,
    "transpose": lambda x: np.swapaxes(x, -1, -2),
    "sum": _reduce(np.sum), "mean": _reduce(np.mean),
    "concat": lambda *xs, axis: np.concatenate(_stack(xs), axis=_axis(axis)),
    "getitem": _getitem, "softmax": _softmax, "log_softmax": _log_softmax,
    "trace": lambda x: np.trace(x, axis1=-2, axis2=-1)[..., None, None],
    "inv": np.linalg.inv, "det": lambda x: np.linalg.det(x)[..., None, None],
    "conv2d": _conv2d,
}


def _stack(xs):
    """Operands with the same leading axes (a constant has none), for concatenate."""
    lead = np.broadcast_shapes(*[x.shape[:-2] for x in xs])
    return [np.broadcast_to(x, lead + x.shape[-2:]) for x in xs]
