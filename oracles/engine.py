"""The engine under test, behind a small adapter protocol.

An adapter is any object (or module) with

    name       a short name for reports
    ops        {operation name: function(*operands, **attrs)} on the engine's values,
               for the operations it supports (names and attrs as in the catalogue,
               mflow.oracles.catalogue)
    to_numpy(value) -> numpy array

and one of two ways to differentiate:

    graph form (engines that build a graph, as mflow, torch, MyGrad, tinygrad):
      leaf(array)        an input that gradients are taken with respect to
      constant(array)    a value that needs no gradient
      gradients(output, leaves, cotangent) -> one array per leaf: the VJP of
                         `cotangent` (zeros for a leaf the output ignores)
    functional form (engines that differentiate functions, as JAX, HIPS autograd):
      vjp(fn, inputs, cotangent) -> (output, one array per input): fn(*xs) builds the
                         program from the engine's values with `ops`; inputs are numpy
                         arrays; constants are `constant(array)` if defined, else arrays

The suite calls, per case: (graph form) leaf for each input, in order, then
constant and the ops in program order, then gradients once, then to_numpy on
the output and each gradient; (functional form) vjp once, which calls fn
(any number of times), then to_numpy. Each case starts afresh: nothing is
reused between cases.

Optional capabilities, each with its default:

    version      "" (recorded in reports; say the library's version)
    dtypes       ("float64", "float32"): the dtypes it computes in, of "float64",
                 "float32", "float16" and "bfloat16" (ml_dtypes' bfloat16 arrays)
    attrs        {}: per operation, the attribute values it supports, e.g.
                 {"sum": {"axis": [None]}, "conv2d": {"padding": ["valid"]}}
    jvp          forward mode, checked where offered (oracles/modes.py):
                 graph form jvp(output, leaves, tangents) -> J ṫ; functional form
                 jvp(fn, inputs, tangents) -> (output, J ṫ)
    jvp_ops      all of `ops`: those whose forward mode it has (a graph with another
                 is checked in reverse mode only)
    hvp          second order, checked where offered (oracles/modes.py): the
                 Hessian-vector product ∂/∂x ⟨cotangent, J(x) ṫ⟩ per input; graph form
                 hvp(output, leaves, cotangent, tangents) -> one array per leaf;
                 functional form hvp(fn, inputs, cotangent, tangents) -> one per input
    hvp_ops      all of `ops`: those whose second order it has
    first_use    0: seconds a case may take where the engine compiles on first use
                 (tinygrad): the time limit's base becomes the larger of this and 10 s
    conventions  {}: per kinked operation, its derivative at each kink where it
                 differs from torch and JAX, e.g. {"relu": {0.0: 0.5}}; the kink test
                 reports a declared convention as such, not as a failure, and fuzzing
                 does not go exactly to those kinks
    session      {}: what an engine session (reports/sessions.py) may ask of it beyond
                 today's order of calls, each False unless declared: "read_early" (to_numpy
                 of a value before any gradient of its graph is taken: a lazy engine
                 realises it then), "second_gradient" (gradients of a graph already
                 differentiated, again and through its values: torch's retain_graph;
                 MyGrad's backward clears its graph, so it declares False), "assign"
                 (`assign(leaf, array)`: the leaf's values replaced in place, as an
                 optimiser's `x -= eta * g`; graphs built on it afterwards see the new
                 values, values computed before are not asked about again), "accumulate"
                 (gradient buffers, as torch's .backward() and .grad: `backward(output,
                 cotangent)` adds the VJP into the buffer of each leaf the output depends
                 on, `grad(leaf)` returns that buffer (a value of the engine, or None when
                 empty), `zero_grad(leaf)` empties it; a buffer is kept through `assign`)
    records      (): operations of its own, outside the catalogue: one catalogue Record
                 each (mflow.oracles.catalogue: name, arity, kind, shape rule, domain,
                 kinks and conventions, attributes drawn, torch and JAX references),
                 its implementation in `ops` under the same name; registered when the
                 adapter is loaded, then drawn and checked with the built-in operations

The suite then draws only the operations in `ops`, with those attribute values
and dtypes. It talks to an adapter only through `normalise(engine)`, which tells the
two forms apart once, when the adapter is loaded, and gives every mode one call:
vjp(program, inputs, cotangent), jvp(program, inputs, tangents), hvp(program,
inputs, cotangent, tangents), numpy arrays in and out. mflow's own adapter below is
the default; `load_engine("pkg.module:attr")` loads another, named on the command
line (`--mflow-engine ...`) or in MFLOW_ENGINE; ready adapters for other libraries
are in mflow.oracles.adapters.
"""

