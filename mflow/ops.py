"""The engine's table: one entry per operation, all mflow knows about it.

Each entry has its forward, its vector-Jacobian product, its JVP and its shape rule
(mflow.shapes), and the defaults of its attributes; a derived operation says how it
is composed of primitives instead. What the suite knows about an operation (its
domain, kinks and conventions, how it rounds, what fuzzing draws, its references in
torch, JAX and numpy) is the suite's: mflow.oracles.catalogue, one record each.

A VJP rule takes (F, g, ans, *operands, **attrs): F the namespace it runs on (rule_ops:
ARRAYS for the backward pass, NODES below under mflow.grad(create_graph=True), so the
same rule builds a gradient that can be differentiated again), g the cotangent of the
result and ans the result itself; it returns one gradient per operand, in the
broadcast shape (node.unbroadcast sums them back, in one place). A JVP rule takes
(t, ans, *operands, **attrs), t the tuple of the operands' tangents, and returns the
tangent of the result: dY itself, read off the same differential (the VJP is its
transpose). Each is derived from the matrix differential: with Y = f(X) and
dL = tr(Gᵀ dY), move dX to the right to read off dL = tr(G_Xᵀ dX).
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import rule_ops, shapes
from .node import Op
from .node import apply as _apply_op

OPS: dict[str, Op] = {}


def defop(name, arity, shape, **kw):
    op = OPS[name] = Op(name, arity, shape, **kw)
    assert op.compose or (op.vjp and op.jvp), f"{name}: a primitive has a VJP and a JVP rule"
    return op


def apply(op, *operands, **attrs):
    """Apply an operation of the table, by name or as an Op, to operands (Nodes, arrays
    or numbers): mflow.apply."""
    if type(op) is not Op:
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}; mflow has {', '.join(sorted(OPS))}")
        op = OPS[op]  # looked up per call: a patched entry (a planted bug) is seen everywhere
    return _apply_op(op, *operands, **attrs)


# --- element-wise, two operands (broadcasting) --------------------------------

defop("add", 2, shapes.broadcast,
      forward=np.add, vjp=lambda F, g, ans, a, b: (g, g), jvp=lambda t, ans, a, b: t[0] + t[1])
defop("sub", 2, shapes.broadcast,
      compose=lambda a, b: a + (-b))  # exact: x - y == x + (-y) in IEEE arithmetic
defop("mul", 2, shapes.broadcast,
      forward=np.multiply, vjp=lambda F, g, ans, a, b: (g * b, g * a),
      jvp=lambda t, ans, a, b: t[0] * b + a * t[1])
defop("div", 2, shapes.broadcast,
      forward=np.divide, vjp=lambda F, g, ans, a, b: (g / b, -g * ans / b),
      jvp=lambda t, ans, a, b: (t[0] - ans * t[1]) / b)  # d(a/b) = (da - (a/b) db) / b

# --- element-wise, one operand -------------------------------------------------


defop("neg", 1, shapes.same, forward=np.negative, vjp=lambda F, g, ans, x: (-g,),
      jvp=lambda t, ans, x: -t[0])
defop("pow", 1, shapes.pow, attrs={"p": 2},
      forward=lambda x, p: x ** p,
      # d(x⁰)/dx = 0 everywhere, x = 0 included (as torch): not 0 · 0⁻¹ = NaN
      vjp=lambda F, g, ans, x, p: (g * p * x ** (p - 1) if p != 0 else F.zeros(x),),
      jvp=lambda t, ans, x, p: t[0] * p * x ** (p - 1) if p != 0 else np.zeros_like(t[0] * x))
# relu'(0) = 0, as in torch and JAX (the catalogue records the references' conventions)
defop("relu", 1, shapes.same,
      forward=lambda x: np.maximum(x, 0),
      vjp=lambda F, g, ans, x: (g * F.positive(x),), jvp=lambda t, ans, x: t[0] * (x > 0))
defop("exp", 1, shapes.same,
      forward=np.exp, vjp=lambda F, g, ans, x: (g * ans,), jvp=lambda t, ans, x: t[0] * ans)
defop("log", 1, shapes.same,
      forward=np.log, vjp=lambda F, g, ans, x: (g / x,), jvp=lambda t, ans, x: t[0] / x)
defop("tanh", 1, shapes.same,
      forward=np.tanh, vjp=lambda F, g, ans, x: (g * (1 - ans * ans),),
      jvp=lambda t, ans, x: t[0] * (1 - ans * ans))
defop("sigmoid", 1, shapes.same,
      forward=rule_ops.sigmoid, vjp=lambda F, g, ans, x: (g * ans * (1 - ans),),
      jvp=lambda t, ans, x: t[0] * ans * (1 - ans))
defop("sin", 1, shapes.same, forward=np.sin, vjp=lambda F, g, ans, x: (g * F.cos(x),),
      jvp=lambda t, ans, x: t[0] * np.cos(x))
defop("cos", 1, shapes.same, forward=np.cos, vjp=lambda F, g, ans, x: (-g * F.sin(x),),
      jvp=lambda t, ans, x: -t[0] * np.sin(x))

_ERF = 2 / np.pi ** 0.5  # erf'(x) = 2/√π exp(-x²); a Python float keeps float32 float32
_erf = np.vectorize(math.erf, otypes=[np.float64])  # exact to float64's rounding


# |x|'(0) = sign(0) = 0, as torch (JAX says 1): the catalogue records both conventions
defop("abs", 1, shapes.same, forward=np.abs, vjp=lambda F, g, ans, x: (g * F.sign(x),),
      jvp=lambda t, ans, x: t[0] * np.sign(x))
defop("sqrt", 1, shapes.same, forward=np.sqrt, vjp=lambda F, g, ans, x: (g / (2 * ans),),
      jvp=lambda t, ans, x: t[0] / (2 * ans))
defop("log1p", 1, shapes.same, forward=np.log1p, vjp=lambda F, g, ans, x: (g / (1 + x),),
      jvp=lambda t, ans, x: t[0] / (1 + x))
defop("expm1", 1, shapes.same, forward=np.expm1, vjp=lambda F, g, ans, x: (g * (ans + 1),),
      jvp=lambda t, ans, x: t[0] * (ans + 1))
# log(1 + eˣ) = logaddexp(x, 0): no overflow, and exact past torch's threshold of 20
defop("softplus", 1, shapes.same, forward=lambda x: np.logaddexp(x, 0),
      vjp=lambda F, g, ans, x: (g * F.sigmoid(x),),
      jvp=lambda t, ans, x: t[0] * rule_ops.sigmoid(x))
defop("erf", 1, shapes.same, forward=lambda x: _erf(x).astype(x.dtype, copy=False),
      vjp=lambda F, g, ans, x: (g * _ERF * F.exp(-(x * x)),),
      jvp=lambda t, ans, x: t[0] * _ERF * np.exp(-(x * x)))


# --- operations that choose: each derivative a constant 0/1 (or shared) mask ----------
# (F.constant: the operands' values, through which no derivative flows)

def _share(a, b):  # 1 where a is chosen, 1/2 where a = b (torch's and JAX's convention)
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0)).astype(np.result_type(a, b))


def _within(x, lo, hi):  # the bounds inclusive, as torch (JAX: 1/2 there)
    return ((x >= lo) & (x <= hi)).astype(x.dtype)


defop("clip", 1, shapes.clip, attrs={"lo": -1.0, "hi": 1.0},
      forward=lambda x, lo, hi: np.clip(x, lo, hi),
      vjp=lambda F, g, ans, x, lo, hi: (g * _within(F.constant(x), lo, hi),),
      jvp=lambda t, ans, x, lo, hi: t[0] * _within(x, lo, hi))


def _maximum_vjp(F, g, ans, a, b):
    w = _share(F.constant(a), F.constant(b))
    return g * w, g * (1 - w)


def _minimum_vjp(F, g, ans, a, b):
    w = _share(F.constant(b), F.constant(a))  # a is chosen where b > a
    return g * w, g * (1 - w)


defop("maximum", 2, shapes.broadcast, forward=np.maximum, vjp=_maximum_vjp,
      jvp=lambda t, ans, a, b: t[0] * _share(a, b) + t[1] * (1 - _share(a, b)))
defop("minimum", 2, shapes.broadcast, forward=np.minimum, vjp=_minimum_vjp,
      jvp=lambda t, ans, a, b: t[0] * _share(b, a) + t[1] * (1 - _share(b, a)))


def _mask(mask, dtype):
    return np.asarray(mask, dtype)


defop("where", 2, shapes.where, attrs={"mask": None},
      forward=lambda a, b, mask: np.where(np.asarray(mask, bool), a, b),
      vjp=lambda F, g, ans, a, b, mask: (g * _mask(mask, g.dtype), g * (1 - _mask(mask, g.dtype))),
      jvp=lambda t, ans, a, b, mask: np.where(np.asarray(mask, bool), t[0], t[1]))

# --- matrix structure ----------------------------------------------------------


# dY = dA B + A dB  =>  G_A = G Bᵀ, G_B = Aᵀ G
defop("matmul", 2, shapes.matmul,
      forward=np.matmul, vjp=lambda F, g, ans, a, b: (g @ b.T, a.T @ g),
      jvp=lambda t, ans, a, b: t[0] @ b + a @ t[1])
defop("transpose", 1, shapes.transpose,
      forward=np.transpose, vjp=lambda F, g, ans, x: (g.T,), jvp=lambda t, ans, x: t[0].T)
defop("sum", 1, shapes.reduce, attrs={"axis": None},
      forward=lambda x, axis: np.add.reduce(x, axis=axis, keepdims=True),
      vjp=lambda F, g, ans, x, axis: (F.spread(g, x.shape),),
      jvp=lambda t, ans, x, axis: np.add.reduce(t[0], axis=axis, keepdims=True))
defop("mean", 1, shapes.reduce, attrs={"axis": None},
      compose=lambda x, axis: x.sum(axis) / (x.value.size if axis is None else x.shape[axis]))


def _concat_vjp(F, g, ans, *xs, axis):
    ends = np.cumsum([x.shape[axis] for x in xs])
    return tuple(g[a:b] if axis == 0 else g[:, a:b] for a, b in zip([0, *ends[:-1]], ends))


defop("concat", None, shapes.concat, attrs={"axis": 0},
      forward=lambda *xs, axis: np.concatenate(xs, axis=axis), vjp=_concat_vjp,
      jvp=lambda t, ans, *xs, axis: np.concatenate(t, axis=axis))


# attrs are those of `shapes.normalise_index`: a slice or a tuple of ints per axis
defop("getitem", 1, shapes.getitem, attrs={"rows": slice(None), "cols": slice(None)},
      forward=lambda x, rows, cols: rule_ops.gather(x, rows, cols),
      # a repeated index gets every use: added, not assigned
      vjp=lambda F, g, ans, x, rows, cols: (F.scatter(g, x.shape, rows, cols),),
      jvp=lambda t, ans, x, rows, cols: rule_ops.gather(t[0], rows, cols))

# getitem's transpose, for differentiable gradients only (NODES.scatter): not in OPS, so
# never drawn nor compared on its own; getitem's second order goes through it.
SCATTER = Op("scatter", 1, lambda x, shape, rows, cols: tuple(shape),
             forward=lambda x, shape, rows, cols: rule_ops.scatter(x, shape, rows, cols),
             vjp=lambda F, g, ans, x, shape, rows, cols: (F.gather(g, rows, cols),),
             jvp=lambda t, ans, x, shape, rows, cols: rule_ops.scatter(t[0], shape, rows, cols))


# --- reductions (axis None, 0 or 1, keeping two axes) ----------------------------

def _count(x, axis):
    return x.shape[0] * x.shape[1] if axis is None else x.shape[axis]


def _logsumexp(x, axis):
    m = _max(x, axis=axis, keepdims=True)  # shift: exp never overflows
    return m + np.log(_sum(np.exp(x - m), axis=axis, keepdims=True))


# d lse = Σ softmax(X) ⊙ dX  =>  G_X = G exp(X - lse)
defop("logsumexp", 1, shapes.reduce, attrs={"axis": None}, forward=_logsumexp,
      vjp=lambda F, g, ans, x, axis: (g * F.exp(x - ans),),
      jvp=lambda t, ans, x, axis: _sum(t[0] * np.exp(x - ans), axis=axis, keepdims=True))
def _shifted(F, x, axis):
    """x moved one place along `axis`, a 1 coming in at the front: the exclusive
    running product is cumprod of it."""
    m, n = x.shape
    if (m, n)[axis] == 1:
        return np.ones(x.shape, x.dtype)
    rows, cols = (slice(0, m - 1, 1), slice(0, n, 1)) if axis == 0 else \
        (slice(0, m, 1), slice(0, n - 1, 1))
    into = (slice(1, m, 1), cols) if axis == 0 else (rows, slice(1, n, 1))
    front = np.zeros(x.shape, x.dtype)
    front[(0, slice(None)) if axis == 0 else (slice(None), 0)] = 1
    return F.scatter(x[rows, cols], x.shape, *into) + front


def _others(F, x, axis):
    """Π_{j≠i} x_j along `axis` at each i, without a division (an operand may be 0):
    the product of those before i times the product of those after."""
    before = F.cumprod(_shifted(F, x, axis), axis)
    after = F.flip(F.cumprod(_shifted(F, F.flip(x, axis), axis), axis), axis)
    return before * after


def _prod_others(F, x, axis):
    """∂ Π / ∂xᵢ: along one axis, or over all as the product of the others in xᵢ's row
    times that of the other rows' products (slices of at most a side, not of m n).
    In a slice holding three zeros or more, every first and second derivative keeps a
    zero factor: exactly 0, made so on a slice of ones rather than by forming the
    products of the others, which in float32 can overflow before they meet the zero
    (inf · 0 = NaN where the answer, torch's too, is 0). Exact through second order,
    the highest mflow.hvp takes."""
    v = F.constant(x)
    dead = np.add.reduce(v == 0, axis=axis, keepdims=True) >= 3
    if dead.any():
        live = np.broadcast_to(~dead, v.shape).astype(v.dtype)
        return _prod_others(F, x * live + (1 - live), axis) * live
    if axis is not None:
        return _others(F, x, axis)
    return _others(F, x, 1) * _others(F, F.prod(x, 1), 0)


# d Π = Σ (Π_{j≠i} xⱼ) dxᵢ: no division, so exact zeros are in the domain (one zero: its
# own derivative the product of the others, the rest 0; two: all 0), as torch's
defop("prod", 1, shapes.reduce, attrs={"axis": None},
      forward=lambda x, axis: np.multiply.reduce(x, axis=axis, keepdims=True),
      vjp=lambda F, g, ans, x, axis: (g * _prod_others(F, x, axis),),
      jvp=lambda t, ans, x, axis: _sum(t[0] * _prod_others(rule_ops.ARRAYS, x, axis),
                                       axis=axis, keepdims=True))


def _var_vjp(F, g, ans, x, axis):
    n = _count(x, axis)
    return (g * (2 / n) * (x - F.sum(x, axis) / n),)


def _centred(x, axis):
    return x - np.mean(x, axis=axis, keepdims=True)


# population variance: d var = (2 / N) Σ (x - mean) dx = (2 / N) Σ (x - mean)(dx - mean dx),
# the second form in the JVP: an error δ in the rounded mean then cancels to first order
# (in the first, δ Σ dx; in bfloat16, of a large-mean x, the whole answer)
defop("var", 1, shapes.reduce, attrs={"axis": None},
      forward=lambda x, axis: np.var(x, axis=axis, keepdims=True), vjp=_var_vjp,
      jvp=lambda t, ans, x, axis: _sum(_centred(x, axis) * _centred(t[0], axis), axis=axis,
                                       keepdims=True) * (2 / _count(x, axis)))
def _norm(x, axis):
    """sqrt(Σ x²), scaled by the largest |x| first (as LAPACK's nrm2): x² of a float16
    x past 256 overflows where the norm does not."""
    scale = _max(np.abs(x), axis=axis, keepdims=True)
    safe = np.where((scale > 0) & np.isfinite(scale), scale, 1).astype(x.dtype)
    out = safe * np.sqrt(_sum(np.square(x / safe), axis=axis, keepdims=True))
    return np.where(np.isfinite(scale), out, scale)  # an inf (or NaN) entry: inf (NaN)


# Frobenius (axis None) or per row/column: d |x| = Σ x dx / |x|
defop("norm", 1, shapes.reduce, attrs={"axis": None}, forward=_norm,
      vjp=lambda F, g, ans, x, axis: (g * (x / ans),),
      jvp=lambda t, ans, x, axis: _sum(x / ans * t[0], axis=axis, keepdims=True))


def _chosen(x, ans, axis):  # the maxima (or minima) of each slice share 1 evenly, as torch's
    hit = x == ans          # amax and JAX's max
    return (hit / np.add.reduce(hit, axis=axis, keepdims=True)).astype(x.dtype)


defop("max", 1, shapes.reduce, attrs={"axis": None},
      forward=lambda x, axis: _max(x, axis=axis, keepdims=True),
      vjp=lambda F, g, ans, x, axis: (g * _chosen(F.constant(x), F.constant(ans), axis),),
      jvp=lambda t, ans, x, axis: _sum(t[0] * _chosen(x, ans, axis), axis=axis, keepdims=True))
defop("min", 1, shapes.reduce, attrs={"axis": None},
      forward=lambda x, axis: np.minimum.reduce(x, axis=axis, keepdims=True),
      vjp=lambda F, g, ans, x, axis: (g * _chosen(F.constant(x), F.constant(ans), axis),),
      jvp=lambda t, ans, x, axis: _sum(t[0] * _chosen(x, ans, axis), axis=axis, keepdims=True))

# --- pooling --------------------------------------------------------------------


def _pool_windows(x, size, stride):  # (windows, size²), row-major
    w = sliding_window_view(x, (size, size))[::stride, ::stride]
    return w.reshape(-1, size * size)


def _pool_selection(x, size, stride):
    """S with S x.flat = maxpool(x).flat: each window's first maximum (row-major), as
    torch and JAX choose at a tie. The VJP is Sᵀ g, linear in g."""
    wins = _pool_windows(x, size, stride)
    where = _pool_windows(np.arange(x.size).reshape(x.shape), size, stride)
    first = where[np.arange(len(wins)), np.argmax(wins, axis=1)]  # argmax: the first max
    S = np.zeros((len(wins), x.size), x.dtype)
    S[np.arange(len(wins)), first] = 1
    return S


def _maxpool2d(x, size, stride):
    return _pool_windows(x, size, stride).max(axis=1).reshape(
        shapes.maxpool2d(x.shape, size, stride))


def _maxpool2d_vjp(F, g, ans, x, size, stride):
    S = _pool_selection(F.constant(x), size, stride)
    return (F.reshape(S.T @ F.reshape(g, (-1, 1)), x.shape),)


defop("maxpool2d", 1, shapes.maxpool2d, attrs={"size": 2, "stride": 2}, forward=_maxpool2d,
      vjp=_maxpool2d_vjp,
      jvp=lambda t, ans, x, size, stride: (_pool_selection(x, size, stride)
                                           @ t[0].reshape(-1, 1)).reshape(ans.shape))

# --- scans ----------------------------------------------------------------------


def _cumsum_vjp(F, g, ans, x, axis):  # the transpose of a running sum: a reversed one
    return (F.flip(F.cumsum(F.flip(g, axis), axis), axis),)


defop("cumsum", 1, shapes.along, attrs={"axis": 0},
      forward=lambda x, axis: np.cumsum(x, axis=axis), vjp=_cumsum_vjp,
      jvp=lambda t, ans, x, axis: np.cumsum(t[0], axis=axis))
def _cumprod_vjp(F, g, ans, x, axis):
    """yₖ = Π_{i≤k} xᵢ  =>  G_xᵢ = (Π_{j<i} xⱼ) rᵢ, rᵢ = Σ_{k≥i} Gₖ Π_{i<j≤k} xⱼ: no
    division (an operand may be 0). Along rows (axis 1; axis 0 transposed): each row
    s repeated n times, so that row s n + i of C = cumprod(X, 1), X being the row with
    1 at places j ≤ i, holds Π_{i<j≤k} xⱼ at k > i; then rᵢ = Σ_{k≥i} Cᵢₖ Gₖ."""
    if axis == 0:
        return (_cumprod_vjp(F, g.T, ans.T, x.T, 1)[0].T,)
    m, n = x.shape
    rows = tuple(s for s in range(m) for _ in range(n))
    i = np.tile(np.arange(n), m)[:, None]
    later = (np.arange(n)[None, :] > i).astype(x.dtype)
    C = F.cumprod(F.gather(x, rows, slice(0, n, 1)) * later + (1 - later), 1)
    r = F.sum(C * (later + (np.arange(n)[None, :] == i)) * F.gather(g, rows, slice(0, n, 1)), 1)
    return (F.cumprod(_shifted(F, x, 1), 1) * F.reshape(r, (m, n)),)


def _cumprod_jvp(t, ans, x, axis):
    """dyₖ = dyₖ₋₁ xₖ + yₖ₋₁ tₖ, along the axis: no division."""
    x, t, ans = (np.swapaxes(v, 0, axis) for v in (x, t[0], ans))
    out = np.empty_like(t)
    out[0] = t[0]
    for k in range(1, len(x)):
        out[k] = out[k - 1] * x[k] + ans[k - 1] * t[k]
    return np.swapaxes(out, 0, axis)


defop("cumprod", 1, shapes.along, attrs={"axis": 0},
      forward=lambda x, axis: np.cumprod(x, axis=axis), vjp=_cumprod_vjp, jvp=_cumprod_jvp)

# --- movement: every rule's VJP is its transpose ------------------------------------

defop("reshape", 1, shapes.reshape, attrs={"shape": (1, -1)},
      forward=lambda x, shape: rule_ops.reshape(x, shape),
      vjp=lambda F, g, ans, x, shape: (F.reshape(g, x.shape),),
      jvp=lambda t, ans, x, shape: rule_ops.reshape(t[0], shape))
defop("flip", 1, shapes.along, attrs={"axis": 0},
      forward=lambda x, axis: rule_ops.flip(x, axis),
      vjp=lambda F, g, ans, x, axis: (F.flip(g, axis),),
      jvp=lambda t, ans, x, axis: rule_ops.flip(t[0], axis))


def _pad_zeros(x, widths):
    top, bottom, left, right = widths
    return np.pad(x, ((top, bottom), (left, right)))


def _inside(x, widths):  # where pad put the operand: its VJP reads it back
    top, _, left, _ = widths
    return slice(top, top + x.shape[0], 1), slice(left, left + x.shape[1], 1)


defop("pad", 1, shapes.pad, attrs={"widths": (0, 1, 0, 1)}, forward=_pad_zeros,
      vjp=lambda F, g, ans, x, widths: (F.gather(g, *_inside(x, widths)),),
      jvp=lambda t, ans, x, widths: _pad_zeros(t[0], widths))


def _tile_vjp(F, g, ans, x, reps):  # every copy's cotangent, added
    (m, n), total = x.shape, None
    for a in range(reps[0]):
        for b in range(reps[1]):
            block = F.gather(g, slice(a * m, (a + 1) * m, 1), slice(b * n, (b + 1) * n, 1))
            total = block if total is None else total + block
    return (total,)


defop("tile", 1, shapes.tile, attrs={"reps": (1, 2)}, forward=lambda x, reps: np.tile(x, reps),
      vjp=_tile_vjp, jvp=lambda t, ans, x, reps: np.tile(t[0], reps))


def _broadcast_to_vjp(F, g, ans, x, shape):  # summed over the axes it was spread along
    for axis in (0, 1):
        if x.shape[axis] == 1 and shape[axis] != 1:
            g = F.sum(g, axis)
    return (g,)


defop("broadcast_to", 1, shapes.broadcast_to, attrs={"shape": (4, 4)},
      forward=lambda x, shape: rule_ops.spread(x, shape), vjp=_broadcast_to_vjp,
      jvp=lambda t, ans, x, shape: rule_ops.spread(t[0], shape))
defop("tril", 1, shapes.triangle, attrs={"k": 0}, forward=lambda x, k: np.tril(x, k),
      vjp=lambda F, g, ans, x, k: (F.tril(g, k),), jvp=lambda t, ans, x, k: np.tril(t[0], k))
defop("triu", 1, shapes.triangle, attrs={"k": 0}, forward=lambda x, k: np.triu(x, k),
      vjp=lambda F, g, ans, x, k: (F.triu(g, k),), jvp=lambda t, ans, x, k: np.triu(t[0], k))

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
defop("softmax", 1, shapes.softmax, attrs={"axis": 1}, forward=_softmax,
      vjp=lambda F, g, ans, x, axis: (ans * (g - F.sum(g * ans, axis)),),
      jvp=lambda t, ans, x, axis: ans * (t[0] - _sum(ans * t[0], axis=axis, keepdims=True)))
# dY = dX - softmax(X) Σ dX  =>  G_X = G - softmax(X) Σ G
defop("log_softmax", 1, shapes.softmax, attrs={"axis": 1}, forward=_log_softmax,
      vjp=lambda F, g, ans, x, axis: (g - F.exp(ans) * F.sum(g, axis),),
      jvp=lambda t, ans, x, axis: t[0] - _sum(np.exp(ans) * t[0], axis=axis, keepdims=True))

# --- square matrices -----------------------------------------------------------

# d tr(X) = tr(I dX)  =>  G_X = g I
defop("trace", 1, shapes.scalar_of_square,
      forward=lambda x: np.trace(x).reshape(1, 1).astype(x.dtype, copy=False),
      vjp=lambda F, g, ans, x: (g * F.eye(x.shape[0], x),),
      jvp=lambda t, ans, x: np.trace(t[0]).reshape(1, 1).astype(ans.dtype, copy=False))
# dY = -Y dX Y  =>  G_X = -Yᵀ G Yᵀ
defop("inv", 1, shapes.square, half=False,
      forward=np.linalg.inv, vjp=lambda F, g, ans, x: (-ans.T @ g @ ans.T,),
      jvp=lambda t, ans, x: -ans @ t[0] @ ans)


# d det X = tr(adj X dX)  =>  G_X = g adj(X)ᵀ  (= g det X X⁻ᵀ where X is invertible;
# at singular X JAX agrees; torch 2.13 returns 0 where the rank is n - 1 ≥ 1: pytorch#104675)
defop("det", 1, shapes.scalar_of_square, half=False,
      forward=lambda x: np.linalg.det(x).reshape(1, 1).astype(x.dtype, copy=False),
      vjp=lambda F, g, ans, x: (g * F.adjugate(x).T,),
      # d det X = tr(adj X dX) = Σ (adj X)ᵀ ⊙ dX
      jvp=lambda t, ans, x: np.sum(rule_ops.adjugate(x).T * t[0]).reshape(1, 1)
      .astype(ans.dtype))

# X = A⁻¹ B: dX = A⁻¹ (dB - dA X)  =>  G_B = A⁻ᵀ G, G_A = -G_B Xᵀ
def _solve_vjp(F, g, ans, a, b):
    gb = F.solve(a.T, g)
    return -(gb @ ans.T), gb


defop("solve", 2, shapes.solve, half=False, forward=np.linalg.solve, vjp=_solve_vjp,
      jvp=lambda t, ans, a, b: np.linalg.solve(a, t[1] - t[0] @ ans))
# log |det X|: d = tr(X⁻¹ dX)  =>  G_X = g X⁻ᵀ
defop("logdet", 1, shapes.scalar_of_square, half=False,
      forward=lambda x: np.linalg.slogdet(x)[1].reshape(1, 1).astype(x.dtype, copy=False),
      vjp=lambda F, g, ans, x: (g * F.inv(x).T,),
      jvp=lambda t, ans, x: np.trace(np.linalg.solve(x, t[0])).reshape(1, 1)
      .astype(ans.dtype, copy=False))

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
def _conv2d_vjp(F, g, ans, image, kernel, stride, padding):
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
      forward=_conv2d, vjp=_conv2d_vjp,
      # bilinear: dY = conv(dI, K) + conv(I, dK)
      jvp=lambda t, ans, image, kernel, stride, padding:
          _conv2d(t[0], kernel, stride, padding) + _conv2d(image, t[1], stride, padding))


# --- the namespace of rules on Nodes ---------------------------------------------


class Nodes:
    """rule_ops.ARRAYS's names on Nodes, each an operation of this table, so that a rule
    run on Nodes builds a graph (mflow.grad with create_graph=True)."""

    @staticmethod
    def cos(x):
        return apply("cos", x)

    @staticmethod
    def sin(x):
        return apply("sin", x)

    @staticmethod
    def exp(x):
        return apply("exp", x)

    @staticmethod
    def sum(x, axis):  # noqa: A003 - the table's name for it
        return apply("sum", x, axis=axis)

    @staticmethod
    def conv2d(image, kernel):
        return apply("conv2d", image, kernel, stride=1, padding="valid")

    @staticmethod
    def spread(g, shape):
        """g + zeros (exact), whose VJP sums back what was spread."""
        return g + np.zeros(shape, g.dtype)

    @staticmethod
    def positive(x):
        """relu's derivative, a constant (its own derivative is 0 away from the kink)."""
        return (x.value > 0).astype(x.dtype)

    @staticmethod
    def eye(n, like):
        return np.eye(n, dtype=like.dtype)  # a constant array: Node * array lifts it

    @staticmethod
    def zeros(like):
        return np.zeros(like.shape, like.dtype)

    @staticmethod
    def scatter(x, shape, rows, cols):
        """The primitive SCATTER, whose VJP is getitem: each the other's transpose."""
        return apply(SCATTER, x, shape=tuple(shape), rows=rows, cols=cols)

    @staticmethod
    def gather(x, rows, cols):
        return apply("getitem", x, rows=rows, cols=cols)

    @staticmethod
    def adjugate(x):
        """det X · X⁻¹: differentiable where X is invertible (det's domain), not at a
        singular X."""
        return apply("det", x) * apply("inv", x)

    @staticmethod
    def constant(x):
        """x's value, as a constant: no derivative flows through it."""
        return x.value

    @staticmethod
    def sign(x):
        """abs's derivative, a constant (its own derivative is 0 away from the kink)."""
        return np.sign(x.value)

    @staticmethod
    def sigmoid(x):
        return apply("sigmoid", x)

    @staticmethod
    def flip(x, axis):
        return apply("flip", x, axis=axis)

    @staticmethod
    def cumsum(x, axis):
        return apply("cumsum", x, axis=axis)

    @staticmethod
    def cumprod(x, axis):
        return apply("cumprod", x, axis=axis)

    @staticmethod
    def prod(x, axis):
        return apply("prod", x, axis=axis)

    @staticmethod
    def reshape(x, shape):
        return apply("reshape", x, shape=tuple(shape))

    @staticmethod
    def tril(x, k):
        return apply("tril", x, k=k)

    @staticmethod
    def triu(x, k):
        return apply("triu", x, k=k)

    @staticmethod
    def inv(x):
        return apply("inv", x)

    @staticmethod
    def solve(a, b):
        return apply("solve", a, b)


NODES = Nodes()
