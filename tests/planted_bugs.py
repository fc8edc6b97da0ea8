"""Planted bugs: each a wrong rule in an otherwise correct mflow, to prove the
suite catches what it claims to catch. `bug.planted()` is a context manager
that swaps one table entry (or the accumulation of fan-out) for the wrong one.
"""

import contextlib
import dataclasses
from dataclasses import dataclass
from unittest import mock

import numpy as np

import mflow.node
from mflow.ops import OPS


@dataclass(frozen=True)
class Bug:
    name: str
    op: str          # the operation the bug lives in ("" when it is not one operation's)
    what: str
    patch: dict      # {op name: {field: wrong function}}, or {"accumulate": function}
    dtype: str = "mixed"  # what the strategies draw to find it ("half": only half shows it)

    @contextlib.contextmanager
    def planted(self):
        with contextlib.ExitStack() as stack:
            for target, fields in self.patch.items():
                if target == "accumulate":
                    stack.enter_context(mock.patch.object(mflow.node, "accumulate", fields))
                elif target == "unbroadcast":
                    stack.enter_context(mock.patch.object(mflow.node, "unbroadcast", fields))
                elif target == "leaf":
                    from mflow.oracles.engine import MflowEngine
                    stack.enter_context(mock.patch.object(MflowEngine, "leaf", fields))
                else:
                    wrong = dataclasses.replace(OPS[target], **fields)
                    stack.enter_context(mock.patch.dict(OPS, {target: wrong}))
            yield


def _concat_wrong_offset(F, g, ans, *xs, axis=0):
    cuts = np.cumsum([x.shape[axis] for x in xs[1:]])  # sizes of the wrong operands
    return tuple(np.split(g, cuts, axis=axis))


def _getitem_wrong_offset(F, g, ans, x, rows, cols):
    out = np.zeros(x.shape, dtype=g.dtype)
    out[:g.shape[0], :g.shape[1]] += g  # placed at the corner, not at rows/cols
    return (out,)


def _conv2d_kernel_flipped(F, g, ans, image, kernel, stride=1, padding="valid"):
    gi, gk = OPS_CORRECT["conv2d"].vjp(F, g, ans, image, kernel, stride, padding)
    return gi, gk[::-1, ::-1]


def _log_softmax_no_shift(x, axis=1):
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


def _softmax_no_shift(x, axis=1):
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def _mul_scalar_mean(F, g, ans, a, b):
    """MatrixFlow-style scalar multiply: the scalar's gradient averaged, not summed."""
    ga, gb = g * b, g * a
    if b.shape == (1, 1) and a.shape != (1, 1):
        gb = np.full((1, 1), np.mean(gb), dtype=gb.dtype)
    return ga, gb


def _no_reduction(g, value, op, F=None):
    return g if g.dtype == value.dtype else g.astype(value.dtype)


OPS_CORRECT = dict(OPS)
OPS_UNBROADCAST = mflow.node.unbroadcast

