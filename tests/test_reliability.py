"""Reliability from outside: no code runs because a report says so, one bad file
never hangs, exhausts or stops a run, no finding is lost or forged, and every exit
status is the one the README gives. One test (or a few) per way it once went wrong;
the property-based tests over every entry point are in test_damaged_files.py and
test_engine_calls.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mflow.oracles.checker import Checker
from mflow.oracles.engine import MflowEngine
from mflow.oracles.program import Case, Program, ProgramError, Step
from mflow.oracles.verdict import (
    EngineMisbehaved,
    GradientMismatch,
    HessianMismatch,
    ReferenceProblem,
    ShapeOrDtypeMismatch,
)
from mflow.reports import regressions
from mflow.reports.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
CASE = Case(Program(((2, 2), (2, 2)), (Step("mul", (0, 1)), Step("tanh", (2,)))),
            (np.array([[0.5, -0.3], [0.2, 0.9]]), np.array([[1.1, 0.4], [-0.7, 0.6]])),
            np.array([[1.0, -0.5], [0.25, 2.0]]))


class Adapter:
    """mflow through the graph form, with `misbehave(call, arrays, answer)` free to do
    one thing wrong in a call: "gradients", "jvp" or "hvp"."""
    name = "misbehaving"

    def __init__(self, misbehave=None):
        self.base = MflowEngine()
        self.ops, self.misbehave = self.base.ops, misbehave or (lambda call, given, a: a)
        self.leaf, self.constant, self.to_numpy = (self.base.leaf, self.base.constant,
                                                   self.base.to_numpy)

    def gradients(self, output, leaves, cotangent):
        answer = self.base.gradients(output, leaves, cotangent)
        return self.misbehave("gradients", {"cotangent": cotangent}, answer)

    def jvp(self, output, leaves, tangents):
        answer = self.base.jvp(output, leaves, tangents)
        return self.misbehave("jvp", {"tangents": tangents}, answer)

    def hvp(self, output, leaves, cotangent, tangents):
        answer = self.base.hvp(output, leaves, cotangent, tangents)
        return self.misbehave("hvp", {"cotangent": cotangent, "tangents": tangents}, answer)


def doubled(call, given, answer):
    return [2 * g for g in answer] if call == "gradients" else answer


OTHER = Case(Program(((2, 2),), (Step("sin", (0,)),)), (np.array([[0.5, -0.3], [0.2, 0.9]]),),
             np.array([[1.0, -0.5], [0.25, 2.0]]))  # another program: another signature


def saved(directory, spec="mflow", engine=None, case=CASE):
    """A real report: a GradientMismatch (gradients doubled), saved as made on `spec`."""
    verdict = Checker(engine or Adapter(doubled), modes=("vjp",)).judge(case)
    assert isinstance(verdict.outcome, GradientMismatch), verdict.describe()
    return regressions.save(verdict.outcome, directory=directory,
                            extra={"engine_spec": spec, "engine_version": ""})


# --- 1. no code runs because a report says so -------------------------------------

EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from mflow.oracles.engine import MflowEngine
engine = MflowEngine()
"""


@pytest.mark.parametrize("command", ["list", "retire"])
def test_a_report_naming_an_engine_never_makes_list_import_it(tmp_path, monkeypatch, capsys,
                                                                command):
    corpus = tmp_path / "corpus"
    marker = tmp_path / "IMPORTED"
    module = f"evil_{command}_for_mflow"  # a new name per test: imported at most once
    evil = saved(corpus, spec=f"{module}:engine")
    (tmp_path / f"{module}.py").write_text(EVIL.format(marker=str(marker)))
    saved(corpus, spec="mflow", case=OTHER)           # made on mflow: replayed, "fixed"
    (corpus / "GradientMismatch-broken").mkdir()     # one that cannot load: one line
    monkeypatch.syspath_prepend(str(tmp_path))
    status = main([command, "--reports", str(corpus)])
    out = capsys.readouterr().out
    assert not marker.exists(), "a report's engine_spec was imported"
    assert f"not run    {evil.name}" in out and f"--allow-engine {module}" in out
    assert "fixed" in out and "unreadable" in out and status == 1
    assert (corpus / evil.name).exists()              # nothing retired that was not replayed
    # allowed by the user, it is imported and replayed
    main(["list", "--reports", str(corpus), "--allow-engine", f"{module}:engine"])
    assert marker.exists()


