"""MyGrad (graph form). It has no inv or det (left out), and conv_nd pads
symmetrically only: conv2d is declared with padding 'valid' alone."""

from importlib.metadata import version

import mygrad as mg
import numpy as np

from . import index, reduced


def _reached(image, kh, kw, stride):
    """conv_nd and max_pool refuse a stride that does not tile the image exactly (their
    documented rule); torch drops the rows and columns no window reaches: crop them."""
    h, w = image.shape
    return image[:kh + stride * ((h - kh) // stride), :kw + stride * ((w - kw) // stride)]


def _conv2d(image, kernel, stride):
    image = _reached(image, *kernel.shape, stride)
    return mg.nnet.conv_nd(image[None, None], kernel[None, None], stride=stride)[0, 0]


def _maxpool2d(x, size, stride):
    return mg.nnet.max_pool(_reached(x, size, size, stride)[None, None], (size, size),
                            stride)[0, 0]


OPS = {
    "add": mg.add, "sub": mg.subtract, "mul": mg.multiply, "div": mg.divide,
    "neg": mg.negative, "pow": lambda x, p: mg.power(x, p), "relu": mg.nnet.relu,
    "exp": mg.exp, "log": mg.log, "tanh": mg.tanh, "sigmoid": mg.nnet.sigmoid,
    "sin": mg.sin, "cos": mg.cos, "matmul": mg.matmul, "transpose": mg.transpose,
    "sum": reduced(mg.sum), "mean": reduced(mg.mean),
    "concat": lambda *xs, axis: mg.concatenate(xs, axis=axis),
    "getitem": lambda x, rows, cols: x[index(rows)][:, index(cols)],
    "softmax": lambda x, axis: mg.nnet.softmax(x, axis=axis),
    "log_softmax": lambda x, axis: mg.nnet.logsoftmax(x, axis=axis),
    "trace": lambda x: mg.reshape(mg.einsum("ii", x), (1, 1)),
    "conv2d": lambda image, kernel, stride, padding: _conv2d(image, kernel, stride),
    # the second half of the vocabulary, where MyGrad has the operation (no softplus, erf,
    # logsumexp, flip, pad, tile, tril, triu, solve or logdet)
    "abs": mg.absolute, "sqrt": mg.sqrt, "log1p": mg.log1p, "expm1": mg.expm1,
    "clip": lambda x, lo, hi: mg.clip(x, lo, hi),
    "maximum": mg.maximum, "minimum": mg.minimum,
    "where": lambda a, b, mask: mg.where(np.asarray(mask, bool), a, b),
    "max": reduced(mg.max), "min": reduced(mg.min), "prod": reduced(mg.prod),
    "var": reduced(mg.var),
    "norm": lambda x, axis: mg.reshape(mg.linalg.norm(x), (1, 1)) if axis is None
    else mg.linalg.norm(x, axis=axis, keepdims=True),
    "cumsum": lambda x, axis: mg.cumsum(x, axis=axis),
    "cumprod": lambda x, axis: mg.cumprod(x, axis=axis),
    "reshape": lambda x, shape: mg.reshape(x, shape),
    "broadcast_to": lambda x, shape: mg.broadcast_to(x, shape),
    "maxpool2d": _maxpool2d,
}


class MyGrad:
    name = "mygrad"
    version = version("mygrad")
    ops = OPS
    attrs = {"conv2d": {"padding": ["valid"]}}
    # its backward clears the graph it walked (documented: "clears the computational
    # graph"), so a second gradient of it is not a call its users make
    session = {"read_early": True, "second_gradient": False}

    def leaf(self, array):
        return mg.Tensor(array)

    def constant(self, array):
        return mg.Tensor(array, constant=True)

    def gradients(self, output, leaves, cotangent):
        output.backward(cotangent)
        return [np.zeros_like(x.data) if x.grad is None else x.grad for x in leaves]

    def to_numpy(self, value):
        return value.data if isinstance(value, mg.Tensor) else np.asarray(value)


engine = MyGrad()
