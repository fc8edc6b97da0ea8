"""Hypothesis strategies for random, shape-consistent expression graphs.

    from mflow.strategies import cases
    @given(cases(ops=["matmul", "relu", "sum"], max_steps=6))
    def test_engine(case): checker.check(case)

`cases()` draws a program together with its input values, step by step, so
that every operand is known when it is chosen: an operation takes only
operands inside its domain (log positive, inv well conditioned, exp bounded;
the names come from `mflow.ops`, their meaning from `strategies.domains`), and
every intermediate stays finite and of modest size.

How it shrinks. Each step is one span of a few draws, so Hypothesis can delete a
step whole (its shrinker deletes runs of up to five draws). The first draw is
the stop flag and the operation at once: 0 means "stop" (as do the few values
above the operations: one value in eight stops), so programs get shorter as it
shrinks towards 0, and the operations come in between, the simplest first. A
step before `min_steps` draws from the operations' values alone, so a value
names the same operation wherever its step stands. An operand is one draw: 0 the
newest earlier value that fits, 1 a fresh input, 2 a fresh constant, then the
older values, newest first (0 a fresh input and 1 a fresh constant where no
earlier value fits). Places are counted from the newest value, so deleting a
step changes no later choice that names a newer value or a fresh operand; and an
operand shrinks towards reusing the newest value, so shrunk programs are short
chains over few inputs, of steps of two or three draws. (A fresh input asked for
where the inputs have run out still reads its shape and seed, unused, so that
deleting a step which frees an input leaves the draws after it aligned.) Values
come from one seed per matrix and do not shrink (see
`strategies.domains.from_seed`).

What it costs. Hypothesis spends tens of microseconds on each draw, more than
the drawing itself, so a step draws little: the stop flag inside the
operation's draw, an operation's attributes (and concat's arity) in one draw, an
operand's place in one, and a fresh operand's shape and seed in two. Which
shapes fit an operation, and which to propose for a fresh operand, are worked
out once and kept.
"""

import contextvars
import functools
import itertools
from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies._internal.core import CompositeStrategy
from hypothesis.strategies._internal.numbers import IntegersStrategy
from mflow.oracles.catalogue import CATALOGUE, Derived, version
from mflow.oracles.numpy_backend import NUMPY_OPS
from mflow.oracles.program import HALF, UNIT, Case, Program, Step, live_values, np_dtype

from mflow.shapes import ShapeError

from .domains import (
    HALF_MAGNITUDE,
    MAX_MAGNITUDE,
    ROUNDING_MARGIN,
    SEEDS,
    accepts,
    clear_of_ties,
    from_seed,
)

_integers = {}


def _ints(lo, hi):
    """st.integers(lo, hi), built once per range. The strategy inside st.integers'
    lazy wrapper is kept: drawing from the wrapper resolves it again on every
    draw, a third of the draw's cost. (Same draws and shrinking either way.)"""
    strategy = _integers.get((lo, hi))
    if strategy is None:
        strategy = st.integers(lo, hi)
        strategy = _integers[lo, hi] = getattr(strategy, "wrapped_strategy", strategy)
    return strategy


def _choose(draw, options):
    """Like draw(sampled_from(options)), shrinking to the first option, without
    building a strategy for every new list."""
    return options[draw(_ints(0, len(options) - 1))]


# Seeds get a span label of their own:
# Hypothesis's mutator copies a span over another of the same label, so a seed
# goes over a seed (two equal matrices) rather than into an operand's place, where
# it misaligns the draws that follow and the example is mostly wasted.
_SEED_LABEL = 0x5EED_5EED_5EED


def _matrix(draw, shape, domain="real", kinks=(), points=None):
    """A fresh matrix from one drawn seed (`strategies.domains.from_seed`), without
    the cost of a mapped strategy."""
    return from_seed(domain, shape, draw(_ints(0, SEEDS - 1), label=_SEED_LABEL), kinks,
                     points)


class _Order(Sequence):
    """The operations, simplest first (the catalogue's order): shrinking moves towards
    the front of this list."""

    def __getitem__(self, i):
        return list(CATALOGUE)[i]

    def __iter__(self):  # not Sequence's, which calls __getitem__ once per element
        return iter(list(CATALOGUE))

    def __len__(self):
        return len(CATALOGUE)


ORDER = _Order()