def test_an_allowed_engine_that_does_not_load_is_one_line_and_the_rest_are_listed(
        tmp_path, capsys):
    corpus = tmp_path / "corpus"
    gone = saved(corpus, spec="no_such_module_for_mflow:engine")
    mine = saved(corpus, spec="mflow", case=OTHER)
    status = main(["list", "--reports", str(corpus), "--allow-engine",
                   "no_such_module_for_mflow:engine"])
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("no engine") and gone.name in line for line in lines)
    assert any(line.startswith("fixed") and mine.name in line for line in lines)
    assert status == 1


# --- 2, 3. one bad file never hangs, exhausts or stops a run ------------------------

def run_command(*args, cwd=ROOT, timeout=300, env=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MFLOW_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "mflow", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def test_the_gate_names_a_fifo_and_a_link_to_dev_zero_and_replays_the_rest(tmp_path):
    """The gate's collection once read report.json raw: a FIFO hung it, a link to
    /dev/zero grew to 20.9 GB. Now each is one failing item naming the file."""
    corpus = tmp_path / "corpus"
    good = saved(corpus)
    for name, damage in (("GradientMismatch-fifo", lambda p: os.mkfifo(p)),
                         ("GradientMismatch-zero", lambda p: p.symlink_to("/dev/zero"))):
        (corpus / name).mkdir()
        damage(corpus / name / "report.json")
    inflight = corpus / ".inflight"
    inflight.mkdir()
    os.mkfifo(inflight / "gw0-1-x.case")
    (inflight / "gw1-2-y.case").symlink_to("/dev/zero")
    run = run_command("gate", "--reports", str(corpus), "--jobs", "1", "-p", "no:cacheprovider",
                      timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out                   # the damaged reports fail the gate
    assert "GradientMismatch-fifo/report.json: not a regular file" in out, out
    assert "GradientMismatch-zero/report.json: cannot open" in out, out
    assert f"{good.name} PASSED" in out or "1 passed" in out, out


def campaign_folder(path, machine="m"):
    from mflow.reports.stats import Stats
    path.mkdir(parents=True)
    (path / "stats-main.json").write_text(json.dumps({**Stats().to_dict(), "checked": 5}))
    (path / "run.json").write_text(json.dumps({"machine": machine, "seconds": 1.0}))
    (path / "failures.json").write_text("[]")
    return path


MERGE_DAMAGE = {
    "run.json list": lambda d: (d / "run.json").write_text("[]"),
    "run.json null": lambda d: (d / "run.json").write_text("null"),
    "run.json fifo": lambda d: ((d / "run.json").unlink(), os.mkfifo(d / "run.json")),
    "run.json /dev/zero": lambda d: ((d / "run.json").unlink(),
                                     (d / "run.json").symlink_to("/dev/zero")),
    "stats missing keys": lambda d: (d / "stats-gw0.json").write_text('{"ops": {}}'),
    "stats /dev/zero": lambda d: (d / "stats-gw1.json").symlink_to("/dev/zero"),
    "stats wrong types": lambda d: (d / "stats-gw2.json").write_text(
        '{"checked": 1, "pairs": {"engine vs torch": {"add": {"hist": "x"}}}}'),
    "failures not a list": lambda d: (d / "failures.json").write_text('{"a": 1}'),
}


@pytest.mark.parametrize("damage", sorted(MERGE_DAMAGE))
def test_merge_and_report_name_a_damaged_record_and_merge_the_rest(tmp_path, damage, capsys):
    good = campaign_folder(tmp_path / "a" / "campaign", "a")
    bad = campaign_folder(tmp_path / "b" / "campaign", "b")
    MERGE_DAMAGE[damage](bad)
    out = tmp_path / "out"
    status = main(["merge", str(out), str(good), str(bad)])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "graphs checked" in text and (out / "index.html").exists()
    if damage.startswith(("run.json fifo", "run.json /dev", "stats", "failures")):
        assert "left out, damaged" in text, text
    assert main(["report", str(out)]) == 0
    assert not any(p.is_symlink() for p in out.iterdir())  # nothing copied through a link


def test_merge_of_a_missing_from_folder_is_a_usage_error(tmp_path, capsys):
    good = campaign_folder(tmp_path / "a" / "campaign")
    status = main(["merge", str(tmp_path / "out"), str(good), "--from",
                   str(tmp_path / "missing"), "--reports", str(tmp_path / "r")])
    assert status == 4 and "no such folder" in capsys.readouterr().err


# --- 4. replay cost is bounded --------------------------------------------------------

def test_the_loader_refuses_absurd_sizes_with_one_line(tmp_path):
    big = Case(Program(((300, 2),), (Step("neg", (0,)),)), (np.ones((300, 2)),),
               np.ones((300, 2)))
    long = Case(Program(((1, 2),), tuple(Step("neg", (k,)) for k in range(6000))),
                (np.ones((1, 2)),), np.ones((1, 2)))
    for case, message in ((big, "side 300, more than the 256"),
                          (long, "6,000 steps, more than the 5,000")):
        folder = saved(tmp_path / message[:4])
        (folder / "program.json").write_text(case.program.to_json())
        report = json.loads((folder / "report.json").read_text())
        report["inputs"] = 1
        (folder / "report.json").write_text(json.dumps(report))
        with pytest.raises(regressions.ReportError, match=message) as e:
            regressions.load(folder)
        assert "\n" not in str(e.value)


def test_a_reference_out_of_time_is_a_reference_problem(monkeypatch):
    """The references get a time limit as the engine does: a reference that gives no
    answer in time makes the case a ReferenceProblem, never the engine's fault."""
    import time

    from mflow.oracles import checker as checker_module
    from mflow.oracles import torch_backend
    monkeypatch.setitem(checker_module.REFERENCE_LIMIT, "base", 1.0)
    slow = dict(torch_backend.TORCH_OPS)
    slow["tanh"] = lambda x: time.sleep(30) or torch_backend.TORCH_OPS["tanh"](x)
    monkeypatch.setattr(torch_backend, "TORCH_OPS", slow)
    checker = checker_module.Checker(MflowEngine(), modes=("vjp",))
    started = time.time()
    verdict = checker.judge(CASE)
    assert time.time() - started < 20
    assert isinstance(verdict.outcome, ReferenceProblem), verdict.describe()
    assert "NoAnswer" in verdict.describe()


# --- 5. writes stay inside the chosen folders ----------------------------------------

def test_a_seen_folder_that_is_a_link_is_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = saved(tmp_path / "corpus")
    os.rmdir(folder / "seen")
    (folder / "seen").symlink_to(outside)
    with pytest.raises(regressions.ReportError, match="seen: a link"):
        saved(tmp_path / "corpus")  # the same signature again: counted in seen/
    assert list(outside.iterdir()) == []


def test_the_saving_checker_says_a_report_could_not_be_saved_and_still_fails(tmp_path):
    from mflow.reports.saving import SavingChecker
    outside = tmp_path / "outside"
    outside.mkdir()
    corpus = tmp_path / "corpus"
    first = saved(corpus)
    os.rmdir(first / "seen")
    (first / "seen").symlink_to(outside)
    engine = Adapter(doubled)
    saving = SavingChecker(Checker(engine, modes=("vjp",)), engine, corpus)
    with pytest.raises(GradientMismatch) as found:
        saving.check(CASE)
    saving.close()
    assert list(outside.iterdir()) == []
    notes = " ".join(getattr(found.value, "__notes__", []))
    assert "could NOT be saved" in notes or "saved as" in notes


def test_retire_never_moves_reports_through_an_archive_link(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    corpus = tmp_path / "corpus"
    saved(corpus)                                      # made on mflow: fixed there
    (corpus / "archive").symlink_to(outside)
    assert main(["retire", "--reports", str(corpus)]) == 4
    assert "archive: a link" in capsys.readouterr().err
    assert list(outside.iterdir()) == [] and len(regressions.reports(corpus)) == 1


# --- 6, 8. every array an engine receives is a copy; its answers are counted ---------

def test_an_engine_that_clears_the_cotangent_it_is_handed_in_second_order_is_caught(
        tmp_path):
    """Its HVP is wrong, and it zeroes every cotangent it is handed from the second
    call on: the suite once handed it the case's own float64 cotangent in the
    second-order check, and saved a NotReproducible report of zeros that the gate
    then passed."""
    calls = []

    def misbehave(call, given, answer):
        calls.append(call)
        if "cotangent" in given and len(calls) > 1:
            given["cotangent"][...] = 0
        return [2 * h for h in answer] if call == "hvp" else answer
    engine = Adapter(misbehave)
    before = CASE.cotangent.copy()
    verdict = Checker(engine, modes=("vjp", "hvp")).judge(CASE)
    assert isinstance(verdict.outcome, (EngineMisbehaved, HessianMismatch)), verdict.describe()
    assert np.array_equal(CASE.cotangent, before)
    folder = regressions.save(verdict.outcome, directory=tmp_path,
                              extra={"engine_spec": "mflow", "engine_version": ""})
    case, _ = regressions.load(folder)
    assert np.array_equal(case.cotangent, before)      # the case saved is the case drawn
    again = Checker(Adapter(misbehave), modes=("vjp", "hvp")).judge(case)
    assert type(again.outcome) is type(verdict.outcome)  # and it replays as failing


@pytest.mark.parametrize("count", [1, 3])
def test_an_engine_returning_a_wrong_number_of_gradients_is_a_finding(tmp_path, count):
    def wrong_count(call, given, answer):
        return (answer * 2)[:count] if call == "gradients" else answer
    verdict = Checker(Adapter(wrong_count), modes=("vjp",)).judge(CASE)
    assert isinstance(verdict.outcome, ShapeOrDtypeMismatch), verdict.describe()
    assert f"expected one gradient per input, 2, got {count}" in verdict.describe()
    folder = regressions.save(verdict.outcome, directory=tmp_path)
    assert regressions.load(folder)


# --- 7. a case in flight: saved only when it kills a fresh process too ---------------

def inflight_case(directory, spec, case=CASE):
    """A case in flight left by a process that died: written, then the writer gone."""
    from mflow.reports.inflight import InFlight
    flying = InFlight(directory, spec)
    flying.write(case, ("vjp",))
    path = flying.path
    flying.file.close()  # the lock goes with the file, as with a dead process
    flying.file = None
    return path


def test_a_case_left_by_a_run_killed_from_outside_is_not_saved(tmp_path):
    from mflow.reports.inflight import recover
    path = inflight_case(tmp_path, "mflow")
    lines = recover(tmp_path, "mflow")
    assert "did not die again" in lines[0] and not path.exists()
    assert regressions.reports(tmp_path) == []


def test_a_live_runs_case_in_flight_is_never_taken(tmp_path):
    from mflow.reports.inflight import InFlight, recover
    live = InFlight(tmp_path, "mflow")
    live.write(CASE)
    assert recover(tmp_path, "mflow") == [] and live.path.exists()
    live.close()
    assert not (tmp_path / ".inflight").exists()


def test_another_engines_case_in_flight_is_left_for_that_engine(tmp_path):
    from mflow.reports.inflight import recover
    path = inflight_case(tmp_path, "killer_adapter:engine")
    lines = recover(tmp_path, "mflow")
    assert "left by a run of killer_adapter:engine" in lines[0] and path.exists()
    assert regressions.reports(tmp_path) == []
    died = recover(tmp_path, "killer_adapter:engine", replay=lambda p, s: "killed by SIGSEGV")
    assert "saved as" in died[0] and not path.exists()
    (folder,) = regressions.reports(tmp_path)
    case, report = regressions.load(folder)
    assert report["engine_spec"] == "killer_adapter:engine"
    assert report["failure"] == "EngineCrash" and np.array_equal(case.cotangent, CASE.cotangent)


def test_a_fresh_process_replays_a_case_that_kills_it(tmp_path):
    """The replay itself, in a real fresh process, on an engine that dies on tanh."""
    from mflow.reports.inflight import replay_in_fresh_process
    (tmp_path / "dies_on_tanh.py").write_text(
        "import os\nfrom mflow.oracles.engine import MflowEngine\n"
        "class Dying(MflowEngine):\n    name = 'dying'\n    def __init__(self):\n"
        "        super().__init__()\n        self.ops = dict(self.ops, tanh=lambda x: "
        "os._exit(7))\nengine = Dying()\n")
    path = inflight_case(tmp_path, "dies_on_tanh:engine")
    sys.path.insert(0, str(tmp_path))
    try:
        assert replay_in_fresh_process(path, "dies_on_tanh:engine").startswith("exit status 7")
        assert replay_in_fresh_process(path, "mflow") is None
    finally:
        sys.path.remove(str(tmp_path))


# --- 9. losing the shared example database is a warning ------------------------------

def test_a_shared_database_that_goes_away_is_one_warning(capsys):
    from hypothesis.database import InMemoryExampleDatabase, MultiplexedDatabase
    from mflow.reports.profiles import Optional, SharedDatabaseLost

    class Lost(InMemoryExampleDatabase):
        def fetch(self, key):
            raise ConnectionError("Connection refused")
        save = delete = move = lambda self, *a: (_ for _ in ()).throw(ConnectionError("gone"))
    local = InMemoryExampleDatabase()
    db = MultiplexedDatabase(local, Optional(Lost(), "redis://lost"))
    with pytest.warns(SharedDatabaseLost):
        db.save(b"k", b"v")
    db.save(b"k", b"w")                                # no second warning, no error
    assert set(db.fetch(b"k")) == {b"v", b"w"}
    assert capsys.readouterr().err.count("stopped answering") == 1


# --- 10, 11. exit statuses -------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["gate", "--engine", "mistyped:engine"], "cannot import 'mistyped'"),
    (["fuzz", "--engine", "mistyped:engine"], "cannot import 'mistyped'"),
    (["fuzz", "--examples", "0"], "give 1 or more"),
    (["fuzz", "--examples", "-5"], "give 1 or more"),
    (["fuzz", "--shards", "0"], "give 1 or more"),
    (["fuzz", "--no-such-option-of-mflow"], None),       # (to pytest: its usage error, 4)
    (["list", "--no-such-option"], "unrecognised arguments"),
    (["frobnicate"], "invalid choice"),
    (["list", "--reports", "README.md"], "not a folder"),
    (["gate", "--reports", "README.md"], "not a folder"),
])
def test_a_usage_error_is_one_line_and_status_4(args, message):
    run = run_command(*args, "-p", "no:cacheprovider") if args[0] in ("fuzz", "gate") and \
        message is None else run_command(*args)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    if message:
        assert message in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) <= 3, run.stderr  # usage, error


