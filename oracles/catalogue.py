"""The suite's catalogue: one record per operation, all the suite knows about it.

A record holds what an operation is (arity, kind, attributes and their defaults,
shape rule), where it may be evaluated (the domain of each operand, its kinks and
the references' conventions there), how float32 rounds it, what fuzzing draws (the
attribute values, simplest first; the record's place in the catalogue is its place
in the shrink order), how the program printer writes it, sample cases for the unit
tests, and its references: torch, JAX and numpy (numpy on stacks of matrices, for
the batched finite differences), each by default the function of the operation's
name in that library, else the function given, which receives the library first:

    record("tanh", 1, "elementwise", shapes.same)                  # torch.tanh, jnp.tanh, np.tanh
    record("transpose", 1, "movement", shapes.transpose, rounding="exact",
           torch=lambda torch, x: x.T, jax=lambda jax, x: x.T,
           numpy=lambda np, x: np.swapaxes(x, -1, -2), slot="matrix", python="{0}.T")

Everything else is derived from the records: the strategies' operations and their
shrink order, the references' tables (oracles/torch_backend.py, jax_backend.py,
numpy_backend.py), the compiled JAX interpreter's opcodes (`slot` names its branch),
the program's validation and printer, the per-operation tests and the README's table.
The engine's side of an operation (forward, VJP, JVP) is the engine's: mflow/ops.py
for mflow. Adding an operation is one record here plus one engine entry; a user's own
operation is a record in the user's module (`register`).

Nothing here imports torch or JAX: the references are looked up when a backend is built.
"""

import contextlib
import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy

from mflow import shapes

KINDS = ("elementwise", "binary", "reduction", "scan", "movement", "softmax",
         "linear algebra", "convolution", "pooling")
DOMAINS = ("real", "nonzero", "positive", "bounded", "invertible", "wide",
           "moderate", "nonnegative", "factors")  # strategies/domains.py
ROUNDINGS = ("result", "sums", "exact", "shift", "log-shift")


@dataclass(frozen=True)
class Record:
    """Everything the suite knows about one operation (see the module's docstring)."""
    name: str
    arity: int | None                 # None: any number of operands (concat)
    kind: str                         # one of KINDS
    shape: Callable                   # (*shapes, **attrs) -> shape, or ShapeError (mflow.shapes)
    attrs: dict = field(default_factory=dict)   # attribute -> default
    drawn: dict = field(default_factory=dict)   # attribute -> values drawn, simplest first
    #   (None: drawn to fit the operand, as getitem's indices are)
    arities: tuple = ()               # for arity None: the operand counts drawn
    domain: tuple | Callable = ("real",)  # per operand (the last repeats), or attrs -> that:
    #   "real", "nonzero", "positive", "bounded", "invertible", "wide", "moderate",
    #   "nonnegative", "factors"
    #   (strategies/domains.py)
    kinks: tuple | Callable = ()      # inputs where the derivative jumps (fuzzing keeps off),
    #   or attrs -> them (clip's lo and hi)
    ties: Callable | None = None      # (np, *operands, **attrs) -> arrays whose signs say
    #   which operand or element the operation chooses, 0 at a tie (maximum: a - b; max:
    #   each element less the largest of the others); stacks of matrices, as numpy's
    at_tie: tuple = ()                # ((operand values, attrs, what), ...): points exactly at
    #   a tie, where the conventions table (oracles/kinks.py) compares the derivatives
    fit: Callable | None = None       # (ints, *operand shapes) -> attributes drawn to fit the
    #   operands (where's mask), `ints(lo, hi)` drawing an int
    convention: str = ""              # the derivative at a kink: torch's, JAX's (measured)
    at_kinks: bool = True             # fuzzing may put operands exactly on its kinks and ties:
    #   torch and JAX agree there in every mode (tests/test_catalogue.py measures it), and
    #   the engine is held to them; False where they differ (abs, clip): kept off by a margin
    divides: bool = False             # torch's second order divides by the operand (prod,
    #   cumprod: d/dx (c prod / x)): its H t sums terms |c t prod| / x², which cancel
    #   (modes.HVP.terms counts them)
    half: bool = True                 # drawn in float16 and bfloat16 (linear algebra: not,
    #   LAPACK has no half precision; torch's CPU linalg neither)
    rounding: str = "result"          # how float32 rounds it: "result" (the result, ~u
    #   relative), "sums" (backward stable: operands off by ~u, then rounded), "exact",
    #   "shift" ("sums", and exp(x - c) inside with c as large as x: the result off by
    #   u max|x| relatively; softmax), "log-shift" (x - c itself: off by u max|x|
    #   absolutely; log_softmax): tolerance._shifted
    torch: Callable | str | None = None   # (torch, *tensors, **attrs) -> tensor; a name; None:
    jax: Callable | str | None = None     # (jax, *arrays, **attrs); None: jax.numpy.<name>
    numpy: Callable | str | None = None   # (np, *stacks, **attrs) on (..., m, n); None: np.<name>
    slot: str | None = None           # the compiled JAX interpreter's branch (jax_backend.SLOTS)
    opcode_by: tuple = ()             # attributes whose value selects the opcode (axis)
    python: str | Callable | None = None  # the printer: "{0} + {1}", or (args, attrs) -> text;
    #   None: mflow.<name>(args, attr=value, ...)
    samples: tuple = ()               # ((operand shapes, attrs), ...) for the unit tests

    def __post_init__(self):
        assert self.kind in KINDS, f"{self.name}: kind {self.kind!r} is not one of {KINDS}"
        assert self.rounding in ROUNDINGS, f"{self.name}: rounding {self.rounding!r}"
        assert set(self.drawn) == set(self.attrs), \
            f"{self.name}: every attribute says how it is drawn"

    def domains(self, n, attrs=None):
        """The domain of each of n operands."""
        d = self.domain(**(attrs or {})) if callable(self.domain) else self.domain
        return tuple(d[min(i, len(d) - 1)] for i in range(n))

    def kinks_at(self, attrs):
        """The kinks for these attributes."""
        return self.kinks(**attrs) if callable(self.kinks) else self.kinks

    def every_kink(self):
        """The kinks for every attribute value drawn (an adapter may declare its
        derivative at any of them)."""
        if not callable(self.kinks):
            return self.kinks
        names = list(self.attrs)
        return tuple(sorted({k for values in itertools.product(*(self.drawn[n] for n in names))
                             for k in self.kinks(**dict(zip(names, values)))}))

    def switches(self, operands, attrs):
        """The `ties` arrays of these operands (none for an operation without ties)."""
        return self.ties(numpy, *operands, **attrs) if self.ties else ()

    def complete(self, attrs):
        """`attrs` with this operation's defaults filled in: the one place defaults apply."""
        if not self.attrs or len(attrs) == len(self.attrs):
            return attrs
        return {**self.attrs, **attrs}

    def reference(self, library, module):
        """This operation's function in `library` ("torch", "jax" or "numpy"), `module`
        being that library (jax: the jax package; its numpy is jax.numpy)."""
        given = getattr(self, library)
        if callable(given):
            return functools.partial(given, module)
        where = module.numpy if library == "jax" else module
        if library == "numpy" and given is None and not hasattr(module, self.name):
            return functools.partial(_through_torch, self)  # a user's record without numpy
        return getattr(where, given or self.name)


