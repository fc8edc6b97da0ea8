"""A graph-aware reducer: makes a failing case smaller still after Hypothesis.

Hypothesis shrinks the draws; it cannot know that a step whose value has the
same shape as an earlier value could be bypassed, or that a value nobody uses
can go, and its floats stay as drawn (0.547847). This does both, greedily,
keeping each change only while the failure persists:

  - bypass a step: its users take one of its operands, or any earlier value of
    the same shape, instead (for the output: the program ends there);
  - then drop whatever the output no longer depends on, unused inputs included;
  - then simplify the values, each input and then the cotangent: the whole
    array to ones, to ±1 by sign, rounded to integers, to halves, to one
    decimal (the first that still fails is kept); then, while checks remain,
    each element alone the same way. A bug is read more easily off
    tanh'(1) with a cotangent of 1 than off tanh'(0.547847) times 0.547847.

Every try costs one check, and `max_checks` bounds them all. A try is made only
while every operand stays inside its operation's domain and clear of its kinks,
as the strategies draw them (`within_domains`): a rounded value that lands on
log 0, a singular matrix or relu's kink would test something else than the
failure found (det's second derivative does not exist at a singular matrix, and
a planted JVP bug once shrank to a crash there). Values that are not finite are
never tried. Shapes and dtypes are kept.

    smaller = reduce(case, still_fails)           # a Case
    reduce(case, still_fails, stats=found)        # also fills the dict `found`:
    # {"checks": 12, "steps_removed": 3, "values_simplified": 2}
"""

import numpy as np
from mflow.oracles.program import Case, Program, Step, live_values


def _rebuild(case, steps, output):
    """The case with `steps` (a list of (op, args, attrs) over value indices, the
    inputs first), keeping only what `output` depends on."""
    n_in = len(case.program.inputs)
    kept = []
    live = live_values([()] * n_in + [args for _, args, _ in steps], output)
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
    yield _rebuild(case, steps, last)  # nothing bypassed: drops inputs nobody uses
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


class _Checks:
    """`still_fails`, counted and bounded: a try that raises (a value outside
    an operation's domain the checker does not catch) does not fail the same way."""

    def __init__(self, still_fails, limit, declared=()):
        self.still_fails, self.limit, self.used = still_fails, limit, 0
        self.declared = declared

    @property
    def left(self):
        return self.limit - self.used

    def __call__(self, case):
        if not within_domains(case, self.declared):
            return False
        self.used += 1
        try:
            return bool(self.still_fails(case))
        except Exception:  # noqa: BLE001
            return False


def within_domains(case, declared=()):
    """Whether every operand of every step lies inside its operation's domain and clear
    of its kinks or exactly on one, where the strategies may draw it (strategies.graphs:
    on the kinks and ties where the references agree, not those of the operations in
    `declared`, an inputs' or a constant's value or any in float64), computed in
    float64 by numpy."""
    from mflow.oracles.catalogue import CATALOGUE
    from mflow.oracles.numpy_backend import NUMPY_OPS
    from mflow.oracles.program import interpret
    from mflow.strategies.domains import accepts, clear_of_ties
    program = case.program.with_dtype("float64") if case.program.dtype != "float64" \
        else case.program
    with np.errstate(all="ignore"):
        try:
            values = interpret(program, NUMPY_OPS, lambda x: np.asarray(x, np.float64),
                               lambda a: a.astype(np.float64), case.inputs)
        except Exception:  # noqa: BLE001 - a forward that raises (a singular inv) is outside
            return False
        if not all(np.all(np.isfinite(v)) for v in values):
            return False
        n_in = len(program.inputs)
        leaf = [True] * n_in + [s.op == "const" for s in program.steps]
        for step in program.steps:
            if step.op == "const":
                continue
            op = CATALOGUE[step.op]
            at = op.at_kinks and step.op not in declared
            exact = [at and (leaf[a] or case.program.dtype == "float64") for a in step.args]
            for a, domain, ex in zip(step.args, op.domains(len(step.args), step.attrs), exact):
                if not accepts(domain, values[a], op.kinks_at(step.attrs), ex):
                    return False
            if not clear_of_ties(op, [values[a] for a in step.args], step.attrs, all(exact)):
                return False
    return True


def _bypass_steps(case, fails):
    improved = True
    while improved and fails.left > 0:
        improved = False
        for smaller in _bypasses(case):
            if smaller is None or _size(smaller) >= _size(case):
                continue
            if fails(smaller):
                case, improved = smaller, True
                break
            if fails.left <= 0:
                break
    return case


def _size(case):
    return len(case.program), len(case.program.inputs)


