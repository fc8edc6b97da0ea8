"""A fuzz item's search (reports/search.py): graphs drawn without Hypothesis replay
exactly under it, a failure they find is shrunk by it, and none is ever lost."""

import contextlib
import random

import pytest
from hypothesis import settings
from hypothesis.internal.conjecture.data import ConjectureData
from mflow.reports import search as search_module
from mflow.strategies import cases
from mflow.strategies.graphs import draw_fast


def _same(a, b):
    return (a.program == b.program and a.program.dtype == b.program.dtype
            and all(x.dtype == y.dtype and (x == y).all() for x, y in zip(a.inputs, b.inputs))
            and (a.cotangent == b.cotangent).all())


@pytest.mark.parametrize("kwargs", [
    dict(max_steps=10), dict(dtype="mixed"), dict(dtype="half", max_steps=8),
    dict(max_inputs=1, min_steps=12, max_steps=24, constants=False),
    dict(ops=["getitem"], max_steps=3), dict(ops=["where", "concat", "max"], max_steps=4)])
def test_a_fast_draws_choices_replay_the_same_case_under_hypothesis(kwargs):
    strategy, rng = cases(**kwargs), random.Random(7)
    for _ in range(60):
        case, choices = draw_fast(strategy, rng)
        data = ConjectureData.for_choices(choices)
        assert _same(data.draw(strategy), case)
        assert list(data.choices) == choices  # every choice used, none made up


class Fake:
    """A SavingChecker's interface: fails the cases `bad` says, records what it saw."""

    def __init__(self, bad):
        self.bad, self.in_search, self.seen, self.ahead = bad, False, [], []

    def prefetch(self, cases):
        self.ahead.append(list(cases))

    @contextlib.contextmanager
    def searching(self):
        self.in_search = True
        try:
            yield
        finally:
            self.in_search = False

    def check(self, case):
        self.seen.append((self.in_search, case))
        if self.bad(case):
            raise AssertionError(f"planted: {case.program.ops()}")


@pytest.fixture
def budget():
    """200 graphs an item, derandomised, no database: the profile while the test runs."""
    from hypothesis._settings import local_settings
    with local_settings(settings(settings.default, max_examples=200, database=None,
                                 derandomize=True, deadline=None)):
        yield 200


def two_exps(case):
    return [s.op for s in case.program.steps].count("exp") >= 2


def test_most_graphs_are_drawn_without_hypothesis_and_a_tenth_with_it(budget):
    fake = Fake(lambda case: False)
    search_module.search(fake, cases(max_steps=4), "tests/test_search.py::a")
    fast = sum(flag for flag, _ in fake.seen)
    assert fast == budget - budget // search_module.HYPOTHESIS_SHARE
    assert len(fake.seen) - fast >= 1


def test_the_hunt_hands_its_graphs_ahead_then_checks_those_very_graphs_in_order(budget):
    """Drawn AHEAD at a time for the references' batched work (Checker.prefetch), then
    checked one by one: the same graphs, in the same order, as drawn one at a time."""
    fake = Fake(lambda case: False)
    strategy = cases(max_steps=4)
    first, failing = search_module.hunt(
        lambda case: fake.check(case), strategy, random.Random(5), 40, ahead=fake.prefetch)
    assert first is None and not failing
    assert [len(batch) for batch in fake.ahead] == [16, 16, 8]
    assert [c for batch in fake.ahead for c in batch] == [c for _, c in fake.seen]
    rng = random.Random(5)
    alone = [draw_fast(strategy, rng)[0] for _ in range(40)]
    assert all(_same(a, b) for a, (_, b) in zip(alone, fake.seen, strict=True))


def test_a_failure_the_fast_search_finds_is_shrunk_by_hypothesis(budget, monkeypatch):
    # Hypothesis's own share finds nothing here, so the failure is the fast search's
    real = search_module._hypothesis

    def share_blind(checker, strategy, key, seed, **overrides):
        if "phases" not in overrides:  # the share's run, not the shrinking one
            return None
        return real(checker, strategy, key, seed, **overrides)
    monkeypatch.setattr(search_module, "_hypothesis", share_blind)
    fake = Fake(two_exps)
    with pytest.raises(AssertionError, match="planted"):
        search_module.search(fake, cases(ops=["exp", "neg", "add", "tanh"], max_steps=8),
                             "tests/test_search.py::b")
    found = next(case for flag, case in fake.seen if flag and two_exps(case))
    last = fake.seen[-1][1]  # Hypothesis's final replay: the shrunk case
    assert not fake.seen[-1][0] and two_exps(last)
    assert len(last.program) <= 2 < len(found.program)  # exp(exp(x)) or exp, exp joined


def test_a_failure_that_does_not_replay_is_raised_as_found(budget, monkeypatch):
    seen = set()

    def once(case):  # fails the first time it sees a program only: history-dependent
        key = repr(case.program)
        first = key not in seen
        seen.add(key)
        return first and len(case.program) >= 3
    monkeypatch.setattr(search_module, "HYPOTHESIS_SHARE", budget)  # one Hypothesis graph
    fake = Fake(once)
    with pytest.raises(AssertionError, match="planted") as raised:
        search_module.search(fake, cases(max_steps=6), "tests/test_search.py::c")
    assert any("reported unshrunk" in note for note in raised.value.__notes__)


def test_a_failure_found_while_searching_is_not_saved_until_hypothesis_shrank_it(tmp_path):
    import numpy as np
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import MflowEngine
    from mflow.oracles.program import Case, Program, Step
    from mflow.reports.saving import SavingChecker

    from tests.planted_bugs import CATALOGUE
    bug = next(b for b in CATALOGUE if b.name == "sub_sign_flip")  # neg's gradient
    case = Case(Program(((2, 2),), (Step("neg", (0,)),)), (np.eye(2) + 0.5,), np.ones((2, 2)))
    saving = SavingChecker(Checker(MflowEngine()), MflowEngine(), tmp_path / "reports")
    try:
        with bug.planted():
            with pytest.raises(AssertionError), saving.searching():
                saving.check(case)
            assert not list((tmp_path / "reports").glob("*/report.json"))
            with pytest.raises(AssertionError):
                saving.check(case)  # outside Hypothesis: a single check is final
            assert len(list((tmp_path / "reports").glob("*/report.json"))) == 1
    finally:
        saving.close()


def test_the_fast_search_is_seeded_by_the_item_where_the_run_is_seeded(monkeypatch):
    import hypothesis.core
    from hypothesis._settings import local_settings
    with local_settings(settings(settings.default, derandomize=True)):
        assert search_module._seed("a") == search_module._seed("a") != search_module._seed("b")
    with local_settings(settings(settings.default, derandomize=False)):
        assert search_module._seed("a") != search_module._seed("a")  # fresh: 64 random bits
        monkeypatch.setattr(hypothesis.core, "global_force_seed", 5)
        assert search_module._seed("a") == search_module._seed("a")
        monkeypatch.setattr(hypothesis.core, "global_force_seed", 6)
        assert search_module._seed("a") != search_module._seed("b")