def _through_torch(rec, *stacks, **attrs):
    """A record's numpy reference where it gives none (an operation of a user's own):
    its torch reference on the stacks of matrices, without gradients."""
    import torch
    f = rec.reference("torch", torch)
    with torch.no_grad():
        return f(*(torch.from_numpy(numpy.ascontiguousarray(x)) for x in stacks),
                 **attrs).numpy()


CATALOGUE: dict[str, Record] = {}  # name -> record, in shrink order (simplest first)
_version = [0]                     # bumped at every change, so derived tables are rebuilt


def record(name, arity, kind, shape, **kw):
    """Add a record to the catalogue, after the others in the shrink order."""
    rec = CATALOGUE[name] = Record(name, arity, kind, shape, **kw)
    _version[0] += 1
    return rec


@contextlib.contextmanager
def registered(*records):
    """The catalogue with `records` added (an operation of a user's own, or a test's),
    as long as the block runs."""
    before = dict(CATALOGUE)
    try:
        for rec in records:
            CATALOGUE[rec.name] = rec
        _version[0] += 1
        yield
    finally:
        CATALOGUE.clear()
        CATALOGUE.update(before)
        _version[0] += 1


def register(*records):
    """Add records for good: an adapter's operations of its own (its `records`, which
    `oracles.engine.load_engine` registers when the adapter named on the command line
    is loaded; never because a report names one). ValueError for a record that is not
    one, or whose name is a built-in operation's."""
    for rec in records:
        if not isinstance(rec, Record):
            raise ValueError(f"{rec!r} is not a catalogue Record (mflow.oracles.catalogue)")
        if rec.name in CATALOGUE and CATALOGUE[rec.name] != rec and rec.name in BUILT_IN:
            raise ValueError(f"{rec.name!r} is a built-in operation: name yours otherwise")
    for rec in records:
        CATALOGUE[rec.name] = rec
    _version[0] += 1


def version():
    return _version[0]


class Derived(Mapping):
    """A table built from the catalogue by `build()`, built again when the catalogue
    changes: a backend's table is always the catalogue's."""

    def __init__(self, build):
        self._build, self._at, self._table = build, None, None

    def table(self):
        if self._at != _version[0]:
            self._table, self._at = self._build(), _version[0]
        return self._table

    def __getitem__(self, key):
        return self.table()[key]

    def __iter__(self):
        return iter(self.table())

    def __len__(self):
        return len(self.table())


# --- numpy on stacks of matrices (..., m, n): the finite differences' reference -------

def _axis(axis):  # the matrix axes 0 / 1 are the last two of a stack
    return axis - 2


def _np_reduce(f):
    def reduced(np, x, axis):
        return getattr(np, f)(x, axis=(-2, -1) if axis is None else _axis(axis), keepdims=True)
    return reduced