CATALOGUE = [
    Bug("matmul_missing_transpose", "matmul", "G_A = G B instead of G Bᵀ",
        {"matmul": {"vjp": lambda F, g, ans, a, b: (g @ b, a.T @ g)}}),
    Bug("broadcast_not_reduced", "", "gradients of broadcast operands keep the broadcast shape",
        {"unbroadcast": _no_reduction}),
    Bug("relu_mask_from_output_ge", "relu", "mask (relu(x) >= 0): passes every gradient",
        {"relu": {"vjp": lambda F, g, ans, x: (g * (ans >= 0),)}}),
    Bug("relu_mask_ge", "relu", "mask (x >= 0): relu'(0) = 1, against torch and JAX",
        {"relu": {"vjp": lambda F, g, ans, x: (g * (F.constant(x) >= 0).astype(g.dtype),)}}),
    Bug("concat_wrong_offset", "concat", "the gradient split at the wrong offsets",
        {"concat": {"vjp": _concat_wrong_offset}}),
    Bug("fanout_overwrites", "", "a second use's gradient overwrites the first's",
        {"accumulate": lambda total, g: g}),
    Bug("softmax_no_shift", "softmax", "exp(x) / Σ exp(x) without subtracting the max",
        {"softmax": {"forward": _softmax_no_shift}}),
    Bug("log_softmax_no_shift", "log_softmax", "x - log Σ exp(x) without the max shift",
        {"log_softmax": {"forward": _log_softmax_no_shift}}),
    Bug("log_epsilon", "log", "log(x + 1e-8) 'for safety'",
        {"log": {"forward": lambda x: np.log(x + 1e-8)}}),
    Bug("det_missing_transpose", "det", "G = g det X X⁻¹ instead of X⁻ᵀ",
        {"det": {"vjp": lambda F, g, ans, x: (g[0, 0] * ans[0, 0] * np.linalg.inv(x),)}}),
    Bug("scalar_mul_gradient_mean", "mul", "a broadcast scalar's gradient averaged, not summed",
        {"mul": {"vjp": _mul_scalar_mean}}),
    Bug("sub_sign_flip", "neg", "neg's VJP passes g through, so b in a - b gets +g",
        {"neg": {"vjp": lambda F, g, ans, x: (g,)}}),
    Bug("slice_wrong_offset", "getitem", "the slice's gradient placed at the corner",
        {"getitem": {"vjp": _getitem_wrong_offset}}),
    Bug("conv2d_kernel_flipped", "conv2d", "the kernel's gradient flipped",
        {"conv2d": {"vjp": _conv2d_kernel_flipped}}),
    Bug("sigmoid_missing_factor", "sigmoid", "σ' = σ instead of σ (1 - σ)",
        {"sigmoid": {"vjp": lambda F, g, ans, x: (g * ans,)}}),
    Bug("tanh_not_squared", "tanh", "tanh' = 1 - tanh instead of 1 - tanh²",
        {"tanh": {"vjp": lambda F, g, ans, x: (g * (1 - ans),)}}),
    Bug("inv_missing_minus", "inv", "d X⁻¹ = X⁻¹ dX X⁻¹ (sign lost)",
        {"inv": {"vjp": lambda F, g, ans, x: (ans.T @ g @ ans.T,)}}),
    Bug("pow_off_by_one", "pow", "d xᵖ = p xᵖ instead of p xᵖ⁻¹",
        {"pow": {"vjp": lambda F, g, ans, x, p: (g * p * x ** p,)}}),
    Bug("div_denominator_sign", "div", "d(a/b)/db = +a/b²",
        {"div": {"vjp": lambda F, g, ans, a, b: (g / b, g * ans / b)}}),
    Bug("exp_uses_input", "exp", "exp' taken as x instead of exp(x)",
        {"exp": {"vjp": lambda F, g, ans, x: (g * x,)}}),
]

# Forward mode: wrong JVP rules (the VJPs stay right, so only the forward-mode check,
# against torch's forward-mode AD, jax.jvp, finite differences and the transpose
# identity, sees them)
_sum = np.add.reduce
CATALOGUE += [
    Bug("inv_jvp_missing_minus", "inv", "d X⁻¹ = X⁻¹ dX X⁻¹ in forward mode (sign lost)",
        {"inv": {"jvp": lambda t, ans, x: ans @ t[0] @ ans}}),
    Bug("softmax_jvp_no_subtraction", "softmax", "dY = Y ⊙ dX, without - Y Σ(Y ⊙ dX)",
        {"softmax": {"jvp": lambda t, ans, x, axis: ans * t[0]}}),
    Bug("det_jvp_adjugate_not_transposed", "det", "d det X = Σ adj X ⊙ dX, not (adj X)ᵀ",
        {"det": {"jvp": lambda t, ans, x: np.sum(np.linalg.inv(x) * ans[0, 0] * t[0])
                 .reshape(1, 1).astype(ans.dtype)}}),
    Bug("matmul_jvp_drops_a_term", "matmul", "d(AB) = dA B, without A dB",
        {"matmul": {"jvp": lambda t, ans, a, b: t[0] @ b}}),
    Bug("log_softmax_jvp_sums_everything", "log_softmax", "Σ over the whole matrix, not the axis",
        {"log_softmax": {"jvp": lambda t, ans, x, axis: t[0] - _sum(np.exp(ans) * t[0],
                                                                    axis=None, keepdims=True)}}),
    Bug("conv2d_jvp_ignores_kernel_tangent", "conv2d", "dY = conv(dI, K), without conv(I, dK)",
        {"conv2d": {"jvp": lambda t, ans, image, kernel, stride, padding:
                    OPS_CORRECT["conv2d"].jvp((t[0], np.zeros_like(t[1])), ans, image, kernel,
                                              stride, padding)}}),
    Bug("div_jvp_denominator_sign", "div", "d(a/b) = (da + (a/b) db) / b",
        {"div": {"jvp": lambda t, ans, a, b: (t[0] + ans * t[1]) / b}}),
    Bug("tanh_jvp_not_squared", "tanh", "dY = (1 - Y) dX instead of (1 - Y²) dX",
        {"tanh": {"jvp": lambda t, ans, x: t[0] * (1 - ans)}}),
]


