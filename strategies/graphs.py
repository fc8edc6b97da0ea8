"""Hypothesis strategies for random, shape-consistent expression graphs.

    from strategies import cases
    @given(cases(ops=["matmul", "relu", "sum"], max_steps=6))
    def test_engine(case): checker.check(case)

`cases()` draws a program together with its input values, step by step, so
that every operand is known when it is chosen: an operation takes only
operands inside its domain (log positive, inv well conditioned, exp bounded;
the names come from `mflow.ops`, their meaning from `strategies.domains`), and
every intermediate stays finite and of modest size.

How it shrinks. Each step is one span of draws, so Hypothesis can delete a
step whole. Before each step a flag says whether to go on; it shrinks to 0,
"stop", so programs get shorter. Operations are sampled from a list that puts
the simplest first. An operand is one draw: 0 a fresh input, 1 a fresh
constant, then the earlier values newest first, so deleting an older step does
not change what a later choice means. Values come from one seed per matrix and
do not shrink (see `strategies.domains.values`).
"""

import contextvars

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from mflow.ops import OPS
from mflow.shapes import ShapeError
from oracles.numpy_backend import NUMPY_OPS
from oracles.program import Case, Program, Step

from .domains import MAX_MAGNITUDE, accepts, values

_cache = {}


def _ints(lo, hi):
    """st.integers, built once per range: building strategies is a large share of a draw."""
    key = ("ints", lo, hi)
    if key not in _cache:
        _cache[key] = st.integers(lo, hi)
    return _cache[key]


def _choose(draw, options):
    """Like draw(sampled_from(options)), shrinking to the first option, without
    building a strategy for every new list."""
    return options[draw(_ints(0, len(options) - 1))]


def _values(shape, domain="real", kinks=()):
    key = ("values", shape, domain, kinks)
    if key not in _cache:
        _cache[key] = values(shape, domain, kinks)
    return _cache[key]

# Simplest first: shrinking moves towards the front of this list.
ORDER = ["add", "mul", "neg", "sub", "matmul", "transpose", "sum", "relu", "exp", "tanh",
         "sigmoid", "sin", "cos", "div", "log", "pow", "mean", "concat", "getitem", "softmax",
         "log_softmax", "trace", "inv", "det", "conv2d"]
assert sorted(ORDER) == sorted(OPS), "every operation of the table has a place here"

ATTRS = {  # the attribute values drawn for each operation (getitem's depend on the shape)
    "sum": {"axis": [None, 0, 1]}, "mean": {"axis": [None, 0, 1]},
    "softmax": {"axis": [1, 0]}, "log_softmax": {"axis": [1, 0]},
    "concat": {"axis": [0, 1]}, "pow": {"p": [2, 3, -1, 0.5, 1.5, -2.5]},
    "conv2d": {"stride": [1, 2, 3], "padding": ["valid", "same"]},
}


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
    unknown = [o for o in ops if o not in OPS]
    if unknown or not ops:
        raise InvalidArgument(f"ops={ops!r}: {'unknown ' + str(unknown) if unknown else 'empty'};"
                              f" operations are {', '.join(ORDER)}")
    return [o for o in ORDER if o in ops]


def cases(*, ops=None, min_steps=1, max_steps=10, max_inputs=4, max_side=8, dtype="float64",
          constants=True):
    """Cases (program, inputs, cotangent) over `ops` (default: every operation).

    min_steps / max_steps bound the operations drawn (a step no later one uses is
    then joined to the output by out + sum(step): two more steps), max_inputs the
    inputs, max_side every matrix's sides; dtype is "float64", "float32" or "mixed" (either, per
    case). Invalid arguments raise InvalidArgument naming them."""
    ops = _check_ops(ops)
    _check_bounds("min_steps", min_steps, "max_steps", max_steps, 1)
    _check_bounds("max_inputs", max_inputs, "max_inputs", max_inputs, 1)
    _check_bounds("max_side", max_side, "max_side", max_side, 1)
    if dtype not in ("float64", "float32", "mixed"):
        raise InvalidArgument(f"dtype={dtype!r} must be 'float64', 'float32' or 'mixed'")
    return _cases(ops, min_steps, max_steps, max_inputs, max_side, dtype, bool(constants))


def programs(**kwargs):
    """Programs alone: `cases(**kwargs)` without the values."""
    return cases(**kwargs).map(lambda case: case.program)


def _shapes(n):
    key = ("shapes", n)
    if key not in _cache:
        _cache[key] = [(r, c) for r in range(1, n + 1) for c in range(1, n + 1)]
    return _cache[key]