def _np_getitem(np, x, rows, cols):
    r = np.arange(rows.start, rows.stop, rows.step) if isinstance(rows, slice) else list(rows)
    c = np.arange(cols.start, cols.stop, cols.step) if isinstance(cols, slice) else list(cols)
    return x[..., r, :][..., :, c]


def _np_softmax(np, x, axis):
    e = np.exp(x - x.max(axis=_axis(axis), keepdims=True))
    return e / e.sum(axis=_axis(axis), keepdims=True)


def _np_log_softmax(np, x, axis):
    s = x - x.max(axis=_axis(axis), keepdims=True)
    return s - np.log(np.exp(s).sum(axis=_axis(axis), keepdims=True))


def _np_sigmoid(np, x):
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _np_concat(np, *xs, axis):
    lead = np.broadcast_shapes(*[x.shape[:-2] for x in xs])  # a constant has no stack axis
    return np.concatenate([np.broadcast_to(x, lead + x.shape[-2:]) for x in xs], axis=_axis(axis))


def _np_conv2d(np, image, kernel, stride, padding):
    kh, kw = kernel.shape[-2:]
    if padding == "same":
        ph, pw = kh - 1, kw - 1
        pad = [(0, 0)] * (image.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
        image = np.pad(image, pad)
    windows = np.lib.stride_tricks.sliding_window_view(image, (kh, kw), axis=(-2, -1))
    return np.einsum("...ijkl,...kl->...ij", windows[..., ::stride, ::stride, :, :], kernel)


def _np_logsumexp(np, x, axis):
    axes = (-2, -1) if axis is None else _axis(axis)
    m = np.max(x, axis=axes, keepdims=True)
    return m + np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True))


def _np_norm(np, x, axis):
    return np.sqrt(np.sum(x * x, axis=(-2, -1) if axis is None else _axis(axis), keepdims=True))


def _np_erf(np, x):
    from scipy.special import erf  # JAX's dependency; numpy has no erf
    return erf(x)


def _np_pad(np, x, widths):
    top, bottom, left, right = widths
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)])


def _np_solve(np, a, b):
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])  # a constant has no stack axis
    return np.linalg.solve(np.broadcast_to(a, lead + a.shape[-2:]),
                           np.broadcast_to(b, lead + b.shape[-2:]))


def chooser_switches(np, w):
    """For windows along the last axis of w: each element less the largest of the
    others in its window. Positive for the one the window's max chooses, negative for
    the rest, 0 where two tie for the max."""
    if w.shape[-1] == 1:
        return np.ones_like(w)  # a window of one chooses it, with no tie
    top = np.sort(w, axis=-1)[..., -2:]
    return w - np.where(w == top[..., 1:], top[..., :1], top[..., 1:])


def _reduction_windows(np, x, axis):
    if axis is None:
        return x.reshape(x.shape[:-2] + (-1,))
    return np.swapaxes(x, -1, -2) if axis == 0 else x


def _pool_windows(np, x, size, stride):
    w = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(-2, -1))
    w = w[..., ::stride, ::stride, :, :]
    return w.reshape(w.shape[:-2] + (-1,))


def _np_maxpool2d(np, x, size, stride):
    return _pool_windows(np, x, size, stride).max(axis=-1)


def _np_where(np, a, b, mask):
    return np.where(np.asarray(mask, bool), a, b)


def _fit_mask(ints, a, b):
    """where's mask: a boolean matrix of the operands' broadcast shape, from one seed."""
    shape = shapes.broadcast(a, b)
    seed = ints(0, 2 ** 32 - 1)
    mask = numpy.random.default_rng(seed).random(shape) < 0.5
    return {"mask": tuple(map(tuple, mask.tolist()))}


# --- torch and JAX, on 2-D values ----------------------------------------------------

def _torch_reduce(f):
    def reduced(torch, x, axis):
        g = getattr(torch, f)
        return g(x).reshape(1, 1) if axis is None else g(x, dim=axis, keepdim=True)
    return reduced


def _jax_reduce(f):
    def reduced(jax, x, axis):
        g = getattr(jax.numpy, f)
        return g(x).reshape(1, 1) if axis is None else g(x, axis=axis, keepdims=True)
    return reduced


def _index_list(i):
    return i if isinstance(i, slice) else list(i)


def _jax_index(np_like, i):
    return np_like.arange(i.start, i.stop, i.step) if isinstance(i, slice) else np_like.asarray(i)


def _torch_conv2d(torch, image, kernel, stride, padding):
    return torch.nn.functional.conv2d(image[None, None], kernel[None, None], stride=stride,
                                      padding=padding)[0, 0]


def _jax_conv2d(jax, image, kernel, stride, padding):
    return jax.lax.conv_general_dilated(image[None, None], kernel[None, None], (stride, stride),
                                        padding.upper())[0, 0]


def _torch_var(torch, x, axis):
    return torch.var(x, correction=0).reshape(1, 1) if axis is None else \
        torch.var(x, dim=axis, keepdim=True, correction=0)


def _torch_logsumexp(torch, x, axis):
    return torch.logsumexp(x.reshape(-1), 0).reshape(1, 1) if axis is None else \
        torch.logsumexp(x, dim=axis, keepdim=True)