# Second order: VJP rules whose values are right (so every first-order check passes)
# but which are not differentiable as written: a factor taken as a constant (`.value`,
# a detached `ans` or operand) loses its term of the second derivative. Only the
# second-order check (mflow.grad with create_graph=True, against torch double
# backward, JAX and a central difference of a gradient along ṫ) sees them.
def _const(v):
    """v's value as a constant: what a rule built from `.value` differentiates as."""
    return v.value if isinstance(v, mflow.node.Node) else v


CATALOGUE += [
    Bug("tanh_vjp_detached", "tanh", "G (1 - Y²) with Y taken as a constant",
        {"tanh": {"vjp": lambda F, g, ans, x: (g * (1 - _const(ans) ** 2),)}}),
    Bug("exp_vjp_detached", "exp", "G exp(X) with exp(X) taken as a constant",
        {"exp": {"vjp": lambda F, g, ans, x: (g * _const(ans),)}}),
    Bug("mul_vjp_detached_operands", "mul", "(G B, G A) with A and B constants: no cross term",
        {"mul": {"vjp": lambda F, g, ans, a, b: (g * _const(b), g * _const(a))}}),
    Bug("log_vjp_from_value", "log", "G / X with X's value: second derivative 0",
        {"log": {"vjp": lambda F, g, ans, x: (g / _const(x),)}}),
    Bug("inv_vjp_detached", "inv", "-Yᵀ G Yᵀ with Y = X⁻¹ taken as a constant",
        {"inv": {"vjp": lambda F, g, ans, x: (-_const(ans).T @ g @ _const(ans).T,)}}),
    Bug("softmax_vjp_detached", "softmax", "Y ⊙ (G - Σ G ⊙ Y) with Y a constant",
        {"softmax": {"vjp": lambda F, g, ans, x, axis: (
            _const(ans) * (g - F.sum(g * _const(ans), axis)),)}}),
    Bug("sin_vjp_detached", "sin", "G cos(X) with cos(X) computed on X's value",
        {"sin": {"vjp": lambda F, g, ans, x: (g * np.cos(_const(x)),)}}),
    Bug("det_vjp_detached", "det", "g adj(X)ᵀ with adj(X) taken as a constant",
        {"det": {"vjp": lambda F, g, ans, x: (g * _const(F.adjugate(x)).T,)}}),
]



# The vocabulary's second half: one bug at least per operation, each a mistake such
# rules are known for (a missing constant, a forward scan where the transpose runs
# backwards, a gradient read from the wrong place, an average for a sum).
def _from_corner(F, g, ans, x, **attrs):
    """The operand's gradient read at the cotangent's corner: pad's (not inside the
    padding), tile's (the first copy only)."""
    return (F.gather(g, slice(0, x.shape[0], 1), slice(0, x.shape[1], 1)),)


def _broadcast_to_mean(F, g, ans, x, shape):
    for axis in (0, 1):
        if x.shape[axis] == 1 and shape[axis] != 1:
            g = F.sum(g, axis) / shape[axis]
    return (g,)


def _solve_missing_transpose(F, g, ans, a, b):
    gb = F.solve(a, g)
    return -(gb @ ans.T), gb


def _var_sample(x, axis):
    n = x.size if axis is None else x.shape[axis]
    return np.var(x, axis=axis, keepdims=True) * (n / max(n - 1, 1))


