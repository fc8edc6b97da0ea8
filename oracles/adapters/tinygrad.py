"""tinygrad (graph form) on its CPU device (DEV=CPU needs clang; DEV=PYTHON, an
interpreter, needs nothing). It has no inv or det (left out); trace is the sum of
Tensor.diagonal."""

import os
from importlib.metadata import version

import numpy as np

os.environ.setdefault("DEV", "CPU")
from tinygrad import Tensor  # noqa: E402 - after the device is chosen

from . import same_padding  # noqa: E402


def _reduce(name):
    def reduce(x, axis):
        out = getattr(x, name)(axis=axis, keepdim=True)
        return out.reshape(1, 1) if axis is None else out
    return reduce


def _var(x, axis):  # population variance (tinygrad's default is the sample's)
    out = x.var(axis=axis, keepdim=True, correction=0)
    return out.reshape(1, 1) if axis is None else out


def _getitem(x, rows, cols):
    r, c = (i if isinstance(i, slice) else Tensor(list(i)) for i in (rows, cols))
    return x[r][:, c]


def _conv2d(image, kernel, stride, padding):
    (top, bottom), (left, right) = same_padding(kernel.shape) if padding == "same" else \
        ((0, 0), (0, 0))
    return image[None, None].conv2d(kernel[None, None], stride=stride,
                                    padding=(left, right, top, bottom))[0, 0]


OPS = {
    "add": Tensor.add, "sub": Tensor.sub, "mul": Tensor.mul, "div": Tensor.div,
    "neg": Tensor.neg, "pow": lambda x, p: x ** p, "relu": Tensor.relu, "exp": Tensor.exp,
    "log": Tensor.log, "tanh": Tensor.tanh, "sigmoid": Tensor.sigmoid, "sin": Tensor.sin,
    "cos": Tensor.cos, "matmul": Tensor.matmul, "transpose": lambda x: x.T,
    "sum": _reduce("sum"), "mean": _reduce("mean"),
    "concat": lambda *xs, axis: xs[0].cat(*xs[1:], dim=axis),
    "getitem": _getitem,
    "softmax": lambda x, axis: x.softmax(axis), "log_softmax": lambda x, axis: x.log_softmax(axis),
    "trace": lambda x: x.diagonal().sum().reshape(1, 1),
    "conv2d": _conv2d,
    # the second half of the vocabulary, where tinygrad has the operation (no log1p,
    # expm1, norm, solve or logdet)
    "abs": Tensor.abs, "sqrt": Tensor.sqrt, "softplus": Tensor.softplus, "erf": Tensor.erf,
    "clip": lambda x, lo, hi: x.clip(lo, hi), "maximum": Tensor.maximum,
    "minimum": Tensor.minimum,
    "where": lambda a, b, mask: Tensor(np.asarray(mask, bool)).where(a, b),
    "max": _reduce("max"), "min": _reduce("min"), "logsumexp": _reduce("logsumexp"),
    "prod": _reduce("prod"), "var": lambda x, axis: _var(x, axis),
    "cumsum": lambda x, axis: x.cumsum(axis), "cumprod": lambda x, axis: x.cumprod(axis),
    "reshape": lambda x, shape: x.reshape(shape), "flip": lambda x, axis: x.flip(axis),
    "pad": lambda x, widths: x.pad(((widths[0], widths[1]), (widths[2], widths[3]))),
    "tile": lambda x, reps: x.repeat(*reps), "broadcast_to": lambda x, shape: x.expand(shape),
    "tril": lambda x, k: x.tril(k), "triu": lambda x, k: x.triu(k),
    "maxpool2d": lambda x, size, stride: x[None, None].max_pool2d(size, stride)[0, 0],
}


class Tinygrad:
    name = "tinygrad"
    version = version("tinygrad")
    dtypes = ("float64", "float32", "float16")
    ops = OPS
    # Tensor.gradient keeps no state; Tensor.backward adds into .grad (tensor.py:
    # `t.grad.assign(t.grad + g)`), and Tensor.assign writes a leaf in place
    session = {"read_early": True, "second_gradient": True, "assign": True,
               "accumulate": True}
    # it compiles a kernel (clang) the first time it meets a shape: a large conv2d took
    # over 10 s twice on a machine loaded with five campaigns, then milliseconds
    first_use = 120.0

    def leaf(self, array):
        return Tensor(np.ascontiguousarray(array))  # gradient() needs no flag

    def assign(self, leaf, array):
        leaf.assign(Tensor(np.ascontiguousarray(array)))

    def constant(self, array):
        return Tensor(np.ascontiguousarray(array))

    def backward(self, output, cotangent):
        output.backward(gradient=Tensor(np.ascontiguousarray(cotangent)))

    def grad(self, leaf):
        return leaf.grad

    def zero_grad(self, leaf):
        leaf.grad = None

    def gradients(self, output, leaves, cotangent):
        grads = output.gradient(*leaves, gradient=Tensor(np.ascontiguousarray(cotangent)))
        return [g.numpy() for g in grads]

    def to_numpy(self, value):
        return value.numpy()


engine = Tinygrad()