def _variants(name):
    """Every (arity, attrs) an operation is drawn with, in one draw: the first
    values first, so shrinking moves towards them. The values come from the
    operation's record (`drawn`, `arities`); getitem's indices, drawn to fit
    the operand, are drawn apart (`_index`)."""
    op = CATALOGUE[name]
    arities = op.arities if op.arity is None else (op.arity,)
    spec = {k: v for k, v in op.drawn.items() if v is not None}
    return [(arity, dict(zip(spec, values)))
            for arity in arities for values in itertools.product(*spec.values())]


_VARIANTS = Derived(lambda: {name: _variants(name) for name in CATALOGUE})


def _check_bounds(name_lo, lo, name_hi, hi, least):
    for name, v in ((name_lo, lo), (name_hi, hi)):
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise InvalidArgument(f"{name}={v!r} must be an int >= {least}")
    if lo > hi:
        raise InvalidArgument(f"{name_lo}={lo} is larger than {name_hi}={hi}")


def _check_ops(ops):
    if ops is None:
        return list(ORDER)
    if isinstance(ops, str):
        raise InvalidArgument(f"ops={ops!r} must be a list of operation names, not a string")
    ops = list(ops)
    unknown = [o for o in ops if o not in CATALOGUE]
    if unknown or not ops:
        raise InvalidArgument(f"ops={ops!r}: {'unknown ' + str(unknown) if unknown else 'empty'};"
                              f" operations are {', '.join(ORDER)}")
    return [o for o in ORDER if o in ops]


def _check_attrs(ops, attrs):
    """Each operation's variants, restricted to the attribute values in `attrs`
    ({op: {attribute: allowed values}}, an adapter's declared support)."""
    attrs = attrs or {}
    for name, allowed in attrs.items():
        drawn = CATALOGUE[name].drawn if name in CATALOGUE else None
        bad = (drawn is None or not isinstance(allowed, dict)
               or any(drawn.get(k) is None or not set(v) <= set(drawn[k])
                      for k, v in allowed.items()))
        if bad:
            raise InvalidArgument(
                f"attrs[{name!r}]={allowed!r}: an operation's drawn attributes and a subset "
                f"of their values are expected ({name}: {drawn})")
    variants = {name: [v for v in _VARIANTS[name] if all(
        v[1].get(k) in set(vals) for k, vals in attrs.get(name, {}).items())] for name in ops}
    kept = [name for name in ops if variants[name]]
    if not kept:
        raise InvalidArgument(f"attrs={attrs!r} leaves no variant of {ops}")
    return tuple(kept), {name: variants[name] for name in kept}


DRAWN_DTYPES = ("float64", "float32", "mixed", "float16", "bfloat16", "half")


def cases(*, ops=None, min_steps=1, max_steps=10, max_inputs=4, max_side=8, dtype="float64",
          constants=True, attrs=None, points=True, declared=(), given=()):
    """Cases (program, inputs, cotangent) over `ops` (default: every operation).

    min_steps / max_steps bound the operations drawn (a step no later one uses is
    then joined to the output by out + sum(step): two more steps, with the
    operations at hand), max_inputs the inputs, max_side every matrix's sides; dtype
    is "float64", "float32" or "mixed" (either, per case), "float16", "bfloat16" or
    "half" (either; the operations with a half precision: not linear algebra, values
    where the dtype represents them, strategies/domains.py); attrs restricts attribute
    values ({"sum": {"axis": [None]}}). With `points`, interesting points are drawn on
    purpose (exact zeros, ties, integers, repeated rows, equal leaves, values exactly
    at kinks where torch and JAX agree: `strategies.domains.special`), except exactly
    at the kinks of the operations in `declared` (an engine's own conventions there,
    which the conventions table checks). `given`: (value, computed) pairs that the
    program starts from as its first inputs, operands like any other (an engine
    session's leaves, computed: False, and values it computed earlier, True: kept off
    kinks and ties as computed values are); max_inputs counts the fresh inputs only.
    Invalid arguments raise InvalidArgument."""
    ops, variants = _check_attrs(_check_ops(ops), attrs)
    _check_bounds("min_steps", min_steps, "max_steps", max_steps, 1)
    _check_bounds("max_inputs", max_inputs, "max_inputs", max_inputs, 1)
    _check_bounds("max_side", max_side, "max_side", max_side, 1)
    if dtype not in DRAWN_DTYPES:
        raise InvalidArgument(f"dtype={dtype!r} must be one of {', '.join(DRAWN_DTYPES)}")
    if dtype in (*HALF, "half"):  # linear algebra has no half precision (Record.half)
        ops = tuple(o for o in ops if CATALOGUE[o].half)
        if not ops:
            raise InvalidArgument(f"dtype={dtype!r}: none of the operations computes in half "
                                  "precision (linear algebra does not)")
        variants = {o: variants[o] for o in ops}
    points = _Points(bool(points), frozenset(declared or ()))
    given = tuple((np.asarray(v, np.float64), bool(c)) for v, c in given)
    if given and dtype not in ("float64", "float32"):
        raise InvalidArgument(f"given values need dtype 'float64' or 'float32', not {dtype!r}")
    return _cases(ops, _Frozen(variants), min_steps, max_steps, max_inputs, max_side, dtype,
                  bool(constants), points, given)