CATALOGUE += [
    Bug("abs_sign_of_output", "abs", "abs' = sign(|x|): 1 everywhere",
        {"abs": {"vjp": lambda F, g, ans, x: (g * F.sign(ans),)}}),
    Bug("sqrt_missing_half", "sqrt", "d √x = dx / √x, the 1/2 lost",
        {"sqrt": {"vjp": lambda F, g, ans, x: (g / ans,)}}),
    Bug("log1p_as_log", "log1p", "d log(1 + x) = dx / x",
        {"log1p": {"vjp": lambda F, g, ans, x: (g / x,)}}),
    Bug("expm1_missing_one", "expm1", "d (eˣ - 1) = (eˣ - 1) dx, the 1 lost",
        {"expm1": {"vjp": lambda F, g, ans, x: (g * ans,)}}),
    Bug("softplus_sigmoid_of_minus_x", "softplus", "softplus' = σ(-x) for σ(x)",
        {"softplus": {"vjp": lambda F, g, ans, x: (g * F.sigmoid(-x),)}}),
    Bug("erf_missing_constant", "erf", "erf' = exp(-x²), without 2/√π",
        {"erf": {"vjp": lambda F, g, ans, x: (g * F.exp(-(x * x)),)}}),
    Bug("logsumexp_no_shift", "logsumexp", "log Σ exp(x) without subtracting the max",
        {"logsumexp": {"forward": lambda x, axis: np.log(np.sum(np.exp(x), axis=axis,
                                                                 keepdims=True))}}),
    Bug("prod_missing_division", "prod", "d Π = Π dx, not Π / xᵢ dxᵢ",
        {"prod": {"vjp": lambda F, g, ans, x, axis: (g * ans,)}}),
    Bug("var_sample_not_population", "var", "divided by N - 1, not N (torch.var's default)",
        {"var": {"forward": _var_sample}}),
    Bug("norm_missing_division", "norm", "d |x| = x dx, not x / |x| dx",
        {"norm": {"vjp": lambda F, g, ans, x, axis: (g * x,)}}),
    Bug("cumsum_transpose_not_reversed", "cumsum", "the VJP a forward running sum",
        {"cumsum": {"vjp": lambda F, g, ans, x, axis: (F.cumsum(g, axis),)}}),
    Bug("cumprod_unweighted", "cumprod", "G_xᵢ = Σ_{k≥i} Gₖ · yᵢ / xᵢ: yₖ taken at i",
        {"cumprod": {"vjp": lambda F, g, ans, x, axis: (
            F.flip(F.cumsum(F.flip(g, axis), axis), axis) * ans / x,)}}),
    Bug("reshape_column_major", "reshape", "the gradient reshaped in column-major order",
        {"reshape": {"vjp": lambda F, g, ans, x, shape: (
            np.reshape(_const(g), x.shape, order="F"),)}}),
    Bug("flip_not_flipped", "flip", "the gradient passed through unflipped",
        {"flip": {"vjp": lambda F, g, ans, x, axis: (g,)}}),
    Bug("pad_gradient_from_corner", "pad", "the gradient read at the corner, not inside the pad",
        {"pad": {"vjp": _from_corner}}),
    Bug("tile_first_copy_only", "tile", "the gradient of the first copy alone, not of all",
        {"tile": {"vjp": _from_corner}}),
    Bug("broadcast_to_mean", "broadcast_to", "spread sides averaged, not summed",
        {"broadcast_to": {"vjp": _broadcast_to_mean}}),
    Bug("tril_gradient_upper", "tril", "the gradient masked to the upper triangle",
        {"tril": {"vjp": lambda F, g, ans, x, k: (F.triu(g, k),)}}),
    Bug("triu_diagonal_off_by_one", "triu", "the gradient masked from diagonal k + 1",
        {"triu": {"vjp": lambda F, g, ans, x, k: (F.triu(g, k + 1),)}}),
    Bug("solve_missing_transpose", "solve", "G_B = A⁻¹ G instead of A⁻ᵀ G",
        {"solve": {"vjp": _solve_missing_transpose}}),
    Bug("logdet_missing_transpose", "logdet", "G = g X⁻¹ instead of X⁻ᵀ",
        {"logdet": {"vjp": lambda F, g, ans, x: (g * F.inv(x),)}}),
]



