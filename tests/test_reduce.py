"""The reducer: a planted bug's case keeps failing the same way while its steps
go and its values become small integers; a try that does not fail changes
nothing; the checks stay within the budget; no value it tries is inf or nan."""

import numpy as np
import pytest
from mflow.oracles.checker import Checker
from mflow.oracles.engine import MflowEngine
from mflow.oracles.program import Case, Program, Step
from mflow.oracles.verdict import Failure, GradientMismatch
from mflow.reports.reduce import reduce

from tests.planted_bugs import CATALOGUE

BUGS = {b.name: b for b in CATALOGUE}


@pytest.fixture(scope="module")
def plain_checker(mflow_engine):
    if mflow_engine.name != "mflow":
        pytest.skip("the planted bugs are planted in mflow; --mflow-engine names another engine")
    return Checker(MflowEngine())


def fails_as(checker, kind, calls):
    """still_fails as reports/regressions.py writes it: the same kind of failure."""
    def still_fails(case):
        calls.append(case)
        try:
            checker.check(case)
        except Failure as again:
            return type(again) is kind
        return False
    return still_fails


def messy(shape, rng, dtype=np.float64):
    return np.round(rng.uniform(-2, 2, shape), 6).astype(dtype)


def is_integer(x):
    return np.array_equal(x, np.round(x))


# (bug, program, dtype): each fails on messy values with a GradientMismatch
PLANTED = [
    ("tanh_not_squared",
     Program(((2, 3), (2, 3)), (Step("mul", (0, 1)), Step("tanh", (2,)), Step("exp", (3,)))),
     np.float64),
    ("scalar_mul_gradient_mean", Program(((2, 2), (1, 1)), (Step("mul", (0, 1)),), "float32"),
     np.float32),
    ("inv_missing_minus", Program(((2, 2),), (Step("inv", (0,)),)), np.float64),  # ones: singular
]


@pytest.mark.parametrize("name,program,dtype", PLANTED, ids=[p[0] for p in PLANTED])
def test_a_planted_bug_keeps_failing_with_small_integer_values(name, program, dtype,
                                                               plain_checker):
    rng = np.random.default_rng(3)
    inputs = tuple(messy(s, rng, dtype) for s in program.inputs)
    if name == "inv_missing_minus":
        inputs = (np.array([[1.37, 0.42], [-0.61, 2.18]], dtype),)
    case = Case(program, inputs, messy(program.output_shape, rng, dtype))
    calls, stats = [], {}
    with BUGS[name].planted():
        still_fails = fails_as(plain_checker, GradientMismatch, calls)
        assert still_fails(case)
        smaller = reduce(case, still_fails, stats=stats)
        assert still_fails(smaller)
    for before, after in zip([*case.inputs, case.cotangent], [*smaller.inputs, smaller.cotangent]):
        assert after.dtype == dtype and after.shape == before.shape
    for x in [*smaller.inputs, smaller.cotangent]:
        assert is_integer(x) and np.abs(x).max() <= 2, smaller
    assert stats["values_simplified"] > 0 and stats["checks"] == len(calls) - 2
    assert len(smaller.program) <= len(case.program)


def test_values_keep_what_makes_the_case_fail():
    # fails while some element of x0 is negative: x0 becomes ones but for one -1
    program = Program(((2, 3),), (Step("tanh", (0,)),))
    case = Case(program, (np.array([[0.31, -2.72, 1.5], [-0.25, 0.8, 3.14]]),),
                np.array([[0.3, 0.1, 0.4], [1.5, 9.2, 6.5]]))
    smaller = reduce(case, lambda c: bool((c.inputs[0] < 0).any()))
    assert sorted(smaller.inputs[0].ravel()) == [-1, 1, 1, 1, 1, 1]
    assert np.array_equal(smaller.cotangent, np.ones((2, 3)))


def test_rejecting_everything_leaves_the_case_as_it_is():
    program = Program(((2, 2), (2, 2)), (Step("matmul", (0, 1)), Step("tanh", (2,))))
    rng = np.random.default_rng(0)
    case = Case(program, (messy((2, 2), rng), messy((2, 2), rng)), messy((2, 2), rng))
    stats = {}
    assert reduce(case, lambda c: False, stats=stats) is case
    assert stats["values_simplified"] == 0 and stats["steps_removed"] == 0


def test_a_try_that_raises_is_a_try_that_does_not_fail():
    program = Program(((1, 2),), (Step("exp", (0,)),))
    case = Case(program, (np.array([[0.37, -1.21]]),), np.array([[0.5, 2.25]]))

    def still_fails(c):
        if np.array_equal(c.inputs[0], np.ones((1, 2))):
            raise np.linalg.LinAlgError("singular, say")
        return True
    smaller = reduce(case, still_fails)
    assert np.array_equal(smaller.inputs[0], [[1, -1]])


def test_values_that_would_overflow_are_not_tried():
    # float32 near its largest: doubling or scaling by 10 to round overflows
    program = Program(((1, 2),), (Step("neg", (0,)),), "float32")
    case = Case(program, (np.array([[3e38, 0.37]], np.float32),), np.ones((1, 2), np.float32))
    seen = []

    def still_fails(c):  # while x0 is not all integers
        seen.append(c)
        return not is_integer(c.inputs[0])
    smaller = reduce(case, still_fails)
    assert all(np.isfinite(x).all() for c in seen for x in [*c.inputs, c.cotangent])
    assert smaller.inputs[0].tolist() == [[1, 0.5]] and smaller.inputs[0].dtype == np.float32


@pytest.mark.parametrize("max_checks", [0, 1, 2, 7, 40, 500])
def test_checks_never_exceed_the_budget(max_checks):
    program = Program(((3, 3), (3, 3)), (Step("matmul", (0, 1)), Step("tanh", (2,)),
                                         Step("add", (3, 0)), Step("mul", (4, 1)),
                                         Step("sum", (5,), {"axis": 0})))
    rng = np.random.default_rng(max_checks)
    case = Case(program, (messy((3, 3), rng), messy((3, 3), rng)), messy((1, 3), rng))
    calls = []

    def still_fails(c):  # a coin: both outcomes, all the way down
        calls.append(c)
        return bool(rng.integers(2))
    stats = {}
    reduce(case, still_fails, max_checks=max_checks, stats=stats)
    assert len(calls) == stats["checks"] <= max_checks