@pytest.mark.parametrize("args,message", [
    (["--mflow-fuzz", "--mflow-engine", "nonexistent:x"], "cannot import 'nonexistent'"),
    (["--mflow-gate", "--mflow-shards", "0"], "--mflow-shards 0"),
    (["--mflow-gate", "--mflow-reports", "README.md"], "not a folder"),
    (["--mflow-fuzz", "--mflow-db", "redis://h:abc/0"], "--mflow-db"),
])
def test_the_plugins_usage_errors_are_one_line_and_status_4(args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFLOW_")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 4, run.stdout + run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_a_failure_found_under_x_and_two_workers_keeps_status_1(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_fails():\n    assert False\n\n"
                                          "def test_passes():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFLOW_")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
                          "-x", str(tmp_path / "test_one.py"), "--rootdir", str(tmp_path),
                          "--mflow-gate", "--mflow-reports", str(tmp_path / "none")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr


# --- small checks ---------------------------------------------------------------------

@pytest.mark.parametrize("field,value,message", [
    ("guard", "yes", "field 'guard' is not true or false"),
])
def test_a_report_field_of_the_wrong_type_is_unreadable(tmp_path, field, value, message):
    folder = saved(tmp_path)
    report = json.loads((folder / "report.json").read_text())
    report[field] = value
    (folder / "report.json").write_text(json.dumps(report))
    with pytest.raises(regressions.ReportError, match=message):
        regressions.load(folder)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_saved_input_that_is_not_finite_is_unreadable(tmp_path, value):
    folder = saved(tmp_path)
    x = np.load(folder / "x0.npy")
    x[0, 0] = value
    np.save(folder / "x0.npy", x)
    with pytest.raises(regressions.ReportError, match="x0.npy: holds values that are not"):
        regressions.load(folder)


def test_a_program_with_an_absurd_power_is_refused():
    with pytest.raises(ProgramError, match="exponent 1e"):
        Program(((2, 2),), (Step("pow", (0,), {"p": 1e308}),))


def test_jvp_of_an_array_names_the_type():
    import mflow
    with pytest.raises(TypeError, match="jvp: the output is a ndarray, not a Node"):
        mflow.jvp(np.ones((2, 2)), [], [])
    x = mflow.Node(np.ones((1, 1)), requires_grad=True)
    with pytest.raises(TypeError, match="jvp: input 0 is a ndarray"):
        mflow.jvp(x, [np.ones((1, 1))], [np.ones((1, 1))])


def test_mflow_nn_comes_with_import_mflow():
    run = subprocess.run([sys.executable, "-c", "import mflow; print(mflow.nn.MLPRegressor)"],
                         capture_output=True, text=True, timeout=120)
    assert "MLPRegressor" in run.stdout, run.stderr