def _maxpool_to_corner(F, g, ans, x, size, stride):
    """Each window's gradient to its top-left element, not to its maximum."""
    value = _const(x)
    S = np.zeros((g.shape[0] * g.shape[1], value.size), value.dtype)
    for w, (i, j) in enumerate(np.ndindex(*g.shape)):
        S[w, i * stride * value.shape[1] + j * stride] = 1
    return (F.reshape(S.T @ F.reshape(g, (-1, 1)), value.shape),)


def _min_picks_max(F, g, ans, x, axis):
    v = _const(x)
    top = np.maximum.reduce(v, axis=axis, keepdims=True)
    return (g * (v == top).astype(v.dtype),)


CATALOGUE += [
    Bug("clip_passes_everything", "clip", "the gradient passed where x is clipped too",
        {"clip": {"vjp": lambda F, g, ans, x, lo, hi: (g,)}}),
    Bug("maximum_gradient_to_both", "maximum", "both operands get the whole gradient",
        {"maximum": {"vjp": lambda F, g, ans, a, b: (g, g)}}),
    Bug("minimum_weights_of_maximum", "minimum", "the gradient goes to the larger operand",
        {"minimum": {"vjp": lambda F, g, ans, a, b: OPS_CORRECT["maximum"].vjp(F, g, ans, a, b)}}),
    Bug("where_mask_inverted", "where", "a's gradient where the mask is false",
        {"where": {"vjp": lambda F, g, ans, a, b, mask: OPS_CORRECT["where"].vjp(
            F, g, ans, b, a, mask)[::-1]}}),
    Bug("max_gradient_everywhere", "max", "every element gets the max's gradient",
        {"max": {"vjp": lambda F, g, ans, x, axis: (g + 0 * x,)}}),
    Bug("min_picks_the_max", "min", "the gradient to the largest element, not the smallest",
        {"min": {"vjp": _min_picks_max}}),
    Bug("maxpool2d_to_window_corner", "maxpool2d", "each window's gradient to its corner",
        {"maxpool2d": {"vjp": _maxpool_to_corner}}),
]



# Bugs only an interesting point shows (an exact zero, a tie, equal leaves): the fuzzer
# met them about never before it drew such points on purpose (strategies.domains.special).
def _max_ties_not_shared(F, g, ans, x, axis):
    return (g * (_const(x) == _const(ans)).astype(g.dtype),)


def _maxpool_tie_to_last(F, g, ans, x, size, stride):
    """Each window's gradient to its last maximum, not its first (as torch and JAX)."""
    from numpy.lib.stride_tricks import sliding_window_view
    v = _const(x)
    wins, where = (sliding_window_view(a, (size, size))[::stride, ::stride].reshape(
        -1, size * size) for a in (v, np.arange(v.size).reshape(v.shape)))
    last = where[np.arange(len(wins)), size * size - 1 - np.argmax(wins[:, ::-1], axis=1)]
    S = np.zeros((len(wins), v.size), v.dtype)
    S[np.arange(len(wins)), last] = 1
    return (F.reshape(S.T @ F.reshape(g, (-1, 1)), v.shape),)


_leaves_by_value = {}


def _leaf_cached_by_value(self, array):
    """One Node per value: two distinct leaves of equal value merged (their gradients
    summed into both)."""
    key = (np.asarray(array).tobytes(), np.shape(array), id(self))
    node = _leaves_by_value.get(key)
    if node is None or node.grad is not None:
        node = _leaves_by_value[key] = mflow.Node(array, requires_grad=True)
    return node


