"""Blame: which step's own rule is wrong.

Torch runs the failing case once, keeping every intermediate value and the
cotangent that reaches it. Each step is then checked alone, as a one-step case
(its recorded operands as inputs, its cotangent as the cotangent), with the
same verdict as any case. The first step whose one-step case fails is the one
to blame; if every step passes alone, the fault is in how the engine combines
contributions (accumulation at fan-out, broadcasting undone in the wrong place).
"""

import numpy as np
import torch

from mflow import shapes

from .program import Case, Program, Step, interpret
from .tolerance import as_dtype
from .torch_backend import TORCH_OPS


def intermediates(case):
    """Every value of the case in torch (float64) and the cotangent reaching it."""
    p = case.program
    values = interpret(as_dtype(p, "float64"), TORCH_OPS,
                       lambda x: torch.tensor(np.asarray(x, np.float64), requires_grad=True),
                       lambda a: torch.tensor(np.asarray(a, np.float64)), case.inputs)
    for v in values:
        if v.requires_grad:
            v.retain_grad()
    if values[-1].requires_grad:
        values[-1].backward(torch.tensor(np.asarray(case.cotangent, np.float64)))
    return ([v.detach().numpy() for v in values],
            [None if v.grad is None else v.grad.numpy() for v in values])


def rule_variant(step, operands):
    """What tells one rule's cases apart, whatever graph they sit in: the drawn
    attribute values (axis, stride, padding, exponent; not fitted slices), how
    each operand broadcasts against the others, and which operands are one value
    (x + x). Two bugs in one rule differ here; one bug in many graphs does not."""
    from mflow.ops import OPS
    op = OPS[step.op]
    attrs = {k: v for k, v in sorted(step.attrs.items())
             if op.drawn.get(k) is not None and not isinstance(v, slice)}
    variant = {"attrs": {k: repr(v) for k, v in attrs.items()}}
    if op.shape is shapes.broadcast:
        out = np.broadcast_shapes(*(v.shape for v in operands))
        variant["broadcast"] = ["full" if v.shape == out else "scalar" if v.size == 1 else
                                "row" if v.shape[0] == 1 else "column" for v in operands]
    if len(set(step.args)) < len(step.args):
        variant["same operand"] = [step.args.index(a) for a in step.args]
    return variant


def local_disagreement(engine, case, checker=None):
    """The first step whose rule fails alone, as a dict; None if all pass alone.

    The one-step case keeps the operands as the engine saw them where that
    matters: one value used twice in the step is one input used twice."""
    from .checker import Checker
    from .verdict import EngineBug
    checker = checker or Checker(engine, oracles=("torch", "jax"))
    values, cotangents = intermediates(case)
    n_in = len(case.program.inputs)
    dtype = case.program.np_dtype
    for k, step in enumerate(case.program.steps):
        i = n_in + k
        if step.op == "const" or cotangents[i] is None:
            continue
        distinct = list(dict.fromkeys(step.args))
        operands = [values[a] for a in distinct]
        alone = Program(tuple(v.shape for v in operands),
                        (Step(step.op, tuple(distinct.index(a) for a in step.args),
                              step.attrs),),
                        case.program.dtype)
        one = Case(alone, tuple(v.astype(dtype) for v in operands), cotangents[i].astype(dtype))
        try:
            checker.check(one)
        except EngineBug as e:
            failed = e.verdict.failures
            what = failed[0].what if failed else "raised " + (
                e.verdict.errors.get("engine") or "").split(":", 1)[0]
            if what.startswith("gradient of x"):  # the one-step case's input j: an operand
                what = f"gradient of operand {step.args.index(distinct[int(what[13:])])}"
            return {"step": k, "value": f"v{i}", "op": step.op,
                    "shapes": [list(values[a].shape) for a in step.args],
                    "failure": type(e).__name__, "what": what,
                    "variant": rule_variant(step, [values[a] for a in step.args]),
                    "detail": str(e).splitlines()[2].strip() if len(str(e).splitlines()) > 2
                    else str(e)}
    return None
