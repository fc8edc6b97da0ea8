"""A ReferenceProblem is a finding about the suite, never about the engine: the
run goes on, the case is reduced and saved as a guard, and only a strict run
(this project's CI) ends with its own exit status, 6."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from mflow.oracles.engine import MflowEngine
from mflow.oracles.program import Case, Program, Step
from mflow.oracles.verdict import (
    Comparison,
    EngineHang,
    GradientMismatch,
    ReferenceDisagreement,
    ReferenceProblem,
    Verdict,
    same_failure,
)
from mflow.reports import regressions
from mflow.reports.saving import SavingChecker

from mflow.rule_ops import ARRAYS

ROOT = Path(__file__).resolve().parents[1]
CASE = Case(Program(((2, 2),), (Step("tanh", (0,)),)), (np.eye(2),), np.ones((2, 2)))


def verdict_with(kind, pair=("jax", "torch"), what="gradient of x0"):
    v = Verdict(CASE, "mflow")
    v.comparisons.append(Comparison(what, pair, 1.0, 1.0, (0, 0), 0.1, "test", False))
    v.outcome = kind("disagree", v)
    return v


class Disagreeing:
    """A checker whose references always disagree on the case."""
    modes = ("vjp",)

    def judge(self, case, modes=None):
        v = verdict_with(ReferenceProblem)
        v.case = case
        return v


def test_a_reference_problem_does_not_fail_the_test_and_is_saved_as_a_guard(tmp_path):
    saving = SavingChecker(Disagreeing(), MflowEngine(), tmp_path)
    with pytest.warns(ReferenceDisagreement, match="not your engine"):
        verdict = saving.check(CASE)                      # no exception: the test goes on
    assert isinstance(verdict.outcome, ReferenceProblem)
    assert saving.stats.outcomes == {"ReferenceProblem": 1}  # counted, as every case is
    (folder,) = regressions.reports(tmp_path)
    case, report = regressions.load(folder)
    assert regressions.is_guard(report) and report["failure"] == "ReferenceProblem"


def test_a_guard_is_never_retired_and_never_failing(tmp_path, capsys):
    from mflow.reports.__main__ import main
    saving = SavingChecker(Disagreeing(), MflowEngine(), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferenceDisagreement)
        saving.check(CASE)
    assert main(["retire", "--dir", str(tmp_path)]) == 0   # the real checker: references agree
    out = capsys.readouterr().out
    assert "guard ok" in out and "retired" not in out
    assert len(regressions.reports(tmp_path)) == 1


@pytest.mark.parametrize("strict,status", [(False, 0), (True, 6)])
def test_a_strict_run_ends_with_status_6_when_the_references_disagreed(tmp_path, strict, status):
    test = tmp_path / "test_warns.py"
    test.write_text("import warnings\nfrom mflow.oracles.verdict import ReferenceDisagreement\n"
                    "def test_it():\n    warnings.warn(ReferenceDisagreement('x'))\n")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(test), "--rootdir", str(tmp_path)] + (["--mflow-strict"] if strict else [])
    env = {k: v for k, v in os.environ.items() if k != "MFLOW_STRICT"}  # tox sets it
    run = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == status, run.stdout + run.stderr


def test_the_reducer_keeps_the_same_failure_not_any():
    original = verdict_with(ReferenceProblem).outcome
    assert same_failure(original, verdict_with(ReferenceProblem).outcome)
    assert not same_failure(original, verdict_with(GradientMismatch).outcome)
    assert not same_failure(original, verdict_with(ReferenceProblem, ("fd", "torch")).outcome)
    assert not same_failure(original, verdict_with(ReferenceProblem, what="forward").outcome)
    raised = verdict_with(ReferenceProblem)
    raised.errors["torch"] = "LinAlgError: singular"     # drifted to a singular matrix
    assert not same_failure(original, raised.outcome)
    assert not same_failure(original, None)


# --- engines that misbehave: every finding kept, none forged -----------------------

class Wrapped:
    """mflow, with one thing done wrong by `hook(leaves, cotangent, grads)`."""
    def __init__(self, hook):
        base = MflowEngine()
        self.name, self.ops, self.base, self.hook = "wrapped", base.ops, base, hook
        self.leaf, self.constant, self.to_numpy = base.leaf, base.constant, base.to_numpy

    def gradients(self, output, leaves, cotangent):
        grads = self.base.gradients(output, leaves, cotangent)
        return self.hook(leaves, cotangent, grads)


def zero_cotangent(leaves, cotangent, grads):
    cotangent[...] = 0
    return grads


def exits(leaves, cotangent, grads):
    raise SystemExit(3)


def object_answer(leaves, cotangent, grads):
    return [np.array([[object()] * g.shape[1]] * g.shape[0]) for g in grads]


def test_an_engine_that_zeroes_its_cotangent_in_place_is_caught_and_the_case_kept(tmp_path):
    from mflow.oracles.checker import Checker
    from mflow.oracles.verdict import EngineMisbehaved
    before = CASE.cotangent.copy()
    verdict = Checker(Wrapped(zero_cotangent)).judge(CASE)
    assert isinstance(verdict.outcome, EngineMisbehaved), verdict.describe()
    assert np.array_equal(CASE.cotangent, before)          # the case saved is the case drawn
    folder = regressions.save(verdict.outcome, tmp_path)
    case, _ = regressions.load(folder)
    assert np.array_equal(case.cotangent, before)


def test_an_engine_that_exits_is_a_crash_with_its_exception_type_in_the_signature():
    from mflow.oracles.checker import Checker
    from mflow.oracles.verdict import EngineCrash
    verdict = Checker(Wrapped(exits)).judge(CASE)
    assert isinstance(verdict.outcome, EngineCrash) and "SystemExit" in verdict.errors["engine"]
    other = Checker(Wrapped(lambda *a: 1 / 0)).judge(CASE)
    assert regressions.signature(verdict.outcome) != regressions.signature(other.outcome)


def raises_keyboard_interrupt(leaves, cotangent, grads):
    raise KeyboardInterrupt


def sends_ctrl_c(leaves, cotangent, grads):
    import signal
    os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C arrives, during the engine call
    return grads


def test_a_keyboard_interrupt_the_engine_raises_is_a_crash_and_a_ctrl_c_stops_the_run():
    import signal

    from mflow.oracles.checker import Checker
    from mflow.oracles.verdict import EngineCrash
    # a user's Ctrl-C reaches a process whose SIGINT is Python's default handler; a pytest
    # worker's disposition depends on what ran in it before (xdist's execnet, an earlier
    # test), so this test sets it rather than inherit it
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        verdict = Checker(Wrapped(raises_keyboard_interrupt)).judge(CASE)
        assert isinstance(verdict.outcome, EngineCrash), verdict.describe()
        assert verdict.errors["engine"].startswith("KeyboardInterrupt")
        with pytest.raises(KeyboardInterrupt):
            Checker(Wrapped(sends_ctrl_c)).judge(CASE)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, before)


def test_an_engine_that_answers_object_arrays_still_gets_its_report(tmp_path):
    from mflow.oracles.checker import Checker
    from mflow.oracles.verdict import ShapeOrDtypeMismatch
    verdict = Checker(Wrapped(object_answer)).judge(CASE)
    assert isinstance(verdict.outcome, ShapeOrDtypeMismatch), verdict.describe()
    folder = regressions.save(verdict.outcome, tmp_path)
    assert (folder / "engine_grad_x0.txt").exists() and regressions.load(folder)


def test_an_engine_that_hangs_is_stopped_and_named(monkeypatch):
    import time

    from mflow.oracles import checker as checker_module
    from mflow.oracles.verdict import EngineHang
    monkeypatch.setitem(checker_module.TIME_LIMIT, "base", 0.5)

    def hang(leaves, cotangent, grads):
        time.sleep(30)
    verdict = checker_module.Checker(Wrapped(hang)).judge(CASE)
    assert isinstance(verdict.outcome, EngineHang) and "test_guards.py" in verdict.errors["engine"]


def test_a_hang_that_does_not_happen_again_is_no_finding(monkeypatch, tmp_path):
    """An engine that compiles on first use (tinygrad on a loaded machine took > 10 s
    once, then milliseconds) is over the limit once: checked again, it is judged by
    the second run and counted as slow once, not reported; a real hang stays one."""
    import time

    from mflow.oracles import checker as checker_module
    from mflow.oracles.verdict import EngineHang
    monkeypatch.setitem(checker_module.TIME_LIMIT, "base", 0.5)
    calls = []

    def slow_first(leaves, cotangent, grads):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(30)
        return grads
    checking = SavingChecker(checker_module.Checker(Wrapped(slow_first)), MflowEngine(), tmp_path)
    assert checking.check(CASE).outcome is None
    assert checking.stats.slow_once == 1 and checking.stats.outcomes == {"passed": 1}
    assert len(calls) == 2
    # a hang that happens again is one (the checker's own test above: stopped and named)
    again = checker_module.Checker(Wrapped(lambda *a: time.sleep(30)))
    assert all(isinstance(again.judge(CASE).outcome, EngineHang) for _ in range(2))


def test_an_engine_that_compiles_on_first_use_may_declare_its_time(monkeypatch):
    import time

    from mflow.oracles import checker as checker_module
    from mflow.oracles.verdict import EngineHang
    monkeypatch.setitem(checker_module.TIME_LIMIT, "base", 0.3)
    slow = Wrapped(lambda leaves, cotangent, grads: time.sleep(1.0) or grads)
    assert isinstance(checker_module.Checker(slow).judge(CASE).outcome, EngineHang)
    slow.first_use = 5.0  # tinygrad declares 120 s: it compiles each new shape
    assert checker_module.Checker(slow).judge(CASE).outcome is None


def test_a_replay_draws_the_same_probes():
    from mflow.oracles.checker import Checker
    big = Case(Program(((5, 5),), (Step("tanh", (0,)),)),
               (np.random.default_rng(0).uniform(-1, 1, (5, 5)),), np.ones((5, 5)))
    a, b = Checker(MflowEngine()).judge(big), Checker(MflowEngine()).judge(big)
    assert np.array_equal(a.probes[0].directions, b.probes[0].directions)


def test_a_float32_failure_saves_numbers_and_its_report_renders(tmp_path):
    """Tolerances computed in float32 were written as strings, and the comparison report
    then ended with "Unknown format code 'g'"."""
    import json

    from mflow.oracles.checker import Checker
    from mflow.reports.comparison import write_report
    from mflow.reports.stats import Stats
    case32 = Case(Program(((2, 2),), (Step("tanh", (0,)),), "float32"),
                  (np.eye(2, dtype=np.float32) / 2,), np.ones((2, 2), np.float32))
    verdict = Checker(Wrapped(lambda leaves, c, grads: [g * 2 for g in grads])).judge(case32)
    assert verdict.outcome is not None, verdict.describe()
    folder = regressions.save(verdict.outcome, tmp_path / "regressions")
    report = json.loads((folder / "report.json").read_text())
    assert all(isinstance(c["tolerance"], float) for c in report["comparisons"])
    stats = Stats()
    stats.add(verdict)
    stats.failures.append({"test": "t", "kind": type(verdict.outcome).__name__,
                           "report": str(folder)})
    (tmp_path / "stats-main.json").write_text(json.dumps(stats.to_dict()))
    html, markdown = write_report(tmp_path)
    assert "GradientMismatch" in markdown.read_text()


class Moody(Wrapped):
    """Right on odd calls, gradients doubled on even ones: answers that depend on history."""
    def __init__(self):
        self.calls = 0
        super().__init__(self.hook_)

    def hook_(self, leaves, cotangent, grads):
        self.calls += 1
        return grads if self.calls % 2 else [2 * g for g in grads]


def test_an_engine_whose_answers_depend_on_history_is_its_own_finding(tmp_path):
    from mflow.oracles.checker import Checker
    from mflow.oracles.verdict import NotReproducible
    engine = Moody()
    saving = SavingChecker(Checker(engine), engine, tmp_path)
    found = None
    for _ in range(200):  # passing cases are checked again every RECHECK_EVERY-th time
        try:
            saving.check(CASE)
        except NotReproducible as e:
            found = e
            break
        except Exception:  # noqa: BLE001 - an ordinary failure on an even call
            continue
    assert found is not None and "depend on history" in str(found)
    (folder,) = regressions.reports(tmp_path)
    assert folder.name.startswith("NotReproducible")


class Rewalker(Wrapped):
    """MatrixFlow's backward: recursion along every path, shared sub-graphs walked
    again per path (2^n walks for n doublings)."""
    def __init__(self):
        super().__init__(None)

    def gradients(self, output, leaves, cotangent):
        grads = {id(x): np.zeros_like(x.value) for x in leaves}

        def walk(node, g):
            if node.op is None:
                if id(node) in grads:
                    grads[id(node)] = grads[id(node)] + g
                return
            parts = node.op.vjp(ARRAYS, g, node.value, *[p.value for p in node.parents],
                                **node.attrs)
            for parent, part in zip(node.parents, parts):
                walk(parent, part)
        walk(output, np.asarray(cotangent))
        return [grads[id(x)] for x in leaves]


def test_an_exponential_backward_is_a_finding_not_a_hung_worker(monkeypatch):
    from mflow.oracles import checker as checker_module
    from mflow.oracles.verdict import EngineHang
    from mflow.reports.fuzzing import _doublings
    small = _doublings(3)       # 8 paths: right, and quick
    x = np.random.default_rng(0).uniform(-1, 1, (2, 2))
    engine = Rewalker()
    ok = checker_module.Checker(engine).judge(Case(small, (x,), np.ones((2, 2))))
    assert ok.outcome is None, ok.describe()
    monkeypatch.setitem(checker_module.TIME_LIMIT, "base", 1.0)
    deep = _doublings(22)       # 4 million paths
    verdict = checker_module.Checker(engine).judge(Case(deep, (x,), np.ones((2, 2))))
    assert isinstance(verdict.outcome, EngineHang), verdict.describe()


def test_a_hang_is_saved_as_found_without_the_reducer(monkeypatch, tmp_path):
    """Each try of the reducer on a hang costs the time limit (tinygrad compiling a
    2,000-step chain took minutes per try): the hang is saved unreduced, at once, and
    checked twice, not three times (the second run is the check again)."""
    import time

    from mflow.oracles import checker as checker_module
    from mflow.reports import reduce as reduce_module
    monkeypatch.setitem(checker_module.TIME_LIMIT, "base", 0.3)
    monkeypatch.setattr(reduce_module, "reduce", lambda *a, **k: pytest.fail("reduced"))
    runs = []
    hanging = Wrapped(lambda leaves, cotangent, grads: runs.append(1) or time.sleep(30))
    saving = SavingChecker(checker_module.Checker(hanging), MflowEngine(), tmp_path)
    with pytest.raises(EngineHang):
        saving.check(CASE)
    assert len(runs) == 2
    (saved,) = [f for f in tmp_path.iterdir() if not f.name.startswith(".")]
    case, report = regressions.load(saved)
    assert report["failure"] == "EngineHang" and case.program == CASE.program


def test_the_rare_large_cases_are_not_shrunk():
    """A rare large case is (kind, seed): no seed is smaller than another, and each try
    of a hang would cost the time limit twice."""
    from hypothesis import Phase
    from mflow.reports.fuzzing import test_rare_large_cases
    phases = test_rare_large_cases._hypothesis_internal_use_settings.phases
    assert Phase.generate in phases and Phase.shrink not in phases