def _torch_norm(torch, x, axis):
    return torch.linalg.vector_norm(x, dim=axis, keepdim=True).reshape(
        (1, 1) if axis is None else (1, x.shape[1]) if axis == 0 else (x.shape[0], 1))


def _torch_pad(torch, x, widths):
    top, bottom, left, right = widths
    return torch.nn.functional.pad(x, (left, right, top, bottom))


def _jax_pad(jax, x, widths):
    top, bottom, left, right = widths
    return jax.numpy.pad(x, ((top, bottom), (left, right)))


def _torch_maxpool2d(torch, x, size, stride):
    return torch.nn.functional.max_pool2d(x[None, None], size, stride)[0, 0]


def _jax_maxpool2d(jax, x, size, stride):
    return jax.lax.reduce_window(x, -jax.numpy.inf, jax.lax.max, (size, size), (stride, stride),
                                 "VALID")


def _scalar(f):  # a 1x1 result from a function giving a number
    def scalar(lib, x):
        return f(lib, x).reshape(1, 1)
    return scalar


# --- the printer ----------------------------------------------------------------------

def _print_index(i):
    return f"{i.start}:{i.stop}:{i.step}" if isinstance(i, slice) else repr(list(i))


def _pow_domain(p):
    if float(p).is_integer():
        return ("real",) if p >= 0 else ("nonzero",)
    # p > 2: x ** p and its first two derivatives are 0 at 0, the end of the domain, which
    # fuzzing reaches on purpose; x ** 1.5's second derivative is infinite there
    return ("nonnegative",) if p > 2 else ("positive",)


BROADCAST = [((3, 4), (3, 4)), ((3, 4), (1, 4)), ((3, 4), (3, 1)), ((3, 4), (1, 1)),
             ((1, 4), (3, 1)), ((1, 1), (2, 5)), ((3, 1), (3, 4))]
UNARY = [((3, 4),), ((1, 1),), ((1, 5),), ((5, 1),)]


def _samples(shapes_list, attrs=None):
    return tuple((s, dict(attrs or {})) for s in shapes_list)


# --- the records, simplest first (the shrink order) -------------------------------------

record("add", 2, "binary", shapes.broadcast, python="{0} + {1}",
       samples=_samples(BROADCAST))
record("mul", 2, "binary", shapes.broadcast, jax="multiply", numpy="multiply",
       python="{0} * {1}", samples=_samples(BROADCAST))
record("neg", 1, "elementwise", shapes.same, rounding="exact", jax="negative", numpy="negative",
       python="-{0}", samples=_samples(UNARY))
record("sub", 2, "binary", shapes.broadcast, numpy="subtract", jax="subtract",
       python="{0} - {1}", samples=_samples(BROADCAST))
record("matmul", 2, "linear algebra", shapes.matmul, rounding="sums", slot="matrix",
       python="{0} @ {1}",
       samples=((((3, 4), (4, 2)), {}), (((1, 4), (4, 1)), {}), (((4, 1), (1, 3)), {})))
record("transpose", 1, "movement", shapes.transpose, rounding="exact", slot="matrix",
       torch=lambda torch, x: x.T, jax=lambda jax, x: x.T,
       numpy=lambda np, x: np.swapaxes(x, -1, -2), python="{0}.T", samples=_samples(UNARY))
record("sum", 1, "reduction", shapes.reduce, attrs={"axis": None}, drawn={"axis": (None, 0, 1)},
       rounding="sums", torch=_torch_reduce("sum"), jax=_jax_reduce("sum"),
       numpy=_np_reduce("sum"), slot="sum", opcode_by=("axis",),
       samples=tuple((((3, 4),), {"axis": a}) for a in (None, 0, 1)))
record("relu", 1, "elementwise", shapes.same, kinks=(0.0,),
       convention="relu'(0) = 0 in mflow, torch and JAX",
       jax=lambda jax, x: jax.nn.relu(x), numpy=lambda np, x: np.maximum(x, 0),
       samples=_samples(UNARY))
record("exp", 1, "elementwise", shapes.same, domain=("bounded",), samples=_samples(UNARY))
record("tanh", 1, "elementwise", shapes.same, samples=_samples(UNARY))
record("sigmoid", 1, "elementwise", shapes.same, jax=lambda jax, x: jax.nn.sigmoid(x),
       numpy=_np_sigmoid, samples=_samples(UNARY))
record("sin", 1, "elementwise", shapes.same, samples=_samples(UNARY))
record("cos", 1, "elementwise", shapes.same, samples=_samples(UNARY))
record("div", 2, "binary", shapes.broadcast, domain=("real", "nonzero"), numpy="divide",
       jax="divide", python="{0} / {1}", samples=_samples(BROADCAST))
record("log", 1, "elementwise", shapes.same, domain=("positive",), samples=_samples(UNARY))
record("pow", 1, "elementwise", shapes.pow, attrs={"p": 2},
       drawn={"p": (2, 3, -1, 0.5, 1.5, -2.5, 2.5)}, domain=_pow_domain,
       torch=lambda torch, x, p: x ** p, jax=lambda jax, x, p: x ** p,
       numpy=lambda np, x, p: x ** p, python=lambda args, attrs: f"{args[0]} ** {attrs['p']!r}",
       samples=tuple((((3, 4),), {"p": p}) for p in (2, 3, 0.5, -1, -2.5, 1, 0)))
