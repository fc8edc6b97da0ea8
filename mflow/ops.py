"""The table of operations: one entry holds all mflow knows about an operation.

Each entry has its forward, its vector-Jacobian product, its shape rule, the
domain its operands are drawn from, and its convention at kinks. Strategies,
oracles and tests read this table; adding an operation is one entry here plus
its counterparts in the oracles.

A VJP rule takes (g, ans, *operands, **attrs), where g is the cotangent of the
result and ans the result itself, and returns one gradient per operand. It is
written with operators and `F` (mflow.rule_ops) only, so that the same rule runs
on arrays (the backward pass) and on Nodes (mflow.grad with create_graph=True,
whose gradients can be differentiated again). A JVP
rule takes (t, ans, *operands, **attrs), t the tuple of the operands' tangents,
and returns the tangent of the result: dY itself, read off the same differential
(the VJP is its transpose), in the result's shape. Each is
derived from the matrix differential: with Y = f(X) and dL = tr(Gᵀ dY), move
dX to the right to read off dL = tr(G_Xᵀ dX). Rules return gradients in the
broadcast shape; `node.py` sums them back to each operand's shape in one place.

Domains, per operand, tell the strategies where inputs are safe:
  "real"        anything
  "nonzero"     bounded away from zero (a denominator, a negative power)
  "positive"    bounded away from zero and positive (log, a fractional power)
  "bounded"     of modest size (exp, so that values stay finite)
  "invertible"  a square, well-conditioned matrix (inv, det)
  "wide"        anything up to 1e3 in size: the operation must not overflow there (softmax)

Rounding, how a float32 implementation rounds the operation (the verdict's Monte
Carlo gauge simulates it, oracles/verdict.py `perturbed_outputs`):
  "result"  its result, correctly or nearly: off by ~u relative to itself (default)
  "sums"    backward stable: the exact result of operands each off by ~u, then
            rounded; a sum that cancels turns that into a large relative error
  "exact"   no rounding at all (moving or negating numbers)
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import rule_ops as F
from . import shapes


@dataclass(frozen=True)
class Op:
    name: str
    arity: int | None                     # None: any number of operands (concat)
    shape: Callable                       # (*shapes, **attrs) -> shape, or ShapeError
    forward: Callable | None = None       # (*values, **attrs) -> value
    vjp: Callable | None = None           # (g, ans, *values, **attrs) -> gradient per operand
    jvp: Callable | None = None           # (tangents, ans, *values, **attrs) -> tangent of result
    compose: Callable | None = None       # derived ops: (*nodes, **attrs) -> node, from primitives
    domain: Callable | tuple = ("real",)  # per operand, the last one repeating; or attrs -> that
    kinks: tuple = ()                     # inputs where the derivative jumps
    convention: str = ""                  # mflow's derivative at a kink, and torch / JAX's
    rounding: str = "result"              # "result", "sums" or "exact" (see above)
    attrs: dict = field(default_factory=dict)  # attribute names and their defaults
    drawn: dict = field(default_factory=dict)  # attribute -> the values fuzzing draws, simplest
    #   first (None: drawn to fit the operand's shape, as getitem's indices are)
    arities: tuple = ()                   # for arity None: the operand counts fuzzing draws

    def domains(self, n, attrs=None):
        """The domain of each of n operands."""
        d = self.domain(**(attrs or {})) if callable(self.domain) else self.domain
        return tuple(d[min(i, len(d) - 1)] for i in range(n))

    def complete(self, attrs):
        """`attrs` with this operation's defaults filled in: the one place defaults apply."""
        if not self.attrs or len(attrs) == len(self.attrs):
            return attrs
        return {**self.attrs, **attrs}


OPS: dict[str, Op] = {}


def defop(name, arity, shape, **kw):
    op = OPS[name] = Op(name, arity, shape, **kw)
    assert set(op.drawn) == set(op.attrs), f"{name}: every attribute says how it is drawn"
    assert op.compose or (op.vjp and op.jvp), f"{name}: a primitive has a VJP and a JVP rule"


# --- element-wise, two operands (broadcasting) --------------------------------

defop("add", 2, shapes.broadcast, domain=("real", "real"),
      forward=np.add, vjp=lambda g, ans, a, b: (g, g), jvp=lambda t, ans, a, b: t[0] + t[1])