import importlib
from dataclasses import dataclass
from functools import partial

import numpy as np

import mflow
from mflow.ops import OPS

from .program import DTYPES as ALL_DTYPES
from .program import interpret

REQUIRED = ("name", "ops", "to_numpy")
GRAPH_FORM = ("leaf", "constant", "gradients")
DTYPES = ("float64", "float32")  # what an adapter computes in unless it says (ALL_DTYPES)


class EngineError(Exception):
    """An adapter that cannot be loaded or used, and what is missing."""


@dataclass
class Result:
    """What one backend answered: the output and the VJP for every input."""
    forward: np.ndarray
    grads: list


class MflowEngine:
    """mflow itself, through the same protocol a user's engine implements."""

    name = "mflow"
    dtypes = ("float64", "float32", "float16", "bfloat16")
    session = {"read_early": True, "second_gradient": True, "assign": True, "accumulate": True}

    def __init__(self):
        self.ops = {name: partial(mflow.apply, name) for name in OPS}

    def leaf(self, array):
        return mflow.Node(array, requires_grad=True)

    def assign(self, leaf, array):
        leaf.value = np.array(array)

    def constant(self, array):
        return mflow.Node(array)

    def backward(self, output, cotangent):
        if output.requires_grad:
            output.backward(cotangent)

    def grad(self, leaf):
        return None if leaf.grad is None else mflow.Node(leaf.grad)

    def zero_grad(self, leaf):
        leaf.grad = None

    def gradients(self, output, leaves, cotangent):
        """The VJP of this call alone (mflow.grad: `.grad` is left alone, so a session's
        second VJP of the same leaves is not added to the first)."""
        if not output.requires_grad:
            return [np.zeros_like(x.value) for x in leaves]
        return [g.value for g in mflow.grad(output, leaves, cotangent)]

    def jvp(self, output, leaves, tangents):
        return mflow.jvp(output, leaves, tangents)

    def hvp(self, output, leaves, cotangent, tangents):
        """∂/∂x ⟨Jᵀ cotangent, ṫ⟩ (mflow.hvp: the gradient built as a graph, then
        differentiated once more)."""
        return mflow.hvp(output, leaves, cotangent, tangents)

    def to_numpy(self, value):
        return value.value


class Normalised:
    """An adapter behind one call per mode, whichever form it has: told apart once, here.
    Each call runs a program on numpy arrays and returns numpy arrays (what the
    adapter returned, through its to_numpy)."""

    def __init__(self, engine):
        self.adapter, self.name = engine, engine.name
        self.functional = hasattr(engine, "vjp")
        self.offers = {"vjp": True, "jvp": callable(getattr(engine, "jvp", None)),
                       "hvp": callable(getattr(engine, "hvp", None))}

    def _array(self, value):
        return value if isinstance(value, np.ndarray) else np.asarray(
            self.adapter.to_numpy(value))

    def _function(self, program):
        """fn(*xs), the program on the engine's values (the functional form)."""
        constant = getattr(self.adapter, "constant", lambda a: a)
        return lambda *xs: interpret(program, self.adapter.ops, lambda x: x, constant, xs)[-1]

    def _graph(self, program, inputs):
        """(leaves, output) built on the engine's values (the graph form)."""
        values = interpret(program, self.adapter.ops, self.adapter.leaf,
                           self.adapter.constant, inputs)
        return values[:len(inputs)], values[-1]

    def vjp(self, program, inputs, cotangent):
        """Result: the forward value and the VJP of `cotangent` for every input."""
        if self.functional:
            out, grads = self.adapter.vjp(self._function(program), list(inputs), cotangent)
        else:
            leaves, out = self._graph(program, inputs)
            grads = self.adapter.gradients(out, leaves, cotangent)
        return Result(np.asarray(self.adapter.to_numpy(out)), [self._array(g) for g in grads])

    def jvp(self, program, inputs, tangents):
        """(output, J ṫ)."""
        if self.functional:
            out, t = self.adapter.jvp(self._function(program), list(inputs), list(tangents))
        else:
            leaves, out = self._graph(program, inputs)
            t = self.adapter.jvp(out, leaves, list(tangents))
        return self._array(out), self._array(t)

    def hvp(self, program, inputs, cotangent, tangents):
        """H ṫ per input."""
        if self.functional:
            hs = self.adapter.hvp(self._function(program), list(inputs), cotangent,
                                  list(tangents))
        else:
            leaves, out = self._graph(program, inputs)
            hs = self.adapter.hvp(out, leaves, cotangent, list(tangents))
        return [self._array(h) for h in hs]