record("mean", 1, "reduction", shapes.reduce, attrs={"axis": None},
       drawn={"axis": (None, 0, 1)}, rounding="sums", torch=_torch_reduce("mean"),
       jax=_jax_reduce("mean"), numpy=_np_reduce("mean"), slot="mean", opcode_by=("axis",),
       samples=tuple((((3, 4),), {"axis": a}) for a in (None, 0, 1)))
record("concat", None, "movement", shapes.concat, attrs={"axis": 0}, drawn={"axis": (0, 1)},
       arities=(1, 2, 3), rounding="exact",
       torch=lambda torch, *xs, axis: torch.cat(xs, dim=axis),
       jax=lambda jax, *xs, axis: jax.numpy.concatenate(xs, axis=axis), numpy=_np_concat,
       slot="concat", opcode_by=("axis",),
       python=lambda args, attrs: f"mflow.concat([{', '.join(args)}], axis={attrs['axis']!r})",
       samples=((((2, 3), (4, 3)), {"axis": 0}), (((2, 3), (2, 1), (2, 2)), {"axis": 1}),
                (((2, 3),), {"axis": 0})))
record("getitem", 1, "movement", shapes.getitem, attrs={"rows": slice(None), "cols": slice(None)},
       drawn={"rows": None, "cols": None}, rounding="exact",
       # one axis at a time: x[list, list] would pair the indices
       torch=lambda torch, x, rows, cols: x[_index_list(rows)][:, _index_list(cols)],
       jax=lambda jax, x, rows, cols: x[_jax_index(jax.numpy, rows)][:, _jax_index(jax.numpy,
                                                                                    cols)],
       numpy=_np_getitem, slot="getitem",
       python=lambda args, attrs: f"{args[0]}[{_print_index(attrs['rows'])}, "
                                  f"{_print_index(attrs['cols'])}]",
       samples=((((4, 5),), {"rows": slice(1, 3, 1), "cols": slice(0, 5, 2)}),
                (((4, 5),), {"rows": (3, 0, 0), "cols": slice(2, 3, 1)}),
                (((4, 5),), {"rows": (1, 2), "cols": (4, 4, 0)})))
record("softmax", 1, "softmax", shapes.softmax, attrs={"axis": 1}, drawn={"axis": (1, 0)},
       domain=("wide",), rounding="shift",
       torch=lambda torch, x, axis: torch.softmax(x, dim=axis),
       jax=lambda jax, x, axis: jax.nn.softmax(x, axis=axis), numpy=_np_softmax,
       slot="softmax", opcode_by=("axis",),
       samples=tuple((((3, 4),), {"axis": a}) for a in (0, 1)))
record("log_softmax", 1, "softmax", shapes.softmax, attrs={"axis": 1}, drawn={"axis": (1, 0)},
       domain=("wide",), rounding="log-shift",
       torch=lambda torch, x, axis: torch.log_softmax(x, dim=axis),
       jax=lambda jax, x, axis: jax.nn.log_softmax(x, axis=axis), numpy=_np_log_softmax,
       slot="log_softmax", opcode_by=("axis",),
       samples=tuple((((3, 4),), {"axis": a}) for a in (0, 1)))
record("trace", 1, "linear algebra", shapes.scalar_of_square, rounding="sums",
       torch=_scalar(lambda torch, x: torch.trace(x)),
       jax=_scalar(lambda jax, x: jax.numpy.trace(x)),
       numpy=lambda np, x: np.trace(x, axis1=-2, axis2=-1)[..., None, None], slot="trace",
       samples=((((4, 4),), {}), (((1, 1),), {})))
record("inv", 1, "linear algebra", shapes.square, half=False, domain=("invertible",),
       rounding="sums",
       torch=lambda torch, x: torch.linalg.inv(x), jax=lambda jax, x: jax.numpy.linalg.inv(x),
       numpy=lambda np, x: np.linalg.inv(x), slot="inv",
       samples=((((4, 4),), {}), (((1, 1),), {})))
record("det", 1, "linear algebra", shapes.scalar_of_square, half=False, domain=("invertible",),
       rounding="sums", torch=_scalar(lambda torch, x: torch.linalg.det(x)),
       jax=_scalar(lambda jax, x: jax.numpy.linalg.det(x)),
       numpy=lambda np, x: np.linalg.det(x)[..., None, None], slot="det",
       samples=((((4, 4),), {}), (((1, 1),), {}), (((3, 3),), {})))
record("conv2d", 2, "convolution", shapes.conv2d, attrs={"stride": 1, "padding": "valid"},
       drawn={"stride": (1, 2, 3), "padding": ("valid", "same")}, rounding="sums",
       torch=_torch_conv2d, jax=_jax_conv2d, numpy=_np_conv2d, slot="conv2d",
       samples=tuple((((6, 7), (3, 2)), {"stride": s, "padding": "valid"}) for s in (1, 2, 3))
       + tuple((((5, 6), (k, j)), {"padding": "same"}) for k, j in ((3, 3), (2, 4), (1, 1))))