defop("sub", 2, shapes.broadcast, domain=("real", "real"),
      compose=lambda a, b: a + (-b))  # exact: x - y == x + (-y) in IEEE arithmetic
defop("mul", 2, shapes.broadcast, domain=("real", "real"),
      forward=np.multiply, vjp=lambda g, ans, a, b: (g * b, g * a),
      jvp=lambda t, ans, a, b: t[0] * b + a * t[1])
defop("div", 2, shapes.broadcast, domain=("real", "nonzero"),
      forward=np.divide, vjp=lambda g, ans, a, b: (g / b, -g * ans / b),
      jvp=lambda t, ans, a, b: (t[0] - ans * t[1]) / b)  # d(a/b) = (da - (a/b) db) / b

# --- element-wise, one operand -------------------------------------------------


def _pow_domain(p):
    if float(p).is_integer():
        return ("real",) if p >= 0 else ("nonzero",)
    return ("positive",)


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows; sigmoid(-|x|) = e / (1 + e)
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


defop("neg", 1, shapes.same, rounding="exact", forward=np.negative, vjp=lambda g, ans, x: (-g,),
      jvp=lambda t, ans, x: -t[0])
defop("pow", 1, shapes.pow, attrs={"p": 2}, drawn={"p": (2, 3, -1, 0.5, 1.5, -2.5)},
      domain=_pow_domain,
      forward=lambda x, p: x ** p,
      # d(x⁰)/dx = 0 everywhere, x = 0 included (as torch): not 0 · 0⁻¹ = NaN
      vjp=lambda g, ans, x, p: (g * p * x ** (p - 1) if p != 0 else F.zeros(x),),
      jvp=lambda t, ans, x, p: t[0] * p * x ** (p - 1) if p != 0 else np.zeros_like(t[0] * x))
defop("relu", 1, shapes.same, kinks=(0.0,),
      convention="relu'(0) = 0 in mflow, torch and JAX",
      forward=lambda x: np.maximum(x, 0),
      vjp=lambda g, ans, x: (g * F.positive(x),), jvp=lambda t, ans, x: t[0] * (x > 0))
defop("exp", 1, shapes.same, domain=("bounded",),
      forward=np.exp, vjp=lambda g, ans, x: (g * ans,), jvp=lambda t, ans, x: t[0] * ans)
defop("log", 1, shapes.same, domain=("positive",),
      forward=np.log, vjp=lambda g, ans, x: (g / x,), jvp=lambda t, ans, x: t[0] / x)
defop("tanh", 1, shapes.same,
      forward=np.tanh, vjp=lambda g, ans, x: (g * (1 - ans * ans),),
      jvp=lambda t, ans, x: t[0] * (1 - ans * ans))
defop("sigmoid", 1, shapes.same,
      forward=_sigmoid, vjp=lambda g, ans, x: (g * ans * (1 - ans),),
      jvp=lambda t, ans, x: t[0] * ans * (1 - ans))
defop("sin", 1, shapes.same, forward=np.sin, vjp=lambda g, ans, x: (g * F.cos(x),),
      jvp=lambda t, ans, x: t[0] * np.cos(x))
defop("cos", 1, shapes.same, forward=np.cos, vjp=lambda g, ans, x: (-g * F.sin(x),),
      jvp=lambda t, ans, x: -t[0] * np.sin(x))

# --- matrix structure ----------------------------------------------------------


# dY = dA B + A dB  =>  G_A = G Bᵀ, G_B = Aᵀ G
defop("matmul", 2, shapes.matmul, domain=("real", "real"), rounding="sums",
      forward=np.matmul, vjp=lambda g, ans, a, b: (g @ b.T, a.T @ g),
      jvp=lambda t, ans, a, b: t[0] @ b + a @ t[1])
defop("transpose", 1, shapes.transpose, rounding="exact",
      forward=np.transpose, vjp=lambda g, ans, x: (g.T,), jvp=lambda t, ans, x: t[0].T)
defop("sum", 1, shapes.reduce, attrs={"axis": None}, drawn={"axis": (None, 0, 1)},
      rounding="sums",
      forward=lambda x, axis: np.add.reduce(x, axis=axis, keepdims=True),
      vjp=lambda g, ans, x, axis: (F.spread(g, x.shape),),
      jvp=lambda t, ans, x, axis: np.add.reduce(t[0], axis=axis, keepdims=True))