class _Graph:
    """The graph being drawn: every node's kind, shape and value, in creation order."""

    def __init__(self):
        self.nodes = []  # (kind, payload, value): kind "input" | "const" | "step"

    def add(self, kind, payload, value):
        self.nodes.append((kind, payload, value))
        return len(self.nodes) - 1

    def inputs(self):
        return sum(kind == "input" for kind, _, _ in self.nodes)

    def program(self, dtype):
        """Keep what the output depends on (and every input: an engine must give an
        unused input a zero gradient); renumber inputs first, then constants and
        steps in creation order."""
        live = {len(self.nodes) - 1}
        for i in reversed(range(len(self.nodes))):
            kind, payload, _ = self.nodes[i]
            if i in live and kind == "step":
                live.update(payload[1])
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
def _cases(draw, ops, min_steps, max_steps, max_inputs, max_side, dtype, constants):
    if dtype == "mixed":
        dtype = _choose(draw, ["float64", "float32"])
    g = _Graph()
    g.add("input", None, draw(_values(_choose(draw, _shapes(max_side)))))
    steps, attempts = 0, 0
    while steps < max_steps and attempts < 4 * max_steps:
        attempts += 1
        # one span per step, the stop flag inside it: Hypothesis deletes steps whole
        token = _STATE.set((g, ops, max_inputs, max_side, constants, steps >= min_steps))
        try:
            added = draw(_STEP_SPAN)
        finally:
            _STATE.reset(token)
        if added is None:
            break
        steps += added
    if not any(kind == "step" for kind, _, _ in g.nodes):
        _step(draw, g, ["neg"], max_inputs, max_side, constants)  # always at least one step
    _join_unused(g)
    program, inputs = g.program(dtype)
    cotangent = draw(_values(program.output_shape))
    np_dtype = np.dtype(dtype)
    return Case(program, tuple(x.astype(np_dtype) for x in inputs), cotangent.astype(np_dtype))


def _join_unused(g):
    """Add every step no later step uses into the output, as out + sum(v): a graph
    whose gradients reach all its steps (without this, most drawn steps were
    dead ends that no gradient checks). Not drawn: deleting a step's span during
    shrinking removes its join too."""
    used = {a for kind, payload, _ in g.nodes if kind == "step" for a in payload[1]}
    out = len(g.nodes) - 1
    for i, (kind, _, v) in enumerate(g.nodes[:-1]):
        if kind == "step" and i not in used:
            total = v.sum(keepdims=True)
            s = g.add("step", ("sum", (i,), {"axis": None}), total)
            out = g.add("step", ("add", (out, s), {}), g.nodes[out][2] + total)


# The graph being drawn reaches the step strategy through a context variable, so
# that one strategy object serves every step: building a strategy per step (a
# composite with arguments) cost a third of the drawing time in validation.
_STATE = contextvars.ContextVar("graph_being_drawn")


@st.composite
def _step_span(draw):
    """None to stop (the flag shrinks to 0: shorter programs), else 1 if a step was added.
    The flag is drawn even where it cannot stop, so every span reads the same
    draws wherever it stands, and deleting one span leaves the others aligned."""
    g, ops, max_inputs, max_side, constants, may_stop = _STATE.get()
    if draw(_ints(0, 7)) == 0 and may_stop:
        return None
    return int(_step(draw, g, ops, max_inputs, max_side, constants))


_STEP_SPAN = _step_span()


def _step(draw, g, ops, max_inputs, max_side, constants):
    """Draw one operation and its operands; add it if its value is usable."""
    name = _choose(draw, ops)
    op = OPS[name]
    arity = op.arity or draw(_ints(1, 3))
    attrs = {k: _choose(draw, v) for k, v in ATTRS.get(name, {}).items()}
    domains = op.domains(arity, attrs)
    chosen = []        # (node index or None for fresh, shape, value)
    fresh = []         # (kind, value) created for this step, committed only if it is kept
    for j in range(arity):
        last = j == arity - 1
        domain = domains[j]
        kinks = op.kinks

        def fits(shape, last=last):
            if not last:
                return max(shape) <= max_side
            try:
                out = op.shape(*[c[1] for c in chosen], shape, **attrs) if name != "getitem" \
                    else shape
            except ShapeError:
                return False
            return max(out) <= max_side

        candidates = [i for i in reversed(range(len(g.nodes)))
                      if fits(g.nodes[i][2].shape) and accepts(domain, g.nodes[i][2])]
        # One draw: 0 a fresh input, 1 a fresh constant, 2... an earlier value, newest
        # first. Fixed places, so deleting an older step leaves the meaning of every
        # later choice alone (which shrinking needs); a choice that is not allowed
        # here falls back to the next one that is.
        pick = draw(_ints(0, 1 + len(candidates)))
        inputs = g.inputs() + sum(kind == "input" for kind, _ in fresh)
        allowed = [inputs < max_inputs, constants and j > 0] + [True] * len(candidates)
        pick = next((k for k in range(pick, len(allowed)) if allowed[k]),
                    next((k for k in range(len(allowed)) if allowed[k]), None))
        if pick is None:
            return False
        pick = ["input", "const", *candidates][pick]
        if not isinstance(pick, str):
            chosen.append((pick, g.nodes[pick][2].shape, g.nodes[pick][2]))
            continue
        # a fresh operand's shape: sides related to the first operand's (the same, 1)
        # weighted three to one over any other shape, in one draw
        related = {chosen[0][1][0], chosen[0][1][1], 1} if chosen else set()
        valid = [s for s in _shapes(max_side)
                 if (domain != "invertible" or s[0] == s[1]) and fits(s)]
        proposals = valid + [s for s in valid if s[0] in related and s[1] in related] * 2
        if not proposals:
            return False
        shape = _choose(draw, proposals)
        value = draw(_values(shape, domain, kinks))
        fresh.append((pick, value))
        chosen.append((None, shape, value))
    if name == "getitem":
        attrs = _index(draw, chosen[0][1])
    try:
        out_shape = op.shape(*[c[1] for c in chosen], **attrs)
    except ShapeError:
        return False
    with np.errstate(all="ignore"):
        value = np.asarray(NUMPY_OPS[name](*[c[2] for c in chosen], **attrs), np.float64)
    if (value.shape != tuple(out_shape) or not np.all(np.isfinite(value))
            or np.max(np.abs(value)) > MAX_MAGNITUDE):
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
        else:
            out[key] = tuple(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n)))
    return out