# --- the vocabulary's second half: element-wise, reductions, scans, movement, solves ---

record("abs", 1, "elementwise", shapes.same, kinks=(0.0,), at_kinks=False,
       convention="abs'(0): 0 in mflow and torch (sign(0)), 1 in JAX",
       samples=_samples(UNARY))
record("sqrt", 1, "elementwise", shapes.same, domain=("positive",), samples=_samples(UNARY))
record("log1p", 1, "elementwise", shapes.same, domain=("nonnegative",), samples=_samples(UNARY))
record("expm1", 1, "elementwise", shapes.same, domain=("bounded",), samples=_samples(UNARY))
# logaddexp(x, 0) in every reference: torch's softplus returns x itself past x = 20, whose
# derivative (1) is 2e-9 away from σ(20), a disagreement of the references, not the engine's
record("softplus", 1, "elementwise", shapes.same, domain=("moderate",),
       torch=lambda torch, x: torch.logaddexp(x, torch.zeros_like(x)),
       jax=lambda jax, x: jax.numpy.logaddexp(x, 0.0), numpy=lambda np, x: np.logaddexp(x, 0.0),
       samples=_samples(UNARY))
record("erf", 1, "elementwise", shapes.same, jax=lambda jax, x: jax.scipy.special.erf(x),
       numpy=_np_erf, samples=_samples(UNARY))
record("logsumexp", 1, "reduction", shapes.reduce, attrs={"axis": None},
       drawn={"axis": (None, 0, 1)}, slot="logsumexp", opcode_by=("axis",),
       domain=("wide",), rounding="sums",
       torch=_torch_logsumexp,
       jax=lambda jax, x, axis: jax.scipy.special.logsumexp(x, axis=axis, keepdims=True),
       numpy=_np_logsumexp, samples=tuple((((3, 4),), {"axis": a}) for a in (None, 0, 1)))
record("prod", 1, "reduction", shapes.reduce, attrs={"axis": None}, domain=("factors",),
       drawn={"axis": (None, 0, 1)}, slot="prod", opcode_by=("axis",), rounding="sums",
       divides=True,
       torch=_torch_reduce("prod"), jax=_jax_reduce("prod"), numpy=_np_reduce("prod"),
       samples=tuple((((3, 4),), {"axis": a}) for a in (None, 0, 1)))
record("var", 1, "reduction", shapes.reduce, attrs={"axis": None},
       drawn={"axis": (None, 0, 1)}, slot="var", opcode_by=("axis",),
       rounding="sums", torch=_torch_var, jax=_jax_reduce("var"),
       numpy=_np_reduce("var"), samples=tuple((((3, 4),), {"axis": a}) for a in (None, 0, 1)))
record("norm", 1, "reduction", shapes.reduce, attrs={"axis": None},
       drawn={"axis": (None, 0, 1)}, slot="norm", opcode_by=("axis",),
       domain=("nonzero",), rounding="sums", torch=_torch_norm,
       jax=lambda jax, x, axis: jax.numpy.linalg.norm(x, axis=axis, keepdims=True),
       numpy=_np_norm, samples=tuple((((3, 4),), {"axis": a}) for a in (None, 0, 1)))
record("cumsum", 1, "scan", shapes.along, attrs={"axis": 0}, drawn={"axis": (0, 1)},
       slot="cumsum", opcode_by=("axis",),
       rounding="sums", torch=lambda torch, x, axis: torch.cumsum(x, dim=axis),
       numpy=lambda np, x, axis: np.cumsum(x, axis=_axis(axis)),
       samples=tuple((((3, 4),), {"axis": a}) for a in (0, 1)))
record("cumprod", 1, "scan", shapes.along, attrs={"axis": 0}, drawn={"axis": (0, 1)},
       domain=("factors",), slot="cumprod", opcode_by=("axis",), rounding="sums",
       divides=True,
       torch=lambda torch, x, axis: torch.cumprod(x, dim=axis),
       numpy=lambda np, x, axis: np.cumprod(x, axis=_axis(axis)),
       samples=tuple((((3, 4),), {"axis": a}) for a in (0, 1)))
record("reshape", 1, "movement", shapes.reshape, slot="gather", attrs={"shape": (1, -1)},
       drawn={"shape": ((1, -1), (-1, 1), (2, -1), (-1, 2), (3, -1))}, rounding="exact",
       torch=lambda torch, x, shape: x.reshape(shape),
       jax=lambda jax, x, shape: x.reshape(shape),
       numpy=lambda np, x, shape: x.reshape(x.shape[:-2] + shapes.reshape(x.shape[-2:],
                                                                           shape)),
       python=lambda args, attrs: f"mflow.reshape({args[0]}, {attrs['shape']!r})",
       samples=tuple((((3, 4),), {"shape": sh})
                     for sh in ((1, -1), (-1, 1), (2, -1), (-1, 2), (3, -1), (2, 6))))
