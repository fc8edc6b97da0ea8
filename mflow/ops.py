"""The table of operations: one entry holds all mflow knows about an operation.

Each entry has its forward, its vector-Jacobian product, its shape rule, the
domain its operands are drawn from, and its convention at kinks. Strategies,
oracles and tests read this table; adding an operation is one entry here plus
its counterparts in the oracles.

A VJP rule takes (g, ans, *operands, **attrs), where g is the cotangent of the
result and ans the result itself, and returns one gradient per operand. A JVP
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
      vjp=lambda g, ans, x, p: (g * p * x ** (p - 1) if p != 0 else np.zeros_like(g * x),),
      jvp=lambda t, ans, x, p: t[0] * p * x ** (p - 1) if p != 0 else np.zeros_like(t[0] * x))
defop("relu", 1, shapes.same, kinks=(0.0,),
      convention="relu'(0) = 0 in mflow, torch and JAX",
      forward=lambda x: np.maximum(x, 0),
      vjp=lambda g, ans, x: (g * (x > 0),), jvp=lambda t, ans, x: t[0] * (x > 0))
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
defop("sin", 1, shapes.same, forward=np.sin, vjp=lambda g, ans, x: (g * np.cos(x),),
      jvp=lambda t, ans, x: t[0] * np.cos(x))
defop("cos", 1, shapes.same, forward=np.cos, vjp=lambda g, ans, x: (-g * np.sin(x),),
      jvp=lambda t, ans, x: -t[0] * np.sin(x))

# --- matrix structure ----------------------------------------------------------


def _spread(g, shape):
    """g broadcast to shape, as a new array (np.broadcast_to is ten times slower here)."""
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out


# dY = dA B + A dB  =>  G_A = G Bᵀ, G_B = Aᵀ G
defop("matmul", 2, shapes.matmul, domain=("real", "real"), rounding="sums",
      forward=np.matmul, vjp=lambda g, ans, a, b: (g @ b.T, a.T @ g),
      jvp=lambda t, ans, a, b: t[0] @ b + a @ t[1])
defop("transpose", 1, shapes.transpose, rounding="exact",
      forward=np.transpose, vjp=lambda g, ans, x: (g.T,), jvp=lambda t, ans, x: t[0].T)
defop("sum", 1, shapes.reduce, attrs={"axis": None}, drawn={"axis": (None, 0, 1)},
      rounding="sums",
      forward=lambda x, axis: np.add.reduce(x, axis=axis, keepdims=True),
      vjp=lambda g, ans, x, axis: (_spread(g, x.shape),),
      jvp=lambda t, ans, x, axis: np.add.reduce(t[0], axis=axis, keepdims=True))
defop("mean", 1, shapes.reduce, attrs={"axis": None}, drawn={"axis": (None, 0, 1)},
      rounding="sums",
      compose=lambda x, axis: x.sum(axis) / (x.value.size if axis is None else x.shape[axis]))


def _concat_vjp(g, ans, *xs, axis):
    cuts = np.cumsum([x.shape[axis] for x in xs[:-1]])
    return tuple(np.split(g, cuts, axis=axis))


defop("concat", None, shapes.concat, attrs={"axis": 0}, drawn={"axis": (0, 1)}, arities=(1, 2, 3),
      rounding="exact",
      forward=lambda *xs, axis: np.concatenate(xs, axis=axis), vjp=_concat_vjp,
      jvp=lambda t, ans, *xs, axis: np.concatenate(t, axis=axis))


def _index(rows, cols):
    if isinstance(rows, slice) and isinstance(cols, slice):
        return rows, cols
    as_array = [np.arange(i.start, i.stop, i.step) if isinstance(i, slice) else np.array(i)
                for i in (rows, cols)]
    return np.ix_(*as_array)


def _getitem_vjp(g, ans, x, rows, cols):
    out = np.zeros(x.shape, dtype=g.dtype)
    if isinstance(rows, slice) and isinstance(cols, slice):
        out[rows, cols] = g
    else:
        np.add.at(out, _index(rows, cols), g)  # add, not assign: a repeated index gets every use
    return (out,)


# attrs are those of `shapes.normalise_index`: a slice or a tuple of ints per axis
defop("getitem", 1, shapes.getitem, attrs={"rows": slice(None), "cols": slice(None)},
      drawn={"rows": None, "cols": None}, rounding="exact",
      forward=lambda x, rows, cols: x[_index(rows, cols)], vjp=_getitem_vjp,
      jvp=lambda t, ans, x, rows, cols: t[0][_index(rows, cols)])

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
      vjp=lambda g, ans, x, axis: (ans * (g - _sum(g * ans, axis=axis, keepdims=True)),),
      jvp=lambda t, ans, x, axis: ans * (t[0] - _sum(ans * t[0], axis=axis, keepdims=True)))
# dY = dX - softmax(X) Σ dX  =>  G_X = G - softmax(X) Σ G
defop("log_softmax", 1, shapes.softmax, attrs={"axis": 1}, drawn={"axis": (1, 0)},
      domain=("wide",), rounding="sums", forward=_log_softmax,
      vjp=lambda g, ans, x, axis: (g - np.exp(ans) * _sum(g, axis=axis, keepdims=True),),
      jvp=lambda t, ans, x, axis: t[0] - _sum(np.exp(ans) * t[0], axis=axis, keepdims=True))

# --- square matrices -----------------------------------------------------------

# d tr(X) = tr(I dX)  =>  G_X = g I
defop("trace", 1, shapes.scalar_of_square, rounding="sums",
      forward=lambda x: np.trace(x).reshape(1, 1).astype(x.dtype, copy=False),
      vjp=lambda g, ans, x: (g[0, 0] * np.eye(x.shape[0], dtype=x.dtype),),
      jvp=lambda t, ans, x: np.trace(t[0]).reshape(1, 1).astype(ans.dtype, copy=False))
# dY = -Y dX Y  =>  G_X = -Yᵀ G Yᵀ
defop("inv", 1, shapes.square, domain=("invertible",), rounding="sums",
      forward=np.linalg.inv, vjp=lambda g, ans, x: (-ans.T @ g @ ans.T,),
      jvp=lambda t, ans, x: -ans @ t[0] @ ans)


def _adjugate(x):
    """adj X, so that X adj X = det X · I, singular X included (det X X⁻¹ is not):
    with X = U S Vᵀ, adj X = det U det V · V adj(S) Uᵀ, adj(S)ᵢᵢ = ∏_{j≠i} sⱼ,
    products on either side of i, no division (in float64, so that a float32
    partial product does not overflow where the entry itself is finite)."""
    if not np.all(np.isfinite(x)):  # the SVD would raise; NaN is the honest answer
        return np.full_like(x, np.nan)
    u, s, vt = np.linalg.svd(x.astype(np.float64, copy=False))
    one = np.ones(1)
    others = np.concatenate((one, np.cumprod(s[:-1]))) * np.concatenate(
        (np.cumprod(s[:0:-1])[::-1], one))
    adj = (np.linalg.det(u) * np.linalg.det(vt)) * (vt.T * others) @ u.T
    return adj.astype(x.dtype, copy=False)


# d det X = tr(adj X dX)  =>  G_X = g adj(X)ᵀ  (= g det X X⁻ᵀ where X is invertible;
# at singular X JAX agrees; torch 2.13 returns 0 where the rank is n - 1 ≥ 1: pytorch#104675)
defop("det", 1, shapes.scalar_of_square, domain=("invertible",), rounding="sums",
      forward=lambda x: np.linalg.det(x).reshape(1, 1).astype(x.dtype, copy=False),
      vjp=lambda g, ans, x: (g[0, 0] * _adjugate(x).T,),
      # d det X = tr(adj X dX) = Σ (adj X)ᵀ ⊙ dX
      jvp=lambda t, ans, x: np.sum(_adjugate(x).T * t[0]).reshape(1, 1).astype(ans.dtype))

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


# Y[i,j] = Σ_kl P[s i + k, s j + l] K[k,l] (P the padded image)
#   => G_K[k,l] = Σ_ij G[i,j] P[s i + k, s j + l];  G_P[s i + k, s j + l] += G[i,j] K[k,l]
def _conv2d_vjp(g, ans, image, kernel, stride, padding):
    gk = np.tensordot(g, _windows(image, kernel, stride, padding), axes=([0, 1], [0, 1]))
    padded = _pad(image, kernel.shape, padding)
    gp = np.zeros(padded.shape, dtype=np.result_type(g, kernel))
    h, w = g.shape
    for k in range(kernel.shape[0]):
        for l in range(kernel.shape[1]):
            gp[k:k + stride * h:stride, l:l + stride * w:stride] += g * kernel[k, l]
    if padding == "same":
        top, left = (kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2
        gp = gp[top:top + image.shape[0], left:left + image.shape[1]]
    return gp, gk


defop("conv2d", 2, shapes.conv2d, attrs={"stride": 1, "padding": "valid"},
      drawn={"stride": (1, 2, 3), "padding": ("valid", "same")},
      domain=("real", "real"), rounding="sums", forward=_conv2d, vjp=_conv2d_vjp,
      # bilinear: dY = conv(dI, K) + conv(I, dK)
      jvp=lambda t, ans, image, kernel, stride, padding:
          _conv2d(t[0], kernel, stride, padding) + _conv2d(image, t[1], stride, padding))
