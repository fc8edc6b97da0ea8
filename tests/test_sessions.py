"""Engine sessions (reports/sessions.py): correct engines pass whatever the order of
calls, and engines with state bugs planted here are caught, in few calls."""

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from mflow.oracles.engine import EngineError, MflowEngine, check_adapter
from mflow.oracles.program import Program, Step
from mflow.oracles.verdict import GradientMismatch, TangentMismatch
from mflow.oracles.world import World
from mflow.reports.sessions import machine

import mflow

try:
    GROUP = BaseExceptionGroup  # noqa: F821 - a builtin from Python 3.11
except NameError:  # Python 3.10: Hypothesis's own dependency
    from exceptiongroup import BaseExceptionGroup as GROUP

RUNS = settings(max_examples=30, stateful_step_count=10, deadline=None, database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck))


class NotZeroed(MflowEngine):
    """The gradient buffer is not zeroed between two VJPs: each returns `.grad` after
    backward(), which adds to what an earlier VJP of the same leaves left there."""
    name = "not_zeroed"

    def gradients(self, output, leaves, cotangent):
        if output.requires_grad:
            output.backward(cotangent)
        return [np.zeros_like(x.value) if x.grad is None else x.grad for x in leaves]


class MergesEqualLeaves(MflowEngine):
    """Leaves of equal values are one node (a cache keyed by the values): a graph on two
    such leaves gives each of them the gradient of both."""
    name = "merges_equal_leaves"

    def __init__(self):
        super().__init__()
        self.made = {}

    def leaf(self, array):
        key = (array.shape, array.dtype.str, array.tobytes())
        return self.made.setdefault(key, mflow.Node(array, requires_grad=True))


@pytest.mark.parametrize("spec", ["mflow", "mflow.oracles.adapters.torch_eager"])
def test_a_correct_engine_passes_every_session(spec):
    from mflow.oracles.engine import load_engine
    run_state_machine_as_test(machine(load_engine(spec)), settings=RUNS)


@pytest.mark.parametrize("engine", [NotZeroed(), MergesEqualLeaves()], ids=lambda e: e.name)
def test_a_planted_state_bug_is_found_in_few_calls(engine):
    session = machine(engine)
    with pytest.raises((GradientMismatch, TangentMismatch, GROUP)) as found:
        run_state_machine_as_test(session, settings=settings(RUNS, max_examples=300))
    if isinstance(found.value, GROUP):  # distinct failures, each shrunk
        assert all(isinstance(e, (GradientMismatch, TangentMismatch))
                   for e in found.value.exceptions), found.value.exceptions
    assert len(session.last_calls) <= 6, session.last_calls  # (issue 23 asks <= 4)


def test_a_value_built_on_an_earlier_one_is_checked_through_both_graphs():
    world = World("float64")
    x = world.leaf(np.array([[0.5, -1.0]]))
    _, y = world.extend(Program(((1, 2),), (Step("exp", (0,)),)), [x])
    ids = world.extend(Program(((1, 2), (1, 2)), (Step("mul", (0, 1)),)), [y],
                       [None, np.array([[2.0, 3.0]])])
    case, leaves = world.case(ids[-1], np.ones((1, 2)))
    assert leaves == [x, ids[1]]
    assert [s.op for s in case.program.steps] == ["exp", "mul"]
    assert np.allclose(world.values[ids[-1]], np.exp([[0.5, -1.0]]) * [[2.0, 3.0]])


def test_an_adapter_declaring_an_unknown_session_call_is_refused():
    class Odd(MflowEngine):
        session = {"read_early": True, "time_travel": True}
    with pytest.raises(EngineError, match="time_travel"):
        check_adapter(Odd(), "odd")


def test_an_engine_crashing_while_a_session_builds_is_an_engine_crash():
    """Making leaves and building graphs go through the checker's guard, as every call
    that answers does: what the engine raises there is a finding, named."""
    from mflow.oracles.verdict import EngineCrash

    class Crashing(MflowEngine):
        name = "crashing"

        def __init__(self):
            super().__init__()
            self.ops = dict(self.ops, tanh=self._refuse)

        @staticmethod
        def _refuse(x):
            raise RuntimeError("no tanh today")
    with pytest.raises((EngineCrash, GROUP)) as found:
        run_state_machine_as_test(machine(Crashing(), ops=["tanh", "add"]), settings=RUNS)
    crashes = found.value.exceptions if isinstance(found.value, GROUP) else [found.value]
    assert all(isinstance(e, EngineCrash) and "no tanh today" in str(e) for e in crashes)