record("flip", 1, "movement", shapes.along, slot="gather",
       attrs={"axis": 0}, drawn={"axis": (0, 1)},
       rounding="exact", torch=lambda torch, x, axis: torch.flip(x, dims=(axis,)),
       numpy=lambda np, x, axis: np.flip(x, axis=_axis(axis)),
       samples=tuple((((3, 4),), {"axis": a}) for a in (0, 1)))
record("pad", 1, "movement", shapes.pad, slot="gather", attrs={"widths": (0, 1, 0, 1)},
       drawn={"widths": ((0, 1, 0, 1), (1, 1, 1, 1), (2, 0, 0, 1))}, rounding="exact",
       torch=_torch_pad, jax=_jax_pad, numpy=_np_pad,
       samples=tuple((((3, 4),), {"widths": w})
                     for w in ((0, 1, 0, 1), (1, 1, 1, 1), (2, 0, 0, 1), (2, 0, 1, 3))))
record("tile", 1, "movement", shapes.tile, slot="gather", attrs={"reps": (1, 2)},
       drawn={"reps": ((1, 2), (2, 1), (2, 2))}, rounding="exact",
       torch=lambda torch, x, reps: torch.tile(x, reps),
       numpy=lambda np, x, reps: np.tile(x, (1,) * (x.ndim - 2) + reps),
       samples=tuple((((3, 2),), {"reps": r}) for r in ((1, 2), (2, 1), (2, 2), (3, 2))))
record("broadcast_to", 1, "movement", shapes.broadcast_to, slot="gather", attrs={"shape": (4, 4)},
       drawn={"shape": ((4, 4), (3, 5), (5, 3), (2, 6))}, rounding="exact",
       torch=lambda torch, x, shape: torch.broadcast_to(x, shape),
       numpy=lambda np, x, shape: np.broadcast_to(x, x.shape[:-2] + shape),
       samples=((((1, 4),), {"shape": (4, 4)}), (((3, 1),), {"shape": (3, 5)}),
                (((1, 1),), {"shape": (2, 6)}), (((5, 3),), {"shape": (5, 3)}),
                (((1, 4),), {"shape": (3, 4)})))
record("tril", 1, "movement", shapes.triangle, slot="gather",
       attrs={"k": 0}, drawn={"k": (0, -1, 1)},
       rounding="exact", torch=lambda torch, x, k: torch.tril(x, diagonal=k),
       jax=lambda jax, x, k: jax.numpy.tril(x, k), numpy=lambda np, x, k: np.tril(x, k),
       samples=tuple((((3, 4),), {"k": k}) for k in (0, -1, 1, 2)))
record("triu", 1, "movement", shapes.triangle, slot="gather",
       attrs={"k": 0}, drawn={"k": (0, -1, 1)},
       rounding="exact", torch=lambda torch, x, k: torch.triu(x, diagonal=k),
       jax=lambda jax, x, k: jax.numpy.triu(x, k), numpy=lambda np, x, k: np.triu(x, k),
       samples=tuple((((4, 3),), {"k": k}) for k in (0, -1, 1, 2)))
record("solve", 2, "linear algebra", shapes.solve, half=False, slot="solve",
       domain=("invertible", "real"),
       rounding="sums", torch=lambda torch, a, b: torch.linalg.solve(a, b),
       jax=lambda jax, a, b: jax.numpy.linalg.solve(a, b), numpy=_np_solve,
       samples=((((3, 3), (3, 2)), {}), (((1, 1), (1, 4)), {}), (((4, 4), (4, 4)), {})))
record("logdet", 1, "linear algebra", shapes.scalar_of_square, half=False, slot="logdet",
       domain=("invertible",),
       rounding="sums", torch=_scalar(lambda torch, x: torch.linalg.slogdet(x)[1]),
       jax=_scalar(lambda jax, x: jax.numpy.linalg.slogdet(x)[1]),
       numpy=lambda np, x: np.linalg.slogdet(x)[1][..., None, None],
       samples=((((4, 4),), {}), (((1, 1),), {}), (((3, 3),), {})))

# --- operations that choose: kinks that move with the attributes, ties between operands -

record("clip", 1, "elementwise", shapes.clip, attrs={"lo": -1.0, "hi": 1.0},
       drawn={"lo": (-1.0, 0.0, -0.5), "hi": (1.0, 0.5)}, kinks=lambda lo, hi: (lo, hi),
       at_kinks=False,
       convention="at lo or hi: 1 in mflow and torch (the bounds inclusive), 1/2 in JAX",
       torch=lambda torch, x, lo, hi: torch.clamp(x, lo, hi),
       jax=lambda jax, x, lo, hi: jax.numpy.clip(x, lo, hi),
       numpy=lambda np, x, lo, hi: np.clip(x, lo, hi), slot="clip",
       opcode_by=("lo", "hi"), samples=tuple((((3, 4),), {"lo": lo, "hi": hi})
                                             for lo in (-1.0, 0.0, -0.5) for hi in (1.0, 0.5)))
record("maximum", 2, "binary", shapes.broadcast, ties=lambda np, a, b: (a - b,),
       convention="at a = b: 1/2 to each operand in mflow, torch and JAX",
       at_tie=((([[1.0, -2.0, 0.0]], [[1.0, -2.0, 0.0]]), {}, "a = b"),),
       samples=_samples(BROADCAST))