POINT_BUGS = [
    Bug("div_quotient_by_numerator", "div", "d(a/b)/db = -(a/b)²/a: NaN where a = 0",
        {"div": {"vjp": lambda F, g, ans, a, b: (g / b, -g * ans * ans / a)}}),
    Bug("pow_by_division", "pow", "d xᵖ = p xᵖ / x dx: NaN where x = 0",
        {"pow": {"vjp": lambda F, g, ans, x, p: (g * p * ans / x,)}}),
    Bug("prod_by_division", "prod", "∂Π/∂xᵢ = Π / xᵢ: NaN where an operand is 0",
        {"prod": {"vjp": lambda F, g, ans, x, axis: (g * ans / x,)}}),
    Bug("maximum_tie_to_both", "maximum", "at a = b, both operands get the whole gradient",
        {"maximum": {"vjp": lambda F, g, ans, a, b: (
            g * (_const(a) >= _const(b)), g * (_const(b) >= _const(a)))}}),
    Bug("max_ties_not_shared", "max", "every tied maximum gets the whole gradient",
        {"max": {"vjp": _max_ties_not_shared}}),
    Bug("maxpool2d_tie_to_last", "maxpool2d", "a tie in a window: all to its last maximum",
        {"maxpool2d": {"vjp": _maxpool_tie_to_last}}),
    Bug("equal_leaves_merged", "", "leaves cached by value: two equal inputs share a gradient",
        {"leaf": _leaf_cached_by_value}),
]
CATALOGUE += POINT_BUGS

def _tanh_through_exp(x):
    e = np.exp(2 * x)
    return (e - 1) / (e + 1)


def _var_by_moments(x, axis):
    return (np.mean(x * x, axis=axis, keepdims=True)
            - np.mean(x, axis=axis, keepdims=True) ** 2)


def _sigmoid_vjp_through_exp(F, g, ans, x):
    e = F.exp(-x)
    return (g * e / ((1 + e) * (1 + e)),)


# Bugs of half precision: right in float64 and float32 (or almost always), wrong in
# float16 or bfloat16, where the range ends at 65504 or the unit roundoff is 2^-8.
HALF_BUGS = [
    Bug("tanh_through_exp", "tanh", "(e²ˣ - 1) / (e²ˣ + 1): inf / inf past x = 5.5 in "
        "float16; cancels near 0 in bfloat16", {"tanh": {"forward": _tanh_through_exp}}, "half"),
    Bug("softplus_naive", "softplus", "log(1 + eˣ): overflows past x = 11 in float16, 0 for "
        "x < -6 in bfloat16", {"softplus": {"forward": lambda x: np.log(1 + np.exp(x))}}, "half"),
    Bug("var_by_moments", "var", "E[x²] - E[x]²: cancels when the mean is large",
        {"var": {"forward": _var_by_moments}}, "half"),
    Bug("sigmoid_vjp_through_exp", "sigmoid", "σ' = e⁻ˣ / (1 + e⁻ˣ)²: inf / inf past x = -11 "
        "in float16", {"sigmoid": {"vjp": _sigmoid_vjp_through_exp}}, "half"),
]
CATALOGUE += HALF_BUGS

BUGS = {bug.name: bug for bug in CATALOGUE}


class PlantedEngine:
    """mflow with the bugs named in MFLOW_PLANTED_BUG (comma-separated) planted,
    as an engine adapter: `--engine tests.planted_bugs:PlantedEngine` shows the
    whole suite (fuzzer, reducer, blame, reports) on a known wrong engine."""

    def __init__(self):
        import os
        from functools import partial

        from mflow.oracles.engine import MflowEngine
        names = [n for n in os.environ.get("MFLOW_PLANTED_BUG", "").split(",") if n]
        unknown = [n for n in names if n not in BUGS]
        if not names or unknown:
            raise ValueError(f"MFLOW_PLANTED_BUG={','.join(names)!r}: name one or more of "
                             f"{', '.join(BUGS)}")
        self.bugs = [BUGS[n] for n in names]
        self.name = f"mflow with {', '.join(names)} planted"
        self._mflow = MflowEngine()
        self.ops = {op: partial(self._planted, f) for op, f in self._mflow.ops.items()}
        self.leaf, self.constant = self._mflow.leaf, self._mflow.constant
        self.to_numpy = self._mflow.to_numpy

    def _planted(self, f, *args, **kwargs):
        with contextlib.ExitStack() as stack:
            for bug in self.bugs:
                stack.enter_context(bug.planted())
            return f(*args, **kwargs)

    def gradients(self, output, leaves, cotangent):
        return self._planted(self._mflow.gradients, output, leaves, cotangent)

    def jvp(self, output, leaves, tangents):
        return self._planted(self._mflow.jvp, output, leaves, tangents)

    def hvp(self, output, leaves, cotangent, tangents):
        return self._planted(self._mflow.hvp, output, leaves, cotangent, tangents)


