"""A graph-aware reducer: makes a failing case smaller still after Hypothesis.

Hypothesis shrinks the draws; it cannot know that a step whose value has the
same shape as an earlier value could be bypassed, or that a value nobody uses
can go. This does, greedily, keeping each change only while the failure
persists:

  - bypass a step: its users take one of its operands, or any earlier value of
    the same shape, instead (for the output: the program ends there);
  - then drop whatever the output no longer depends on, unused inputs included.

Values are left as they are (a reducer that rounds them towards small integers
can come later); each try costs one check.
"""

import numpy as np

from oracles.program import Case, Program, Step


def _rebuild(case, steps, output):
    """The case with `steps` (a list of (op, args, attrs) over value indices, the
    inputs first), keeping only what `output` depends on."""
    n_in = len(case.program.inputs)
    live, kept = {output}, []
    for i in range(n_in + len(steps) - 1, n_in - 1, -1):
        if i in live:
            live.update(steps[i - n_in][1])
    inputs = [i for i in range(n_in) if i in live] or [0]
    new = {old: k for k, old in enumerate(inputs)}
    for i in range(n_in, n_in + len(steps)):
        if i in live:
            op, args, attrs = steps[i - n_in]
            new[i] = len(inputs) + len(kept)
            kept.append(Step(op, tuple(new[a] for a in args), attrs))
    program = Program(tuple(case.program.inputs[i] for i in inputs), tuple(kept),
                      case.program.dtype)
    if not kept:  # the output is an input: keep one step so there is a rule to check
        return None
    cotangent = case.cotangent
    if program.output_shape != cotangent.shape:
        rng = np.random.default_rng(0)
        cotangent = (np.round(rng.uniform(-2, 2, program.output_shape) * 1e6) / 1e6).astype(
            case.cotangent.dtype)
    return Case(program, tuple(case.inputs[i] for i in inputs), cotangent)


def _bypasses(case):
    """Smaller cases, one per (step, replacement) pair, largest cut first."""
    p = case.program
    n_in = len(p.inputs)
    steps = [(s.op, s.args, s.attrs) for s in p.steps]
    shapes = p.shapes
    last = n_in + len(steps) - 1
    for k in range(last, n_in - 1, -1):
        own = list(steps[k - n_in][1])
        others = [r for r in range(k) if r not in own]
        for r in own + others:
            if shapes[r] != shapes[k] and k != last:
                continue
            if k == last:
                yield _rebuild(case, steps, r)
                continue
            rewired = [(op, tuple(r if a == k else a for a in args), attrs)
                       for op, args, attrs in steps]
            yield _rebuild(case, rewired, last)


def reduce(case, still_fails, max_checks=500):
    """The smallest case found by bypassing steps while `still_fails(case)`."""
    checks = 0
    improved = True
    while improved and checks < max_checks:
        improved = False
        for smaller in _bypasses(case):
            if smaller is None or len(smaller.program) >= len(case.program):
                continue
            checks += 1
            if still_fails(smaller):
                case, improved = smaller, True
                break
            if checks >= max_checks:
                break
    return case