defop("mean", 1, shapes.reduce, attrs={"axis": None}, drawn={"axis": (None, 0, 1)},
      rounding="sums",
      compose=lambda x, axis: x.sum(axis) / (x.value.size if axis is None else x.shape[axis]))


def _concat_vjp(g, ans, *xs, axis):
    ends = np.cumsum([x.shape[axis] for x in xs])
    return tuple(g[a:b] if axis == 0 else g[:, a:b] for a, b in zip([0, *ends[:-1]], ends))


defop("concat", None, shapes.concat, attrs={"axis": 0}, drawn={"axis": (0, 1)}, arities=(1, 2, 3),
      rounding="exact",
      forward=lambda *xs, axis: np.concatenate(xs, axis=axis), vjp=_concat_vjp,
      jvp=lambda t, ans, *xs, axis: np.concatenate(t, axis=axis))


# attrs are those of `shapes.normalise_index`: a slice or a tuple of ints per axis
defop("getitem", 1, shapes.getitem, attrs={"rows": slice(None), "cols": slice(None)},
      drawn={"rows": None, "cols": None}, rounding="exact",
      forward=lambda x, rows, cols: F.gather(x, rows, cols),
      # a repeated index gets every use: added, not assigned
      vjp=lambda g, ans, x, rows, cols: (F.scatter(g, x.shape, rows, cols),),
      jvp=lambda t, ans, x, rows, cols: F.gather(t[0], rows, cols))

# getitem's transpose, for differentiable gradients only (rule_ops.scatter on Nodes): not
# in OPS, so never drawn nor compared on its own; getitem's second order goes through it.
SCATTER = Op("scatter", 1, lambda x, shape, rows, cols: tuple(shape), rounding="exact",
             forward=lambda x, shape, rows, cols: F.scatter(x, shape, rows, cols),
             vjp=lambda g, ans, x, shape, rows, cols: (F.gather(g, rows, cols),),
             jvp=lambda t, ans, x, shape, rows, cols: F.scatter(t[0], shape, rows, cols))

# --- softmax -------------------------------------------------------------------


# ufunc.reduce rather than np.max / np.sum: the same result, without their Python wrapper
_max, _sum = np.maximum.reduce, np.add.reduce


def _log_softmax(x, axis):
    s = x - _max(x, axis=axis, keepdims=True)  # shift: exp never overflows
    return s - np.log(_sum(np.exp(s), axis=axis, keepdims=True))


def _softmax(x, axis):
    e = np.exp(x - _max(x, axis=axis, keepdims=True))
    return e / _sum(e, axis=axis, keepdims=True)


# dY = diag(Y) dX - Y Yᵀ dX (per row)  =>  G_X = Y ⊙ (G - Σ G ⊙ Y)
defop("softmax", 1, shapes.softmax, attrs={"axis": 1}, drawn={"axis": (1, 0)}, domain=("wide",),
      rounding="sums", forward=_softmax,
      vjp=lambda g, ans, x, axis: (ans * (g - F.sum(g * ans, axis)),),
      jvp=lambda t, ans, x, axis: ans * (t[0] - _sum(ans * t[0], axis=axis, keepdims=True)))
# dY = dX - softmax(X) Σ dX  =>  G_X = G - softmax(X) Σ G
defop("log_softmax", 1, shapes.softmax, attrs={"axis": 1}, drawn={"axis": (1, 0)},
      domain=("wide",), rounding="sums", forward=_log_softmax,
      vjp=lambda g, ans, x, axis: (g - F.exp(ans) * F.sum(g, axis),),
      jvp=lambda t, ans, x, axis: t[0] - _sum(np.exp(ans) * t[0], axis=axis, keepdims=True))

# --- square matrices -----------------------------------------------------------

# d tr(X) = tr(I dX)  =>  G_X = g I
defop("trace", 1, shapes.scalar_of_square, rounding="sums",
      forward=lambda x: np.trace(x).reshape(1, 1).astype(x.dtype, copy=False),
      vjp=lambda g, ans, x: (g * F.eye(x.shape[0], x),),
      jvp=lambda t, ans, x: np.trace(t[0]).reshape(1, 1).astype(ans.dtype, copy=False))
