"""Which interesting points a case met, per operation: what the summary counts, so
that a campaign says how often each operation saw an exact zero, a tie, a value on
its kink, a signed zero, equal leaves (the strategies draw them on purpose:
strategies/domains.py `special`).

    points(case) -> {"relu": {"zero", "kink"}, "max": {"tie"}, ...}

Points, each of one step's operands (values in float64, as the finite differences'):
- "zero": an exact zero; "-0": a negative zero;
- "kink": an element exactly on one of the operation's kinks (relu at 0, clip at a
  bound); "tie": the operation chooses between equal values (`Record.ties`);
- "end": an exact zero at the end of its domain ("nonnegative": x ** 1.5 at 0);
- "equal leaves": two distinct leaves of the program with equal values feed it;
- "1x1": a 1x1 operand.
"""

import numpy as np

from .catalogue import CATALOGUE
from .numpy_backend import NUMPY_OPS
from .program import interpret

POINT_WORDS = {"zero": "an exact zero", "-0": "a negative zero", "kink": "on a kink",
               "tie": "a tie", "end": "a domain's end", "equal leaves": "equal leaves",
               "1x1": "a 1x1 operand"}
POINTS = tuple(POINT_WORDS)


def points(case, values=None):
    """{op: set of points met} for the steps of `case` (see the module's docstring),
    from its `values` in float64 if given (a verdict's); none for a case numpy cannot
    evaluate (a counter never stops a campaign)."""
    try:
        return _points(case, values)
    except Exception:  # noqa: BLE001
        return {}


def _points(case, values):
    program = case.program
    if not values or len(values) != len(program.inputs) + len(program.steps):
        with np.errstate(all="ignore"):  # numpy in float64, as the finite differences'
            values = interpret(program, NUMPY_OPS, lambda x: x,
                               lambda a: a.astype(np.float64),
                               [np.asarray(x, np.float64) for x in case.inputs])
    n_in = len(program.inputs)
    leaves = [v for v in values[:n_in]] + [values[n_in + k] for k, s in
                                            enumerate(program.steps) if s.op == "const"]
    equal = {id(a) for a in leaves for b in leaves
             if a is not b and a.shape == b.shape and np.array_equal(a, b)}
    met = {}
    for step in program.steps:
        if step.op == "const":
            continue
        rec = CATALOGUE.get(step.op)
        operands = [values[a] for a in step.args]
        got = met.setdefault(step.op, set())
        domains = rec.domains(len(operands), step.attrs) if rec else ("real",) * len(operands)
        for x, domain in zip(operands, domains):
            zero = x == 0
            if zero.any():
                got.add("end" if domain == "nonnegative" else "zero")
                if np.signbit(x[zero]).any():
                    got.add("-0")
            if x.size == 1:
                got.add("1x1")
            if id(x) in equal:
                got.add("equal leaves")
            if rec is not None and any((x == kink).any() for kink in rec.kinks_at(step.attrs)):
                got.add("kink")
        if rec is not None and rec.ties is not None:
            with np.errstate(all="ignore"):
                if any((np.asarray(s) == 0).any() for s in rec.switches(operands, step.attrs)):
                    got.add("tie")
    return {op: got for op, got in met.items() if got}
