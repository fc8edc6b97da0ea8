"""The tester is tested: every planted bug is caught, and shrunk to a small graph."""

import numpy as np
import pytest
from hypothesis import HealthCheck, find, settings
from mflow.oracles.checker import Checker
from mflow.oracles.engine import MflowEngine
from mflow.oracles.kinks import kink_disagreements
from mflow.oracles.verdict import EngineBug
from mflow.reports.reduce import reduce
from mflow.strategies import cases

from tests.planted_bugs import CATALOGUE

# Bugs that live exactly at a kink: the convention test must catch them, and the
# fuzzer too, which draws values exactly on kinks where torch and JAX agree.
AT_KINK = {"relu_mask_ge"}


def failing(checker):
    def fails(case):
        try:
            checker.check(case)
        except EngineBug:
            return True
        return False
    return fails


def shrunk_failure(bug, checker, max_examples=6000):
    # (softmax_no_shift needs an operand past exp's range, a fresh "wide" one: its first
    # failure over the whole vocabulary came at 2,802 examples, too near 3,000)
    """The minimal case Hypothesis finds on which the checker blames the engine,
    then reduced by the graph-aware reducer."""
    fails = failing(checker)
    with bug.planted():
        # a half bug as the ci profile meets it: in its operation's half item
        # (reports/fuzzing.py, test_operation_in_half); over the whole vocabulary it took
        # 296 to 2,316 examples (benchmarks/results/half_precision.md)
        drawn = (cases(ops=[bug.op], max_steps=3, dtype="half") if bug.dtype == "half"
                 else cases(dtype=bug.dtype))
        case = find(drawn, fails,
                    settings=settings(settings.default, max_examples=max_examples, database=None,
                                      suppress_health_check=list(HealthCheck)))
        return reduce(case, fails)


@pytest.fixture(scope="module")
def plain_checker(mflow_engine):
    if mflow_engine.name != "mflow":
        pytest.skip("the planted bugs are planted in mflow; --mflow-engine names another engine")
    return Checker(MflowEngine())


@pytest.mark.parametrize("bug", CATALOGUE, ids=lambda b: b.name)
def test_planted_bug_is_caught_and_shrunk(bug, plain_checker):
    case = shrunk_failure(bug, plain_checker)
    steps = [s for s in case.program.steps if s.op != "const"]
    assert len(steps) <= 2, f"{bug.name} shrank only to {case.program}"
    if bug.op:
        assert bug.op in rules_run(case), f"{bug.name} shrank to a program without {bug.op}: " \
                                          f"{case.program}"


def rules_run(case):
    """The operations whose rules a check of `case` runs on mflow: the program's
    (sub is a + (-b)), and those its differentiable gradient is built from (second
    order runs their VJPs: cos's gradient -g sin(x) is a neg and a mul)."""
    from mflow.oracles.program import interpret

    import mflow
    from mflow.node import topological as _topological
    engine = MflowEngine()
    values = interpret(case.program, engine.ops, engine.leaf, engine.constant, case.inputs)
    used = set(case.program.ops()) | ({"neg"} if "sub" in case.program.ops() else set())
    if values[-1].requires_grad:
        try:
            grads = mflow.grad(values[-1], values[:len(case.inputs)], case.cotangent,
                               create_graph=True)
        except np.linalg.LinAlgError:  # a singular inv or det operand, which another CPU's
            return used  # rounding may shrink to: no differentiable gradient exists there
        used |= {n.op.name for g in grads for n in _topological(g, every=True) if n.op}
    return used


@pytest.mark.parametrize("bug", [b for b in CATALOGUE if b.name in AT_KINK], ids=lambda b: b.name)
def test_kink_bug_is_caught_by_the_convention_test(bug, plain_checker):
    with bug.planted():
        assert kink_disagreements(MflowEngine())
    assert not kink_disagreements(MflowEngine())


def test_the_correct_engine_passes_the_convention_test(mflow_engine):
    assert kink_disagreements(mflow_engine) == []
