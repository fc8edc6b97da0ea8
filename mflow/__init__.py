"""mflow: a compact autodiff engine whose values are 2-D matrices: reverse mode
(`backward`, `grad`), forward mode over a built graph (`jvp`), and gradients that
are graphs themselves (`grad(..., create_graph=True)`), so second order and beyond.

>>> from mflow import Node
>>> X = Node([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> loss = (X @ X.T).trace()
>>> loss.backward()
>>> X.grad            # d tr(X Xᵀ) / dX = 2 X
array([[2., 4.],
       [6., 8.]])
"""

from . import nn
from .forward import jvp
from .functions import (
    abs,
    broadcast_to,
    clip,
    concat,
    conv2d,
    cos,
    cumprod,
    cumsum,
    det,
    erf,
    exp,
    expm1,
    flip,
    inv,
    log,
    log1p,
    log_softmax,
    logdet,
    logsumexp,
    matmul,
    max,
    maximum,
    maxpool2d,
    mean,
    min,
    minimum,
    norm,
    pad,
    prod,
    relu,
    reshape,
    sigmoid,
    sin,
    softmax,
    softplus,
    solve,
    sqrt,
    sum,
    tanh,
    tile,
    trace,
    transpose,
    tril,
    triu,
    var,
    where,
)
from .gradients import grad, hvp
from .node import Node, Op
from .ops import OPS, apply
from .shapes import ShapeError

# The suite's folders (oracles/, strategies/, reports/) sit beside this one in the
# repository and install as mflow.oracles, mflow.strategies and mflow.reports
# (pyproject.toml): in a checkout, find them where they are.
_checkout = __import__("pathlib").Path(__file__).resolve().parent.parent
if (_checkout / "oracles" / "__init__.py").is_file() and (_checkout / "pyproject.toml").is_file():
    __path__.append(str(_checkout))
del _checkout

__all__ = ["nn", "Node", "ShapeError", "hvp", "OPS", "Op", "apply", "grad", "jvp",
           "abs", "broadcast_to", "clip", "concat", "conv2d", "cos", "cumprod", "cumsum",
           "det", "erf", "exp", "expm1", "flip", "inv", "log", "log1p",
           "log_softmax", "logdet", "logsumexp", "matmul", "max", "maximum", "maxpool2d", "mean",
           "min", "minimum", "norm", "pad", "prod", "relu", "reshape", "sigmoid",
           "sin", "softmax", "softplus", "solve", "sqrt", "sum", "tanh", "tile",
           "trace", "transpose", "tril", "triu", "var", "where"]
