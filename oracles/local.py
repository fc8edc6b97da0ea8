"""Blame: which step's own rule is wrong.

Torch runs the failing case once, keeping every intermediate value and the
cotangent that reaches it. Each step is then checked alone, as a one-step case
(its recorded operands as inputs, its cotangent as the cotangent), with the
same verdict as any case. The first step whose one-step case fails is the one
to blame; if every step passes alone, the fault is in how the engine combines
contributions (accumulation at fan-out, broadcasting undone in the wrong place).
"""

import numpy as np

from .program import Case, Program, Step
from .torch_backend import intermediates


def rule_variant(step, operands):
    """What tells one rule's cases apart, whatever graph they sit in: the drawn
    attribute values (axis, stride, padding, exponent; not fitted slices), how
    each operand broadcasts against the others, and which operands are one value
    (x + x). Two bugs in one rule differ here; one bug in many graphs does not."""
    from .catalogue import CATALOGUE
    op = CATALOGUE[step.op]
    attrs = {k: v for k, v in sorted(step.attrs.items())
             if op.drawn.get(k) is not None and not isinstance(v, slice)}
    variant = {"attrs": {k: repr(v) for k, v in attrs.items()}}
    if op.kind == "binary":
        out = np.broadcast_shapes(*(v.shape for v in operands))
        variant["broadcast"] = ["full" if v.shape == out else "scalar" if v.size == 1 else
                                "row" if v.shape[0] == 1 else "column" for v in operands]
    if len(set(step.args)) < len(step.args):
        variant["same operand"] = [step.args.index(a) for a in step.args]
    return variant


def local_disagreement(engine, case, checker=None):
    """The first step whose rule fails alone, as a dict; None if all pass alone.

    The one-step case keeps the operands as the engine saw them where that
    matters: one value used twice in the step is one input used twice. If every
    step passes alone, each is checked again with its operands made as the graph
    made them (their producing steps kept: a transposed view, a slice), where no
    value is used twice: MyGrad's conv_nd reads a transposed row vector wrongly,
    right on a fresh copy. Only what remains is "how contributions combine"."""
    found = _first_failing(engine, case, checker, _alone)
    return found if found is not None else _first_failing(engine, case, checker, _as_made)


def _alone(case, k, values):
    """Step k alone: its distinct operands as inputs."""
    step = case.program.steps[k]
    distinct = list(dict.fromkeys(step.args))
    return Program(tuple(values[a].shape for a in distinct),
                   (Step(step.op, tuple(distinct.index(a) for a in step.args), step.attrs),),
                   case.program.dtype), [values[a] for a in distinct], None


def _as_made(case, k, values):
    """Step k after the steps that made its operands (their operands as inputs); None
    where it has none, or where a value would be used twice (that is fan-out)."""
    steps, n_in = case.program.steps, len(case.program.inputs)
    step = steps[k]
    made = [a for a in dict.fromkeys(step.args) if a >= n_in and steps[a - n_in].op != "const"]
    if not made:
        return None
    outer = list(dict.fromkeys([b for a in made for b in steps[a - n_in].args]
                               + [a for a in dict.fromkeys(step.args) if a not in made]))
    # a value read by two of these steps is fan-out, not layout (one step reading it
    # twice, as concat(x, x), is the one-step check's case, and kept)
    uses = [b for a in made for b in set(steps[a - n_in].args)] + \
        [a for a in dict.fromkeys(step.args) if a not in made]
    if len(uses) != len(set(uses)):
        return None
    index = {a: j for j, a in enumerate(outer)}
    new = []
    for a in made:
        index[a] = len(outer) + len(new)
        new.append(Step(steps[a - n_in].op, tuple(index[b] for b in steps[a - n_in].args),
                        steps[a - n_in].attrs))
    new.append(Step(step.op, tuple(index[a] for a in step.args), step.attrs))
    program = Program(tuple(values[a].shape for a in outer), tuple(new), case.program.dtype)
    return program, [values[a] for a in outer], [steps[a - n_in].op for a in made]


def _first_failing(engine, case, checker, build):
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
        built = build(case, k, values)
        if built is None:
            continue
        program, operands, made_by = built
        one = Case(program, tuple(v.astype(dtype) for v in operands), cotangents[i].astype(dtype))
        try:
            checker.check(one)
        except EngineBug as e:
            failed = e.verdict.failures
            what = failed[0].what if failed else "raised " + (
                e.verdict.errors.get("engine") or "").split(":", 1)[0]
            if what.startswith("gradient of x") and made_by is None:  # an operand's
                distinct = list(dict.fromkeys(step.args))
                what = f"gradient of operand {step.args.index(distinct[int(what[13:])])}"
            variant = rule_variant(step, [values[a] for a in step.args])
            if made_by is not None:  # wrong only on operands made as the graph made them
                variant["operands made by"] = made_by
            return {"step": k, "value": f"v{i}", "op": step.op,
                    "shapes": [list(values[a].shape) for a in step.args],
                    "failure": type(e).__name__, "what": what, "variant": variant,
                    "detail": str(e).splitlines()[2].strip() if len(str(e).splitlines()) > 2
                    else str(e)}
    return None