class _Points(tuple):
    """(on, declared): interesting points drawn, and the operations not drawn exactly at
    their kinks (see `cases`)."""

    def __new__(cls, on, declared):
        return super().__new__(cls, (on, declared))

    def at_kinks(self, name):
        """May an operand of `name` sit exactly on its kinks and ties (None: points off)?"""
        if not self[0]:
            return None
        return CATALOGUE[name].at_kinks and name not in self[1]


class _Frozen(dict):
    """The variants per operation, hashable so that equal arguments share a strategy."""

    def __hash__(self):
        return hash(tuple((k, len(v)) for k, v in self.items()))


def programs(**kwargs):
    """Programs alone: `cases(**kwargs)` without the values."""
    return cases(**kwargs).map(lambda case: case.program)


@functools.cache
def _shapes(n):
    return tuple((r, c) for r in range(1, n + 1) for c in range(1, n + 1))


@functools.cache
def _heads(ops):
    """A step's first draw over `ops`: (per, strategy where the step may stop,
    strategy where it may not). 0 means stop; 1 to per * len(ops) name the
    operations in order, `per` values each; the few values above them mean stop
    too, so that one value in eight stops (to within half a percent; the smallest
    range that does). Only 0 among the small values stops: where a mutation of
    Hypothesis's shifts the draws, a small value meant for an operand and read
    here names an operation, as when the flag was a draw of its own. At most 128
    values: Hypothesis draws integers uniformly there, and weights the ends of a
    wider range."""
    n = len(ops)

    def stops(per):
        return max(1, round(per * n / 7))
    per = next((p for p in range(1, 8) if stops(p) + p * n <= 128
                and abs(stops(p) / (stops(p) + p * n) - 1 / 8) <= 0.005), max(1, min(7, 111 // n)))
    return per, _ints(0, per * n + stops(per) - 1), _ints(1, per * n)


class _Fits(dict):
    """shape -> may the last operand of `name` have it, after operands of shapes
    `before`: a valid result whose sides are at most max_side. Filled as asked."""

    def __init__(self, name, attrs, before, max_side):
        super().__init__()
        self.rec, self.attrs, self.before = CATALOGUE[name], attrs, before
        self.max_side = max_side

    def __missing__(self, shape):
        try:
            fitted = {} if self.rec.fit is None else \
                self.rec.fit(lambda lo, hi: lo, *self.before, shape)  # any fitted value will do
            out = self.rec.shape(*self.before, shape, **self.attrs, **fitted)
        except ShapeError:
            out = None
        fits = self[shape] = out is not None and max(out) <= self.max_side
        return fits


def _fitting(name, attrs, before, last, max_side):
    return _fitting_at(version(), name, attrs, before, last, max_side)


@functools.lru_cache(maxsize=1 << 14)
def _fitting_at(at, name, attrs, before, last, max_side):
    """The `_Fits` of an operand, or None where every shape fits (sides up to
    max_side, as every value drawn has): an operand before the last, or
    getitem's, whose indices are drawn to fit it. attrs as sorted items."""
    if not last or name == "getitem":
        return None
    return _Fits(name, dict(attrs), before, max_side)


def _proposals(name, attrs, before, last, max_side, domain):
    return _proposals_at(version(), name, attrs, before, last, max_side, domain)


@functools.lru_cache(maxsize=1 << 14)
def _proposals_at(at, name, attrs, before, last, max_side, domain):
    """Shapes for a fresh operand: those that fit (square for "invertible"), and
    again, twice, those whose sides relate to the first operand's (its sides, or
    1), so that related shapes come three to one over any other."""
    fits = _fitting(name, attrs, before, last, max_side)
    valid = [s for s in _shapes(max_side)
             if (fits is None or fits[s]) and (domain != "invertible" or s[0] == s[1])]
    related = {before[0][0], before[0][1], 1} if before else set()
    return tuple(valid + [s for s in valid if s[0] in related and s[1] in related] * 2)


class _Graph:
    """The graph being drawn: every node's kind, shape and value, in creation order."""

    def __init__(self, points=None, dtype="float64"):
        self.points, self.dtype = points or _Points(False, frozenset()), dtype
        self.nodes = []  # (kind, payload, value): kind "input" | "const" | "step"
        self.shapes = []  # each node's shape
        self.margins = []  # each node's rounding margin (a value computed in half: domains.py)
        self.accepted = {}  # (domain, kinks, exact) -> [nodes looked at, those accepted]
        self.inputs = 0
        self.computed = set()  # given inputs that an engine computed (`cases`' given)
        self.half = dtype in HALF
        self.unit = UNIT[dtype]  # the unit roundoff, as the tolerance model's
        self.largest, self.steps = 1.0, 0  # the largest |value| so far, the steps so far
        self.magnitude = HALF_MAGNITUDE.get(dtype, MAX_MAGNITUDE)

    def add(self, kind, payload, value):
        self.nodes.append((kind, payload, value))
        self.shapes.append(value.shape)
        self.inputs += kind == "input"
        if self.half:  # margins grow with the values and the steps before this one
            self.largest = max(self.largest, float(np.max(np.abs(value))))
            self.steps += kind == "step"
            self.margins.append(ROUNDING_MARGIN * self.unit * self.largest * self.steps
                                if kind == "step" else 0.0)
        else:
            self.margins.append(0.0)
        return len(self.nodes) - 1

    def held(self, value, seed):
        """A fresh value from `seed` as the case's dtype holds it (in half precision:
        exactly what the engine and the float64 references are both given; one seed in
        LARGE[0] stands for it LARGE[2] times larger)."""
        if not self.half:
            return value
        if seed % LARGE[0] == LARGE[1]:
            value = value * LARGE[2]
        return value.astype(np_dtype(self.dtype)).astype(np.float64)

    def operands(self, domain, kinks=(), exact=False):
        """The nodes that may be an operand in `domain`, clear of `kinks` (`exact`: or
        on one), oldest first. Computed values too: two inputs drawn equal made
        relu(x1 - x0) exactly relu(0), where engines' conventions differ (autograd's
        relu'(0) is 1/2). Each node is looked at once per key: values never change."""
        seen = self.accepted.get((domain, kinks, exact))
        if seen is None:
            seen = self.accepted[domain, kinks, exact] = [0, []]
        for i in range(seen[0], len(self.nodes)):
            if accepts(domain, self.nodes[i][2], kinks, self.exact(i, exact), self.margins[i]):
                seen[1].append(i)
        seen[0] = len(self.nodes)
        return seen[1]

    def exact(self, i, exact=True):
        """May node i's value sit exactly on a kink or tie (where the operation allows
        it)? An input's or a constant's always; a computed value's in float64 only: its
        exact zero (x - y + y - x) may be a rounding error's worth off in float32, on
        the other side of the kink, where the references in float64 are not."""
        computed = self.nodes[i][0] == "step" or i in self.computed
        return bool(exact) and (not computed or self.dtype == "float64")

    def program(self, dtype):
        """Keep what the output depends on (and every input: an engine must give an
        unused input a zero gradient); renumber inputs first, then constants and
        steps in creation order."""
        live = live_values([payload[1] if kind == "step" else () for kind, payload, _
                            in self.nodes], len(self.nodes) - 1)
        order = ([i for i, n in enumerate(self.nodes) if n[0] == "input"]
                 + [i for i, n in enumerate(self.nodes) if n[0] != "input" and i in live])
        new = {old: k for k, old in enumerate(order)}
        inputs = [self.nodes[i][2].shape for i in order if self.nodes[i][0] == "input"]
        steps = []
        for i in order:
            kind, payload, value = self.nodes[i]
            if kind == "const":
                steps.append(Step("const", (), {"value": tuple(map(tuple, value.tolist()))}))
            elif kind == "step":
                op, args, attrs = payload
                steps.append(Step(op, tuple(new[a] for a in args), attrs))
        values = [self.nodes[i][2] for i in order if self.nodes[i][0] == "input"]
        return Program(tuple(inputs), tuple(steps), dtype), values


@st.composite
def _cases(draw, *args):
    # numpy's error state set once a case: setting it around every step's value cost
    # a twentieth of the drawing (overflow and NaN are checked for, `_step`)
    with np.errstate(all="ignore"):
        return _case(draw, *args)


def _case(draw, ops, variants, min_steps, max_steps, max_inputs, max_side, dtype, constants,
          points, given=()):
    if dtype in ("mixed", "half"):
        dtype = _choose(draw, ["float64", "float32"] if dtype == "mixed" else list(HALF))
    g = _Graph(points, dtype)
    generic = False if points[0] else None  # interesting points, none on a kink
    for value, computed in given:
        i = g.add("input", None, value)
        if computed:
            g.computed.add(i)
    max_inputs += len(given)
    if not given:
        shape = _choose(draw, _shapes(max_side))
        seed = draw(_ints(0, SEEDS - 1), label=_SEED_LABEL)
        g.add("input", None, g.held(from_seed("real", shape, seed, (), generic), seed))
    steps, attempts = 0, 0
    while steps < max_steps and attempts < 4 * max_steps:
        attempts += 1
        # one span per step, the stop flag inside it: Hypothesis deletes steps whole
        token = _STATE.set((g, ops, variants, max_inputs, max_side, constants,
                            steps >= min_steps))
        try:
            added = draw(_STEP_SPAN)
        finally:
            _STATE.reset(token)
        if added is None:
            break
        steps += added
    if not any(kind == "step" for kind, _, _ in g.nodes):
        first = "neg" if "neg" in ops else next(
            (o for o in ops if CATALOGUE[o].arity == 1 and o != "getitem"), ops[0])
        _step(draw, g, first, variants, max_inputs, max_side, constants)  # at least one step
    _join_unused(g, variants)
    program, inputs = g.program(dtype)
    cotangent = _matrix(draw, program.output_shape, points=generic)
    dt = np_dtype(dtype)
    return Case(program, tuple(x.astype(dt) for x in inputs), cotangent.astype(dt))


PRODUCTS = ("prod", "cumprod")  # (half precision: partial products, see `_step`)
JOINS = (("sum", "mean"), ("add", "sub", "mul"))  # a full reduction, then a combination


def _join_unused(g, variants):
    """Add every step no later step uses into the output, as out + sum(v): a graph
    whose gradients reach all its steps (without this, most drawn steps were
    dead ends that no gradient checks). With the engine's operations only (mean
    for sum, sub or mul for add; none: no join). Not drawn: deleting a step's span
    during shrinking removes its join too."""
    reduce_ = next((o for o in JOINS[0] if any(a["axis"] is None for _, a in
                                               variants.get(o, ()))), None)
    combine = next((o for o in JOINS[1] if o in variants), None)
    if reduce_ is None or combine is None:
        return
    used = {a for kind, payload, _ in g.nodes if kind == "step" for a in payload[1]}
    out = len(g.nodes) - 1
    for i, (kind, _, v) in enumerate(g.nodes[:-1]):
        if kind == "step" and i not in used:
            total = NUMPY_OPS[reduce_](v, axis=None)
            s = g.add("step", (reduce_, (i,), {"axis": None}), total)
            out = g.add("step", (combine, (out, s), {}),
                        NUMPY_OPS[combine](g.nodes[out][2], total))


# The graph being drawn reaches the step strategy through a context variable, so
# that one strategy object serves every step: building a strategy per step (a
# composite with arguments) cost a third of the drawing time in validation.
_STATE = contextvars.ContextVar("graph_being_drawn")


@st.composite
def _step_span(draw):
    """None to stop, else 1 if a step was added. The first draw is the stop flag
    and the operation at once (see `_heads`): it shrinks to 0, "stop", so programs
    get shorter, and otherwise towards the simplest operations. A value means the
    same operation wherever the span stands, and the span reads the same draws
    after it, so deleting one span leaves the others aligned."""
    g, ops, variants, max_inputs, max_side, constants, may_stop = _STATE.get()
    per, may, may_not = _heads(ops)
    k = draw(may if may_stop else may_not)
    if not 1 <= k <= per * len(ops):
        return None
    return int(_step(draw, g, ops[(k - 1) // per], variants, max_inputs, max_side, constants))


_STEP_SPAN = _step_span()
_STEP_SPAN = getattr(_STEP_SPAN, "wrapped_strategy", _STEP_SPAN)  # as in _ints


def _step(draw, g, name, variants, max_inputs, max_side, constants):
    """Draw the operands of one operation; add it if its value is usable."""
    op = CATALOGUE[name]
    variants = variants[name]
    arity, attrs = variants[0] if len(variants) == 1 else _choose(draw, variants)
    key = tuple(sorted(attrs.items()))
    domains = op.domains(arity, attrs)
    kinks = op.kinks_at(attrs)
    at = g.points.at_kinks(name)  # None: no interesting points; else may sit on the kinks
    chosen = []        # (node index or None for fresh, shape, value)
    fresh = []         # (kind, value) created for this step, committed only if it is kept
    for j in range(arity):
        domain = domains[j]
        before = tuple(c[1] for c in chosen)
        fits = _fitting(name, key, before, j == arity - 1, max_side)
        candidates = g.operands(domain, kinks, at)[::-1]  # newest first
        if fits is not None:
            candidates = [i for i in candidates if fits[g.shapes[i]]]
        # One draw (see the module's docstring): 0 the newest value that fits, 1 a
        # fresh input, 2 a fresh constant, then the older values, newest first;
        # without a value that fits, 0 a fresh input and 1 a fresh constant. A fresh
        # operand that is not allowed here falls back to the next that is, of input,
        # constant, newest value (from a constant, of constant, value, input).
        pick = draw(_ints(0, 1 + len(candidates)))
        if candidates and pick not in (1, 2):
            i = candidates[max(0, pick - 2)]
            chosen.append((i, g.shapes[i], g.nodes[i][2]))
            continue
        asked = ("input", "const")[pick - 1 if candidates else pick]
        allowed = {"input": g.inputs + sum(kind == "input" for kind, _ in fresh) < max_inputs,
                   "const": constants and j > 0, "value": bool(candidates)}
        order = ("input", "const", "value") if asked == "input" else ("const", "value", "input")
        kind = next((k for k in order if allowed[k]), None)
        if kind is None:
            return False
        # a fresh operand's shape: sides related to the first operand's (the same, 1)
        # weighted three to one over any other shape, in one draw
        proposals = _proposals(name, key, before, j == arity - 1, max_side, domain)
        if kind == "value":
            if asked == "input" and proposals:
                # A fresh input asked for where the inputs have run out: its shape and
                # seed are still read, unused. Deleting an earlier step may free an
                # input, and the draws after this one must keep their meaning then.
                _choose(draw, proposals)
                draw(_ints(0, SEEDS - 1), label=_SEED_LABEL)
            i = candidates[0]
            chosen.append((i, g.shapes[i], g.nodes[i][2]))
            continue
        if not proposals:
            return False
        shape = _choose(draw, proposals)
        value = _fresh(draw, g, fresh, shape, domain, kinks, at)
        if value is None:
            return False
        fresh.append((kind, value))
        chosen.append((None, shape, value))
    if name == "getitem":
        attrs = _index(draw, chosen[0][1])
    elif op.fit is not None:  # attributes drawn to fit the operands (where's mask)
        attrs = {**attrs, **op.fit(lambda lo, hi: draw(_ints(lo, hi)), *[c[1] for c in chosen])}
    try:
        out_shape = op.shape(*[c[1] for c in chosen], **attrs)
    except ShapeError:
        return False
    value = np.asarray(NUMPY_OPS[name](*[c[2] for c in chosen], **attrs), np.float64)
    size = np.abs(value).max()  # NaN and infinities fail `size <= ...` below
    if value.shape != tuple(out_shape) or not size <= g.magnitude:
        return False
    if g.half and name in PRODUCTS and not np.prod(np.maximum(1, np.abs(chosen[0][2]))) \
            <= g.magnitude:  # every partial product in range, as well as the product:
        return False  # torch's own float16 prod multiplies in float16 (found: inf)
    exact = bool(at) and all(i is None or g.exact(i) for i, _, _ in chosen)
    margin = max((g.margins[i] for i, _, _ in chosen if i is not None), default=0.0)
    if op.ties is not None and not clear_of_ties(op, [c[2] for c in chosen], attrs, exact,
                                                 margin):
        return False
    it = iter(fresh)
    args = []
    for i, _, v in chosen:
        if i is None:
            kind, v = next(it)
            i = g.add(kind, None, v)
        args.append(i)
    g.add("step", (name, tuple(args), attrs), value)
    return True


def _fresh(draw, g, fresh, shape, domain, kinks, at):
    """A fresh operand's value from one drawn seed; with interesting points on, one
    seed in 16 stands for a copy of the newest earlier leaf of its shape where there
    is one in the domain: two distinct leaves of equal value (an engine that merges
    equal leaves, or caches by value, doubles a gradient there)."""
    seed = draw(_ints(0, SEEDS - 1), label=_SEED_LABEL)
    if at is not None and seed % 16 == 15:
        leaves = [v for _, v in reversed(fresh)] + [
            v for kind, _, v in reversed(g.nodes) if kind != "step"]
        same = next((v for v in leaves if v.shape == shape
                     and accepts(domain, v, kinks, at)), None)
        if same is not None:
            return np.array(same)
    x = from_seed(domain, shape, seed, kinks, at)
    if g.half:  # as the dtype holds it, still inside the domain and clear of the kinks
        x = g.held(x, seed)
        if not accepts(domain, x, kinks, at):
            return None
    return x


# In half precision one seed in 8 stands for a matrix 16 times larger (|x| up to 32):
# where float16's range is near, past e²ˣ = 65504 at x = 5.5 (tanh through exp) or eˣ at
# x = 11 (softplus as log(1 + eˣ)), which values in [-2, 2] reach only through sums.
LARGE = (8, 4, 16.0)  # (every, which, scale): seed % 8 == 4, apart from domains.SPECIAL's 3


def _index(draw, shape):
    """getitem's rows and cols: a slice, an int, or a list of indices (repeats allowed)."""
    out = {}
    for key, n in zip(("rows", "cols"), shape):
        how = _choose(draw, ["slice", "int", "list"])
        if how == "slice":
            start = draw(_ints(0, n - 1))
            stop = draw(_ints(start + 1, n))
            out[key] = slice(start, stop, draw(_ints(1, max(1, stop - start))))
        elif how == "int":
            i = draw(_ints(0, n - 1))
            out[key] = slice(i, i + 1, 1)
        else:  # its length, then its indices: integer draws only (see `draw_fast`)
            out[key] = tuple(draw(_ints(0, n - 1)) for _ in range(draw(_ints(1, n))))
    return out


# --- drawing without Hypothesis ---------------------------------------------------------

def draw_fast(strategy, rng):
    """(case, choices): a case of `strategy` (made by `cases`) whose every choice
    `rng` (a random.Random) draws uniformly, without Hypothesis: 1.6-1.7 ms a
    graph of 10 drawn operations against 6-10 through Hypothesis, whose bookkeeping
    costs 17-36 µs a draw (benchmarks/results/throughput_search*.md,
    throughput_drawing.md). Every draw is an integer in a range, so `choices` is the
    choice sequence Hypothesis would have made: given it (as an example in its
    database, reports/search.py), Hypothesis replays this very case, then shrinks it
    as any failure it found."""
    drawer = _FastDraw(rng)
    return drawer(strategy), drawer.choices


class _FastDraw:
    """A `draw` for the strategies of this module: integers from `rng`, recorded;
    composites called with this drawer; labels ignored (they only guide Hypothesis's
    mutator and shrinker)."""

    def __init__(self, rng):
        self.rng, self.choices = rng, []

    def __call__(self, strategy, label=None):
        strategy = getattr(strategy, "wrapped_strategy", strategy)
        if isinstance(strategy, IntegersStrategy):  # random() is a third of randint's cost
            value = strategy.start + int(self.rng.random() * (strategy.end - strategy.start + 1))
            self.choices.append(value)
            return value
        if isinstance(strategy, CompositeStrategy):
            return strategy.definition(self, *strategy.args, **strategy.kwargs)
        raise TypeError(f"draw_fast draws the strategies of strategies/graphs.py, not "
                        f"{strategy!r}")
