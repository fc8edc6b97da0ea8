"""The engine under test, behind a small adapter protocol.

An adapter is any object (or module) with:

    name       a short name for reports
    ops        {operation name: function(*operands, **attrs)} on the engine's values,
               for the operations it supports (names and attrs as in mflow.ops.OPS)
    leaf(array)                       an input that gradients are taken with respect to
    constant(array)                   a value that needs no gradient
    gradients(output, leaves, cotangent) -> one numpy array per leaf: the VJP of
                                      `cotangent` (zeros for a leaf the output ignores)
    to_numpy(value) -> numpy array

The suite then draws only the operations in `ops`. mflow's own adapter below
is the default; `load_engine("package.module:attr")` loads another, named on
the command line (`pytest --engine ...`) or in MFLOW_ENGINE.
"""

import importlib
from dataclasses import dataclass
from functools import partial

import numpy as np

import mflow
from mflow.ops import OPS

from .program import interpret

REQUIRED = ("name", "ops", "leaf", "constant", "gradients", "to_numpy")


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

    def __init__(self):
        self.ops = {name: partial(mflow.apply, name) for name in OPS}

    def leaf(self, array):
        return mflow.Node(array, requires_grad=True)

    def constant(self, array):
        return mflow.Node(array)

    def gradients(self, output, leaves, cotangent):
        if output.requires_grad:
            output.backward(cotangent)
        return [np.zeros_like(x.value) if x.grad is None else x.grad for x in leaves]

    def to_numpy(self, value):
        return value.value


def run_engine(engine, program, inputs, cotangent):
    """Forward and VJP of a program on an adapter; numpy arrays out."""
    values = interpret(program, engine.ops, engine.leaf, engine.constant, inputs)
    leaves, out = values[:len(inputs)], values[-1]
    grads = engine.gradients(out, leaves, cotangent)
    return Result(np.asarray(engine.to_numpy(out)), [np.asarray(g) for g in grads])


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
    missing = [n for n in REQUIRED if not hasattr(engine, n)]
    if missing:
        raise EngineError(f"--engine {spec!r}: the adapter lacks {', '.join(missing)}; "
                          f"an adapter needs {', '.join(REQUIRED)} (see oracles/engine.py)")
    unknown = sorted(set(engine.ops) - set(OPS))
    if unknown:
        raise EngineError(f"--engine {spec!r}: ops {unknown} are not operations the suite "
                          f"knows; names are those of mflow.ops.OPS: {', '.join(sorted(OPS))}")
    return engine


def supported(engine, wanted=None):
    """The operations to draw: those wanted (default: all) that the engine has.
    Raises EngineError listing what is missing when none is left."""
    wanted = list(OPS) if wanted is None else list(wanted)
    have = [op for op in wanted if op in engine.ops]
    if not have:
        raise EngineError(f"engine {engine.name!r} supports none of the requested operations "
                          f"{wanted}; it has {sorted(engine.ops) or 'none'}")
    return have