# --- state bugs: engines whose answers depend on the calls made before ------------------
# Each is an adapter (mflow's own, one method wrong), found by the engine-session state
# machine (reports/sessions.py) and by no single graph: tests/test_sessions.py.

def _mflow_engine():
    from mflow.oracles.engine import MflowEngine
    return MflowEngine


class NotZeroed(_mflow_engine()):
    """The gradient buffer is not zeroed between two VJPs: each returns `.grad` after
    backward(), which adds to what an earlier VJP of the same leaves left there."""
    name = "not_zeroed"

    def gradients(self, output, leaves, cotangent):
        if output.requires_grad:
            output.backward(cotangent)
        return [np.zeros_like(x.value) if x.grad is None else x.grad for x in leaves]


class MergesEqualLeaves(_mflow_engine()):
    """Leaves of equal values are one node (a cache keyed by the values): a graph on two
    such leaves gives each of them the gradient of both."""
    name = "merges_equal_leaves"

    def __init__(self):
        super().__init__()
        self.made = {}

    def leaf(self, array):
        key = (array.shape, array.dtype.str, array.tobytes())
        return self.made.setdefault(key, mflow.Node(array, requires_grad=True))


class ForwardCacheById(_mflow_engine()):
    """Each operation's result cached by the id() of its operands: a leaf updated in
    place (an optimiser's step) keeps its id, so a graph built on it afterwards is
    served the result computed from its old values."""
    name = "forward_cache_by_id"

    def __init__(self):
        super().__init__()
        self.cache = {}
        self.ops = {name: self._cached(name, f) for name, f in self.ops.items()}

    def _cached(self, name, f):
        def op(*args, **attrs):
            key = (name, tuple(map(id, args)), repr(attrs))
            if key not in self.cache:
                self.cache[key] = (f(*args, **attrs), args)  # the operands kept: ids stay
            return self.cache[key][0]
        return op


class ReadCacheNotInvalidated(_mflow_engine()):
    """The value read is cached per node and not invalidated when a leaf's values
    change in place: reading the leaf again after an update gives its old values."""
    name = "read_cache_not_invalidated"

    def __init__(self):
        super().__init__()
        self.read = {}

    def to_numpy(self, value):
        return self.read.setdefault(id(value), (np.array(value.value), value))[0]


class FreesBuffers(_mflow_engine()):
    """A backward frees the values its graph saved (their buffers zeroed for reuse), as
    torch does without retain_graph, but says nothing: a second VJP of the same output
    (or a read of a value inside the graph) gets what is left."""
    name = "frees_buffers"

    def gradients(self, output, leaves, cotangent):
        grads = [np.array(g) for g in super().gradients(output, leaves, cotangent)]
        stack, seen = [output], set()
        while stack:  # every computed value of the graph: freed
            node = stack.pop()
            if id(node) in seen or node.op is None:
                continue
            seen.add(id(node))
            node.value = np.zeros_like(node.value)
            stack.extend(node.parents)
        return grads


class BackwardOverwrites(_mflow_engine()):
    """backward() sets each leaf's .grad to this VJP instead of adding it (as MyGrad's
    backward does by design): two backward calls before a read give the last alone."""
    name = "backward_overwrites"

    def backward(self, output, cotangent):
        stack, seen = [output], set()
        while stack:  # the leaves beneath: their buffers dropped first
            node = stack.pop()
            if id(node) not in seen:
                seen.add(id(node))
                node.grad = None
                stack.extend(node.parents)
        super().backward(output, cotangent)


class ZeroGradForgets(_mflow_engine()):
    """zero_grad() does nothing: the buffer keeps the VJPs from before it."""
    name = "zero_grad_forgets"

    def zero_grad(self, leaf):
        pass


STATE_BUGS = [NotZeroed, MergesEqualLeaves, ForwardCacheById, ReadCacheNotInvalidated,
              FreesBuffers, BackwardOverwrites, ZeroGradForgets]