def normalise(engine):
    """The adapter behind one call per mode (Normalised); an already normalised one as is."""
    return engine if isinstance(engine, Normalised) else Normalised(engine)


def run_engine(engine, program, inputs, cotangent):
    """Forward and VJP of a program on an adapter; numpy arrays out."""
    return normalise(engine).vjp(program, inputs, cotangent)


def run_engine_jvp(engine, program, inputs, tangents):
    """(output, J ṫ) of a program on an adapter; numpy arrays out."""
    return normalise(engine).jvp(program, inputs, tangents)


def run_engine_hvp(engine, program, inputs, cotangent, tangents):
    """H ṫ per input of a program on an adapter; numpy arrays out."""
    return normalise(engine).hvp(program, inputs, cotangent, tangents)


@dataclass(frozen=True)
class Capabilities:
    """What an adapter declares (see the module's docstring), defaults filled in."""
    dtypes: tuple = DTYPES
    attrs: dict = None
    conventions: dict = None
    version: str = ""
    functional: bool = False
    jvp_ops: frozenset = frozenset()  # empty: no forward mode
    first_use: float = 0.0
    hvp_ops: frozenset = frozenset()  # empty: no second order
    session: dict = None  # SESSION's keys, each True or False


SESSION = ("read_early", "second_gradient", "assign", "accumulate")
SESSION_CALLS = {"assign": ("assign",), "accumulate": ("backward", "grad", "zero_grad")}


def capabilities(engine):
    jvp = callable(getattr(engine, "jvp", None))
    hvp = callable(getattr(engine, "hvp", None))
    return Capabilities(tuple(getattr(engine, "dtypes", DTYPES)),
                        dict(getattr(engine, "attrs", {}) or {}),
                        dict(getattr(engine, "conventions", {}) or {}),
                        str(getattr(engine, "version", "") or ""), hasattr(engine, "vjp"),
                        frozenset(getattr(engine, "jvp_ops", engine.ops) if jvp else ()),
                        float(getattr(engine, "first_use", 0.0) or 0.0),
                        frozenset(getattr(engine, "hvp_ops", engine.ops) if hvp else ()),
                        {k: bool((getattr(engine, "session", None) or {}).get(k, False))
                         for k in SESSION})


