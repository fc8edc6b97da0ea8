"""HIPS autograd (functional form): make_vjp of the program written with
autograd.numpy. autograd has no relu, softmax or conv2d of its own: relu is
np.maximum(x, 0) (whose derivative at the tie is 1/2: declared below), softmax
and log_softmax are built on autograd.scipy.special.logsumexp, conv2d on
autograd.scipy.signal.convolve (which flips the kernel: a true convolution)."""

import autograd
import autograd.numpy as anp
import numpy as np
from autograd import grad, make_jvp, make_vjp
from autograd.scipy.signal import convolve
from autograd.scipy.special import erf, expit, logsumexp

from . import index, reduced, same_padding


def _conv2d(image, kernel, stride, padding):
    if padding == "same":
        image = anp.pad(image, same_padding(kernel.shape))
    return convolve(image, kernel[::-1, ::-1], mode="valid")[::stride, ::stride]


OPS = {
    "add": anp.add, "sub": anp.subtract, "mul": anp.multiply, "div": anp.divide,
    "neg": anp.negative, "pow": lambda x, p: x ** p, "relu": lambda x: anp.maximum(x, 0.0),
    "exp": anp.exp, "log": anp.log, "tanh": anp.tanh, "sigmoid": expit,
    "sin": anp.sin, "cos": anp.cos, "matmul": anp.matmul, "transpose": anp.transpose,
    "sum": reduced(anp.sum), "mean": reduced(anp.mean),
    "concat": lambda *xs, axis: anp.concatenate(xs, axis=axis),
    "getitem": lambda x, rows, cols: x[index(rows)][:, index(cols)],
    "softmax": lambda x, axis: anp.exp(x - logsumexp(x, axis=axis, keepdims=True)),
    "log_softmax": lambda x, axis: x - logsumexp(x, axis=axis, keepdims=True),
    "trace": lambda x: anp.reshape(anp.trace(x), (1, 1)),
    "inv": anp.linalg.inv, "det": lambda x: anp.reshape(anp.linalg.det(x), (1, 1)),
    "conv2d": _conv2d,
    # the second half of the vocabulary; it has no VJP of cumprod or flip
    # (NotImplementedError) and no pooling of its own: those three are left out
    "abs": anp.abs, "sqrt": anp.sqrt, "log1p": anp.log1p, "expm1": anp.expm1,
    "softplus": lambda x: anp.logaddexp(x, 0.0), "erf": erf,
    "clip": lambda x, lo, hi: anp.clip(x, lo, hi), "maximum": anp.maximum,
    "minimum": anp.minimum, "where": lambda a, b, mask: anp.where(np.asarray(mask, bool), a, b),
    "max": reduced(anp.max), "min": reduced(anp.min), "logsumexp": reduced(logsumexp),
    "prod": reduced(anp.prod), "var": reduced(anp.var),
    "norm": lambda x, axis: anp.reshape(anp.linalg.norm(x), (1, 1)) if axis is None
    else anp.linalg.norm(x, axis=axis, keepdims=True),
    "cumsum": lambda x, axis: anp.cumsum(x, axis=axis),
    "reshape": lambda x, shape: anp.reshape(x, shape),
    "pad": lambda x, widths: anp.pad(x, (widths[:2], widths[2:])),
    "tile": lambda x, reps: anp.tile(x, reps),
    "broadcast_to": lambda x, shape: anp.broadcast_to(x, shape),
    "tril": lambda x, k: anp.tril(x, k), "triu": lambda x, k: anp.triu(x, k),
    "solve": anp.linalg.solve,
    "logdet": lambda x: anp.reshape(anp.linalg.slogdet(x)[1], (1, 1)),
}


class Autograd:
    name = "autograd"
    version = getattr(autograd, "__version__", "")
    ops = OPS
    conventions = {"relu": {0.0: 0.5}}  # np.maximum splits a tie: half to each side
    session = {"read_early": True, "second_gradient": True}  # functional: each call afresh
    # its forward mode has no JVP of expit, inv, det, convolve, erf, slogdet or solve
    # (NotImplementedError)
    jvp_ops = sorted(set(OPS) - {"sigmoid", "inv", "det", "conv2d", "erf", "logdet", "solve"})

    def vjp(self, fn, inputs, cotangent):
        pullback, out = make_vjp(lambda xs: fn(*xs))(tuple(inputs))
        return out, list(pullback(cotangent))

    def jvp(self, fn, inputs, tangents):  # autograd's own forward mode
        out, t = make_jvp(lambda xs: fn(*xs))(tuple(inputs))(tuple(tangents))
        return out, t

    def hvp(self, fn, inputs, cotangent, tangents):
        """Reverse over reverse, autograd's own: grad of ⟨Jᵀ cotangent, ṫ⟩."""
        def inner(xs):
            pullback, _ = make_vjp(lambda xs: fn(*xs))(xs)
            return sum(anp.sum(g * t) for g, t in zip(pullback(cotangent), tangents))
        return list(grad(inner)(tuple(inputs)))

    def to_numpy(self, value):
        return anp.asarray(value)


try:
    from importlib.metadata import version as _version
    Autograd.version = _version("autograd")
except Exception:  # noqa: BLE001 - a version is only recorded
    pass

engine = Autograd()
