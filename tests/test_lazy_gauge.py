"""float32 is gauged lazily (oracles/tolerance.py, "Lazily"): torch's float32 runs
happen only once a comparison against the floor alone has failed. The verdicts
must be the ones that gauging every case gives, case by case: on correct mflow,
on the false-alarm guards that need the gauge, and on planted bugs of each mode."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as seeded
from mflow.oracles.checker import Checker
from mflow.oracles.engine import MflowEngine
from mflow.oracles.program import Case, Program, Step
from mflow.strategies import cases

from tests.planted_bugs import BUGS
from tests.test_false_alarms import OUTER, POLES, pole_case

LAZY, EAGER = Checker(MflowEngine()), Checker(MflowEngine(), lazy_gauge=False)


def _failing(verdict):
    return [(c.what, c.pair, c.abs_err, c.tolerance) for c in verdict.failures]


def same_verdict(case):
    """The lazy verdict, after checking that gauging every case gives the same one:
    the same outcome and the same failing comparisons, tolerances included."""
    lazy, eager = LAZY.judge(case), EAGER.judge(case)
    assert type(lazy.outcome) is type(eager.outcome), (lazy.describe(), eager.describe())
    assert _failing(lazy) == _failing(eager)
    assert "vjp" in eager.gauged  # (a mode the check never reached is not gauged)
    return lazy


def _draw(n, seed, **kw):
    drawn = []

    @seeded(seed)
    @settings(max_examples=n, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(cases(**kw))
    def collect(case):
        drawn.append(case)
    collect()
    return drawn


def test_correct_mflow_same_verdicts_and_most_cases_never_run_float32():
    verdicts = [same_verdict(case) for case in _draw(60, 3, dtype="mixed", max_steps=6)]
    assert all(v.outcome is None for v in verdicts)
    ungauged = [v for v in verdicts if not v.gauged]
    assert len(ungauged) >= len(verdicts) // 2  # (3,000 drawn graphs: none needed it)
    assert all("torch32" not in v.results for v in ungauged)


def test_the_false_alarm_guards_pass_through_the_gauge():
    """The cases that need float32's measured rounding (a computed value near a pole,
    a saturated tanh behind inv of a cancelling trace) fail against the floor alone,
    get gauged, and pass."""
    guards = [pole_case(p, o, 10.0 ** d) for p in POLES for o in OUTER for d in (-7, -3)]
    program = Program(((4, 4),), (Step("trace", (0,)), Step("inv", (1,)), Step("tanh", (2,))))
    for seed in range(12):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2, 2, (4, 4))
        x[3, 3] -= np.trace(x) + rng.uniform(0.03, 0.08)
        guards.append(Case(program, (x,), rng.uniform(-2, 2, (1, 1))))
    verdicts = [same_verdict(case) for case in guards]
    assert all(v.outcome is None for v in verdicts)
    assert sum(bool(v.gauged) for v in verdicts) >= 3


@pytest.mark.parametrize("name, op", [("tanh_not_squared", "tanh"),
                                      ("inv_missing_minus", "inv"),
                                      ("tanh_jvp_not_squared", "tanh"),
                                      ("exp_vjp_detached", "exp")])
def test_planted_bugs_same_verdicts_and_reports_keep_the_gauge(name, op):
    """A bug of each mode: the same verdict on every drawn case, and a failing case's
    verdict holds torch's float32 answers (saved with its report)."""
    with BUGS[name].planted():
        verdicts = [same_verdict(case)
                    for case in _draw(12, 5, ops=[op, "add", "mul"], max_steps=4)]
    failed = [v for v in verdicts if v.outcome is not None]
    assert failed
    assert all("torch32" in v.results and "vjp" in v.gauged for v in failed)


@pytest.mark.parametrize("dtype", ["half", "float32"])
def test_a_ratio_against_the_floor_alone_says_so_in_every_pair(dtype):
    """A ratio under 1 against a tolerance never gauged is a pass by construction, not
    a near miss: finite differences, the transpose identity and the HVP's difference
    carry the AD tolerances inside their bounds and say so when those are the floor
    alone (a prod in half at 0.93 of such a bound was first read as a near false
    alarm), and never once they are measured."""
    for case in _draw(20, 5, dtype=dtype, max_steps=3):
        lazy, eager = LAZY.judge(case), EAGER.judge(case)
        assert lazy.outcome is None and eager.outcome is None
        if not lazy.gauged:
            assert all("the floor alone" in c.reason for c in lazy.comparisons), lazy.describe()
        assert not any("the floor alone" in c.reason for c in eager.comparisons)