# dY = -Y dX Y  =>  G_X = -Yᵀ G Yᵀ
defop("inv", 1, shapes.square, domain=("invertible",), rounding="sums",
      forward=np.linalg.inv, vjp=lambda g, ans, x: (-ans.T @ g @ ans.T,),
      jvp=lambda t, ans, x: -ans @ t[0] @ ans)


# d det X = tr(adj X dX)  =>  G_X = g adj(X)ᵀ  (= g det X X⁻ᵀ where X is invertible;
# at singular X JAX agrees; torch 2.13 returns 0 where the rank is n - 1 ≥ 1: pytorch#104675)
defop("det", 1, shapes.scalar_of_square, domain=("invertible",), rounding="sums",
      forward=lambda x: np.linalg.det(x).reshape(1, 1).astype(x.dtype, copy=False),
      vjp=lambda g, ans, x: (g * F.adjugate(x).T,),
      # d det X = tr(adj X dX) = Σ (adj X)ᵀ ⊙ dX
      jvp=lambda t, ans, x: np.sum(F.adjugate(x).T * t[0]).reshape(1, 1).astype(ans.dtype))

# --- convolution ---------------------------------------------------------------


def _pad(x, kernel_shape, padding):
    if padding == "valid":
        return x
    (ph, pw) = (kernel_shape[0] - 1, kernel_shape[1] - 1)  # torch and JAX put the odd one after
    return np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))


def _windows(image, kernel, stride, padding):
    return sliding_window_view(_pad(image, kernel.shape, padding), kernel.shape)[::stride, ::stride]


def _conv2d(image, kernel, stride, padding):
    return np.tensordot(_windows(image, kernel, stride, padding), kernel, axes=2)


# Y[i,j] = Σ_kl P[s i + k, s j + l] K[k,l] (P the padded image). With D the cotangent
# dilated by the stride (D[s i, s j] = G[i, j], zeros between):
#   G_K[k,l] = Σ_ij G[i,j] P[s i + k, s j + l] = (P ⋆ D)[k, l], a correlation cropped to K;
#   G_P[m,n] = Σ_ij G[i,j] K[m - s i, n - s j] = the full convolution of D with K, i.e.
#   D padded by K's size - 1 on every side, correlated with K flipped.
# Written with F, so the same rule is differentiable again (it is bilinear in G and K).
def _conv2d_vjp(g, ans, image, kernel, stride, padding):
    (H, W), (kh, kw), (h, w) = image.shape, kernel.shape, g.shape
    top, left = ((kh - 1) // 2, (kw - 1) // 2) if padding == "same" else (0, 0)
    padded = image if padding == "valid" else F.scatter(
        image, (H + kh - 1, W + kw - 1), slice(top, top + H, 1), slice(left, left + W, 1))
    dh, dw = stride * (h - 1) + 1, stride * (w - 1) + 1
    dilated = g if stride == 1 else F.scatter(g, (dh, dw), slice(0, dh, stride),
                                              slice(0, dw, stride))
    gk = F.conv2d(padded, dilated)[:kh, :kw]
    framed = F.scatter(g, (dh + 2 * (kh - 1), dw + 2 * (kw - 1)),
                       slice(kh - 1, kh - 1 + dh, stride), slice(kw - 1, kw - 1 + dw, stride))
    gp = F.conv2d(framed, kernel[::-1, ::-1])  # rows of P past s (h - 1) + kh get nothing
    gi = gp[top:top + H, left:left + W]
    if gi.shape != (H, W):  # a stride that leaves the image's last rows or columns unread
        gi = F.scatter(gi, (H, W), slice(0, gi.shape[0], 1), slice(0, gi.shape[1], 1))
    return gi, gk


defop("conv2d", 2, shapes.conv2d, attrs={"stride": 1, "padding": "valid"},
      drawn={"stride": (1, 2, 3), "padding": ("valid", "same")},
      domain=("real", "real"), rounding="sums", forward=_conv2d, vjp=_conv2d_vjp,
      # bilinear: dY = conv(dI, K) + conv(I, dK)
      jvp=lambda t, ans, image, kernel, stride, padding:
          _conv2d(t[0], kernel, stride, padding) + _conv2d(image, t[1], stride, padding))