def check_adapter(engine, spec):
    """EngineError naming what is wrong with an adapter's declarations, if anything."""
    missing = [n for n in REQUIRED if not hasattr(engine, n)]
    if not hasattr(engine, "vjp"):
        missing += [n for n in GRAPH_FORM if not hasattr(engine, n)]
    if missing:
        raise EngineError(f"--engine {spec!r}: the adapter lacks {', '.join(missing)}; "
                          f"an adapter needs {', '.join(REQUIRED)} and either vjp or "
                          f"{', '.join(GRAPH_FORM)} (see mflow/oracles/engine.py)")
    from .catalogue import CATALOGUE
    unknown = sorted(set(engine.ops) - set(CATALOGUE))
    if unknown:
        raise EngineError(f"--engine {spec!r}: ops {unknown} are not operations the suite "
                          f"knows; names are those of the catalogue: "
                          f"{', '.join(sorted(CATALOGUE))}")
    caps = capabilities(engine)
    if not caps.dtypes or not set(caps.dtypes) <= set(ALL_DTYPES):
        raise EngineError(f"--engine {spec!r}: dtypes {caps.dtypes!r}: a non-empty subset of "
                          f"{ALL_DTYPES}")
    for name, allowed in caps.attrs.items():
        drawn = CATALOGUE[name].drawn if name in CATALOGUE else {}
        if name not in engine.ops or not isinstance(allowed, dict) or any(
                drawn.get(k) is None or not v or not set(v) <= set(drawn[k])
                for k, v in allowed.items()):
            raise EngineError(f"--engine {spec!r}: attrs[{name!r}] = {allowed!r}: name one of "
                              f"its operations and a non-empty subset of the values drawn: {drawn}")
    for mode, declared in (("jvp", caps.jvp_ops), ("hvp", caps.hvp_ops)):
        if not declared <= set(engine.ops):
            raise EngineError(f"--engine {spec!r}: {mode}_ops "
                              f"{sorted(declared - set(engine.ops))} are not in its ops")
    unknown = set(getattr(engine, "session", None) or {}) - set(SESSION)
    if unknown:
        raise EngineError(f"--engine {spec!r}: session {sorted(unknown)}: the keys are "
                          f"{', '.join(SESSION)}")
    for key, calls in SESSION_CALLS.items():
        lacking = [c for c in calls if not callable(getattr(engine, c, None))]
        if caps.session[key] and lacking:
            raise EngineError(f"--engine {spec!r}: session declares {key!r} but the adapter "
                              f"lacks {', '.join(lacking)}")
    for name, at in caps.conventions.items():
        kinks = CATALOGUE[name].every_kink() if name in CATALOGUE else ()
        if not isinstance(at, dict) or not set(at) <= set(kinks):
            raise EngineError(f"--engine {spec!r}: conventions[{name!r}] = {at!r}: "
                              f"{{kink: derivative}} for kinks {kinks} of a kinked operation")


def load_engine(spec):
    """An adapter from "module" or "module:attribute" (the module's `engine`, or the
    module itself, if no attribute is named); checked against the protocol."""
    if spec in (None, "", "mflow"):
        return MflowEngine()
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise EngineError(f"--engine {spec!r}: cannot import {module_name!r} ({e}); "
                          "is it on sys.path (PYTHONPATH) or installed?") from None
    if attr:
        if not hasattr(module, attr):
            raise EngineError(f"--engine {spec!r}: module {module_name!r} has no {attr!r}")
        engine = getattr(module, attr)
    else:
        engine = getattr(module, "engine", module)
    if isinstance(engine, type):
        engine = engine()
    register_records(engine, spec)
    check_adapter(engine, spec)
    try:
        engine.spec = spec  # how to rebuild it: reports record this
    except AttributeError:  # a module or a frozen object: the spec is known all the same
        pass
    return engine


def register_records(engine, spec):
    """An adapter's operations of its own (`records`: catalogue Records, each with torch
    and JAX references) into the catalogue, so that they are drawn, checked and
    replayed with the built-in ones: only for the adapter named on the command line."""
    from .catalogue import register
    records = tuple(getattr(engine, "records", ()) or ())
    try:
        register(*records)
    except ValueError as e:
        raise EngineError(f"--engine {spec!r}: records: {e}") from None
    for rec in records:
        for library in ("torch", "jax"):
            module = importlib.import_module(library)
            try:
                rec.reference(library, module)
            except AttributeError:
                raise EngineError(
                    f"--engine {spec!r}: the record of {rec.name!r} names no {library} "
                    f"reference and {library} has no {rec.name!r}: give {library}=lambda "
                    f"{library}, *operands, **attrs: ...") from None


def spec_of(engine):
    """The `module:attribute` that rebuilds `engine` ("mflow" for mflow's own)."""
    return getattr(engine, "spec", None) or ("mflow" if type(engine) is MflowEngine else
                                             f"{type(engine).__module__}:{type(engine).__name__}")


def engine_record(engine):
    """What a report records of its engine: how to rebuild it, and its version."""
    return {"engine_spec": spec_of(engine), "engine_version": capabilities(engine).version}


def supported(engine, wanted=None):
    """The operations to draw: those wanted (default: all) that the engine has.
    Raises EngineError listing what is missing when none is left."""
    from .catalogue import CATALOGUE
    wanted = list(CATALOGUE) if wanted is None else list(wanted)
    have = [op for op in wanted if op in engine.ops]
    if not have:
        raise EngineError(f"engine {engine.name!r} supports none of the requested operations "
                          f"{wanted}; it has {sorted(engine.ops) or 'none'}")
    return have