def _rungs(x):
    """Simpler versions of the array `x`, simplest first (same shape and dtype)."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow gives inf: not tried
        return [np.ones_like(x), np.where(x < 0, -1, 1).astype(x.dtype), np.round(x),
                (np.round(x * 2) / 2).astype(x.dtype), np.round(x, 1)]


def _level(v):
    """How simple one value is: 0 for 1, then -1, integers, halves, one decimal, the rest."""
    if v == 1:
        return 0
    if v == -1:
        return 1
    with np.errstate(over="ignore", invalid="ignore"):
        for level, r in ((2, np.round(v)), (3, np.round(v * 2) / 2), (4, np.round(v, 1))):
            if v == r:
                return level
    return 5


def _element_rungs(v):
    """Simpler values for the element `v`, simplest first."""
    seen = []
    for rung in _rungs(np.asarray([v])):
        r = rung[0]
        if (r == -1 and v > 0) or not np.isfinite(r) or _level(r) >= _level(v) or r in seen:
            continue
        seen.append(r)
        yield r


def _replace(case, k, array):
    """The case with its k-th array (the inputs, then the cotangent) replaced."""
    if k == len(case.inputs):
        return Case(case.program, case.inputs, array)
    return Case(case.program, case.inputs[:k] + (array,) + case.inputs[k + 1:], case.cotangent)


def _arrays(case):
    return [np.asarray(x) for x in case.inputs] + [np.asarray(case.cotangent)]


def _simplify_values(case, fails):
    # whole arrays first, all of them, so that the cotangent gets its turn
    for k in range(len(case.inputs) + 1):
        x = _arrays(case)[k]
        tried = [x]
        for rung in _rungs(x):
            if fails.left <= 0:
                return case
            if not np.isfinite(rung).all() or any(np.array_equal(rung, t) for t in tried):
                continue
            tried.append(rung)
            smaller = _replace(case, k, rung)
            if fails(smaller):
                case = smaller
                break
    # then one element at a time, while checks remain
    for k in range(len(case.inputs) + 1):
        for index in np.ndindex(_arrays(case)[k].shape):
            x = _arrays(case)[k]
            for value in _element_rungs(x[index]):
                if fails.left <= 0:
                    return case
                rung = x.copy()
                rung[index] = value
                smaller = _replace(case, k, rung)
                if fails(smaller):
                    case = smaller
                    break
    return case


def reduce(case, still_fails, max_checks=500, *, stats=None, declared=()):
    """The smallest, simplest case found by bypassing steps, then simplifying
    values, while `still_fails(case)`; at most `max_checks` calls to it. The
    case itself when nothing could be changed. `stats`, a dict if given,
    receives the checks used, the steps removed and the values simplified;
    `declared`, the operations whose kinks the engine declared a convention at
    (never tried exactly there)."""
    fails = _Checks(still_fails, max_checks, declared)
    structural = _bypass_steps(case, fails)
    simplest = _simplify_values(structural, fails)
    if stats is not None:
        stats.update(checks=fails.used,
                     steps_removed=len(case.program) - len(simplest.program),
                     values_simplified=sum(int(np.count_nonzero(a != b)) for a, b in
                                           zip(_arrays(structural), _arrays(simplest))))
    return simplest


# --- reduce, blame, save: what a failing fuzz test does with its failure ----------

def reduce_and_save(failure, checker, engine, directory, reproduction=""):
    """Make the failing case smaller with the graph-aware reducer (keeping only
    changes that fail the same way), then save it; returns the folder."""
    from mflow.oracles.verdict import same_failure

    found = {"failure": failure}

    def still_fails(case):  # the same failure, not any: a reducer that kept any drifted
        again = checker.judge(case).outcome  # to another problem than the one found
        if same_failure(failure, again):
            found["failure"] = again
            return True
        return False
    before = len(failure.verdict.case.program)
    reduction = {}
    from mflow.oracles.engine import capabilities
    smaller = reduce(failure.verdict.case, still_fails, stats=reduction,
                     declared=tuple(capabilities(engine).conventions))
    final = found["failure"] if smaller is not failure.verdict.case else failure
    sizes = {"size_before_reduction": before, "size_after_reduction": len(smaller.program),
             "values_simplified": reduction["values_simplified"],
             "reduction_checks": reduction["checks"]}
    return blame_and_save(final, engine, directory, reproduction, extra=sizes)


def blame_and_save(failure, engine, directory, reproduction="", extra=None):
    """Blame the first step whose rule fails alone (an engine bug only), then save."""
    from mflow.oracles.local import local_disagreement
    from mflow.oracles.verdict import EngineBug

    from .regressions import save
    blamed = None
    if isinstance(failure, EngineBug):
        blamed = local_disagreement(engine, failure.verdict.case) or {}
    from mflow.oracles.engine import engine_record
    return save(failure, directory, reproduction,
                extra={**engine_record(engine), **(extra or {})}, blamed=blamed)