record("minimum", 2, "binary", shapes.broadcast, ties=lambda np, a, b: (b - a,),
       convention="at a = b: 1/2 to each operand in mflow, torch and JAX",
       at_tie=((([[1.0, -2.0, 0.0]], [[1.0, -2.0, 0.0]]), {}, "a = b"),),
       samples=_samples(BROADCAST))
record("where", 2, "binary", shapes.where, attrs={"mask": None}, drawn={"mask": None},
       fit=_fit_mask, rounding="exact",
       torch=lambda torch, a, b, mask: torch.where(torch.tensor(mask), a, b),
       jax=lambda jax, a, b, mask: jax.numpy.where(jax.numpy.asarray(mask), a, b),
       numpy=_np_where, slot="where",
       python=lambda args, attrs: f"mflow.where(np.array({attrs['mask']!r}), {args[0]}, "
                                  f"{args[1]})",
       samples=((((2, 3), (2, 3)), {"mask": ((True, False, True), (False, False, True))}),
                (((1, 3), (2, 1)), {"mask": ((True, True, False), (False, True, True))})))
record("max", 1, "reduction", shapes.reduce, attrs={"axis": None},
       drawn={"axis": (None, 0, 1)}, slot="max", opcode_by=("axis",), rounding="exact",
       ties=lambda np, x, axis: (chooser_switches(np, _reduction_windows(np, x, axis)),),
       convention="a tie: the gradient shared evenly among the maxima in mflow, torch "
                  "(amax) and JAX",
       at_tie=((([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]],), {"axis": 1}, "ties in rows"),
               (([[1.0, 3.0, 3.0], [2.0, 3.0, 2.0]],), {"axis": None}, "3 maxima of 6")),
       torch=_torch_reduce("amax"), jax=_jax_reduce("max"), numpy=_np_reduce("max"),
       samples=tuple((((3, 4),), {"axis": a}) for a in (None, 0, 1)))
record("min", 1, "reduction", shapes.reduce, attrs={"axis": None},
       drawn={"axis": (None, 0, 1)}, slot="min", opcode_by=("axis",), rounding="exact",
       ties=lambda np, x, axis: (chooser_switches(np, -_reduction_windows(np, x, axis)),),
       convention="a tie: the gradient shared evenly among the minima in mflow, torch "
                  "(amin) and JAX",
       at_tie=((([[1.0, -3.0, 2.0], [1.0, 2.0, 2.0]],), {"axis": 0}, "ties in columns"),),
       torch=_torch_reduce("amin"), jax=_jax_reduce("min"), numpy=_np_reduce("min"),
       samples=tuple((((3, 4),), {"axis": a}) for a in (None, 0, 1)))
record("maxpool2d", 1, "pooling", shapes.maxpool2d, attrs={"size": 2, "stride": 2},
       drawn={"size": (2, 3), "stride": (2, 1)}, slot="maxpool2d", opcode_by=("size", "stride"),
       rounding="exact",
       ties=lambda np, x, size, stride: (chooser_switches(np, _pool_windows(np, x, size,
                                                                             stride)),),
       convention="a tie in a window: all to its first maximum (row-major) in mflow, torch "
                  "and JAX",
       at_tie=((([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]],),
                {"size": 2, "stride": 1}, "equal values in windows"),),
       torch=_torch_maxpool2d, jax=_jax_maxpool2d, numpy=_np_maxpool2d,
       samples=tuple((((6, 7),), {"size": k, "stride": s}) for k in (2, 3) for s in (1, 2)))


BUILT_IN = frozenset(CATALOGUE)  # the suite's own operations; a user's come with an adapter
_BUILT_IN_RECORDS = tuple(CATALOGUE.items())


def built_in():
    """Is the catalogue the suite's own, record for record and in order (no operation
    of a user's, none replaced)?"""
    return len(CATALOGUE) == len(_BUILT_IN_RECORDS) and all(
        CATALOGUE.get(name) is rec for name, rec in _BUILT_IN_RECORDS) and \
        list(CATALOGUE) == [name for name, _ in _BUILT_IN_RECORDS]


def markdown_table():
    """The README's table of operations, from the records."""
    rows = ["| operation | kind | operands | attributes drawn | domain | kinks and conventions |",
            "|---|---|---|---|---|---|"]
    for rec in CATALOGUE.values():
        arity = rec.arity if rec.arity is not None else "/".join(map(str, rec.arities))
        drawn = ", ".join(f"{k} ∈ {list(v)}" if v is not None else f"{k} (fitted)"
                          for k, v in rec.drawn.items()) or "-"
        domain = ("by p: real (p a natural), nonzero (p < 0 whole), nonnegative (p > 2), "
                  "positive (else)"
                  if callable(rec.domain) else ", ".join(rec.domain))
        kinks = (rec.convention or "-") + ("" if rec.at_kinks or not rec.convention else
                                           " (the references differ: fuzzing keeps off)")
        rows.append(f"| `{rec.name}` | {rec.kind} | {arity} | {drawn} | {domain} | {kinks} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
