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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mflow import shapes

KINDS = ("elementwise", "binary", "reduction", "movement", "softmax", "linear algebra",
         "convolution")
DOMAINS = ("real", "nonzero", "positive", "bounded", "invertible", "wide")  # strategies/domains.py
ROUNDINGS = ("result", "sums", "exact")


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
    #   "real", "nonzero", "positive", "bounded", "invertible", "wide" (strategies/domains.py)
    kinks: tuple = ()                 # inputs where the derivative jumps (fuzzing keeps off)
    convention: str = ""              # the derivative at a kink: torch's, JAX's (measured)
    rounding: str = "result"          # how float32 rounds it: "result" (the result, ~u
    #   relative), "sums" (backward stable: operands off by ~u, then rounded), "exact"
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
        return getattr(where, given or self.name)


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
    """Add records for good (a user's adapter module, at import)."""
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
    return ("positive",)


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
       drawn={"p": (2, 3, -1, 0.5, 1.5, -2.5)}, domain=_pow_domain,
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
       domain=("wide",), rounding="sums",
       torch=lambda torch, x, axis: torch.softmax(x, dim=axis),
       jax=lambda jax, x, axis: jax.nn.softmax(x, axis=axis), numpy=_np_softmax,
       slot="softmax", opcode_by=("axis",),
       samples=tuple((((3, 4),), {"axis": a}) for a in (0, 1)))
record("log_softmax", 1, "softmax", shapes.softmax, attrs={"axis": 1}, drawn={"axis": (1, 0)},
       domain=("wide",), rounding="sums",
       torch=lambda torch, x, axis: torch.log_softmax(x, dim=axis),
       jax=lambda jax, x, axis: jax.nn.log_softmax(x, axis=axis), numpy=_np_log_softmax,
       slot="log_softmax", opcode_by=("axis",),
       samples=tuple((((3, 4),), {"axis": a}) for a in (0, 1)))
record("trace", 1, "linear algebra", shapes.scalar_of_square, rounding="sums",
       torch=_scalar(lambda torch, x: torch.trace(x)),
       jax=_scalar(lambda jax, x: jax.numpy.trace(x)),
       numpy=lambda np, x: np.trace(x, axis1=-2, axis2=-1)[..., None, None], slot="trace",
       samples=((((4, 4),), {}), (((1, 1),), {})))
record("inv", 1, "linear algebra", shapes.square, domain=("invertible",), rounding="sums",
       torch=lambda torch, x: torch.linalg.inv(x), jax=lambda jax, x: jax.numpy.linalg.inv(x),
       numpy=lambda np, x: np.linalg.inv(x), slot="inv",
       samples=((((4, 4),), {}), (((1, 1),), {})))
record("det", 1, "linear algebra", shapes.scalar_of_square, domain=("invertible",),
       rounding="sums", torch=_scalar(lambda torch, x: torch.linalg.det(x)),
       jax=_scalar(lambda jax, x: jax.numpy.linalg.det(x)),
       numpy=lambda np, x: np.linalg.det(x)[..., None, None], slot="det",
       samples=((((4, 4),), {}), (((1, 1),), {}), (((3, 3),), {})))
record("conv2d", 2, "convolution", shapes.conv2d, attrs={"stride": 1, "padding": "valid"},
       drawn={"stride": (1, 2, 3), "padding": ("valid", "same")}, rounding="sums",
       torch=_torch_conv2d, jax=_jax_conv2d, numpy=_np_conv2d, slot="conv2d",
       samples=tuple((((6, 7), (3, 2)), {"stride": s, "padding": "valid"}) for s in (1, 2, 3))
       + tuple((((5, 6), (k, j)), {"padding": "same"}) for k, j in ((3, 3), (2, 4), (1, 1))))


def markdown_table():
    """The README's table of operations, from the records."""
    rows = ["| operation | kind | operands | attributes drawn | domain | kinks and conventions |",
            "|---|---|---|---|---|---|"]
    for rec in CATALOGUE.values():
        arity = rec.arity if rec.arity is not None else "/".join(map(str, rec.arities))
        drawn = ", ".join(f"{k} ∈ {list(v)}" if v is not None else f"{k} (fitted)"
                          for k, v in rec.drawn.items()) or "-"
        domain = ("by p: real (p a natural), nonzero (p < 0 whole), positive (else)"
                  if callable(rec.domain) else ", ".join(rec.domain))
        kinks = rec.convention or "-"
        rows.append(f"| `{rec.name}` | {rec.kind} | {arity} | {drawn} | {domain} | {kinks} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
