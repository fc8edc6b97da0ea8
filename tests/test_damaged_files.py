"""Every entry point that reads the files of a corpus or a campaign, driven by
Hypothesis over damaged and hostile folders: links (inside, outside, to /dev/zero),
FIFOs, device nodes, truncated, oversized and sparse files, wrong JSON types, deep
nesting, bad UTF-8, absurd shapes and step counts; in the reports, in seen/ and
archive/, in .inflight/, and in campaign records. Under a time bound (SIGALRM) and
a memory bound (tracemalloc, which sees numpy's allocations), each entry point ends
with its documented status, names every damaged item, still handles every valid one,
and writes nothing outside its folders.

Entry points: the gate's collection (plugin.engine_reports) and its replay (load,
then judge, or an engine session's calls replayed), `list`, `retire`, `merge`,
`report`, each report's reproduce.py, and the recovery of cases left in flight."""

import contextlib
import hashlib
import io
import json
import os
import runpy
import shutil
import signal
import stat
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mflow.oracles.checker import Checker
from mflow.oracles.engine import MflowEngine
from mflow.oracles.program import Case, Program, Step
from mflow.reports import regressions
from mflow.reports.__main__ import main

from tests.test_reliability import Adapter, doubled

SECONDS, MEGABYTES = 120, 300  # bounds per entry point and example

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)

# one damage to one file: (name, how) -> writes the damage at `path` (outside: a folder
# outside every folder the entry points are given)
DAMAGES = ["fifo", "link out", "link in", "link /dev/zero", "device", "truncated", "sparse 5 GB",
           "json value", "deep", "bad utf-8", "empty", "folder"]
REPORT_FILES = ["report.json", "program.json", "x0.npy", "cotangent.npy", "seen", "reproduce.py"]
SESSION_FILES = ["calls.json", "call0_value.npy", "call3_cotangent.npy"]  # a session's only
PROGRAMS = {  # absurd programs, as JSON
    "side 4096": {"inputs": [[4096, 4096]], "steps": [{"op": "neg", "args": [0]}]},
    "side 1e9": {"inputs": [[10 ** 9, 2]], "steps": [{"op": "neg", "args": [0]}]},
    "6,000 steps": {"inputs": [[1, 2]], "steps": [{"op": "neg", "args": [k]}
                                                  for k in range(6000)]},
    "200,000 steps": {"inputs": [[1, 2]], "steps": [{"op": "neg", "args": [0]}] * 200_000},
    "pow 1e308": {"inputs": [[2, 2]], "steps": [{"op": "pow", "args": [0],
                                                 "attrs": {"p": 1e308}}]},
}


def damage(path, how, outside, value=None):
    if os.path.lexists(path):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "link out":
        path.symlink_to(outside / ("folder" if path.name == "seen" else "file"))
    elif how == "link in":
        path.symlink_to(path.parent / "program.json")
    elif how == "link /dev/zero":
        path.symlink_to("/dev/zero")
    elif how == "device":
        try:
            os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's own numbers
        except (PermissionError, OSError):
            path.symlink_to("/dev/zero")
    elif how == "truncated":
        path.write_bytes(b'{"format": 1, "signa')
    elif how == "sparse 5 GB":
        with open(path, "wb") as f:
            f.truncate(5 << 30)
    elif how == "json value":
        path.write_text(json.dumps(value))
    elif how == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif how == "bad utf-8":
        path.write_bytes(b'{"a": "\xff\xfe\xfd"}')
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "folder":
        path.mkdir()
    elif how in PROGRAMS:
        path.write_text(json.dumps(PROGRAMS[how]))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Two valid reports (different signatures), made on mflow: replayed, they pass."""
    folder = tmp_path_factory.mktemp("template")
    cases = [Case(Program(((2, 2),), (Step(op, (0,)),)), (np.array([[0.5, -0.3], [0.2, 0.9]]),),
                  np.array([[1.0, -0.5], [0.25, 2.0]])) for op in ("tanh", "sin")]
    made = []
    for case in cases:
        verdict = Checker(Adapter(doubled), modes=("vjp",)).judge(case)
        made.append(regressions.save(verdict.outcome, directory=folder,
                                     extra={"engine_spec": "mflow", "engine_version": ""}))
    # and an engine session's (calls.json and its arrays), found on a state bug
    from mflow.reports.sequence import replay

    from tests.planted_bugs import NotZeroed
    from tests.test_sessions import _not_zeroed_session
    calls = _not_zeroed_session()
    failure = replay(Checker(NotZeroed(), modes=("vjp",)), "float64", calls)
    made.append(regressions.save(failure, directory=folder, session=("float64", calls),
                                 extra={"engine_spec": "mflow", "engine_version": ""}))
    return made


@st.composite
def corpora(draw):
    """A plan: which reports are valid, which damaged and how, and what else lies in the
    corpus (archive/, .inflight/) and in two campaign folders."""
    n = draw(st.integers(1, 4))
    reports = []
    for k in range(n):
        if draw(st.booleans()):
            reports.append(("valid", k % 3, None, None))
            continue
        where = draw(st.sampled_from(REPORT_FILES + ["the folder"] + (
            SESSION_FILES if k % 3 == 2 else [])))
        how = draw(st.sampled_from(DAMAGES + (list(PROGRAMS) if where == "program.json"
                                              else [])))
        reports.append(("damaged", k % 3, where, (how, draw(json_values))))
    archive = draw(st.sampled_from([None, "link out", "file", "fifo"]))
    inflight = draw(st.lists(st.sampled_from(["fifo", "link /dev/zero", "garbage", "empty",
                                              "other engine", "mflow", "sparse 5 GB",
                                              "folder"]), max_size=3))
    records = draw(st.lists(st.tuples(
        st.sampled_from(["run.json", "stats-gw0.json", "failures.json", "stats-x.json"]),
        st.sampled_from(DAMAGES), json_values), max_size=3, unique_by=lambda r: r[0]))
    # (one damage per file: a second would overwrite the first, whose name is then owed)
    return reports, archive, inflight, records


def snapshot(folder):
    """Every file under `folder` (not following links), with a digest of its bytes."""
    seen = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(root) / name
            info = os.lstat(path)
            digest = hashlib.sha1(path.read_bytes()).hexdigest() if stat.S_ISREG(
                info.st_mode) else stat.S_IFMT(info.st_mode)
            seen[str(path.relative_to(folder))] = digest
    return seen


class OutOfBounds(BaseException):
    """An entry point out of time or memory (a BaseException: no `except Exception` in
    the code under test swallows it)."""


@contextlib.contextmanager
def bounded(what):
    """SECONDS of time and MEGABYTES of (traced) memory for one entry point, watched by a
    thread that interrupts the main thread the moment either runs out: SIGALRM sent to
    the main thread itself, so that a read blocked on a FIFO returns (a signal sent to
    the process may reach one of torch's or XLA's threads instead), and a read of
    /dev/zero stops at the bound, not at the machine's memory."""
    import threading
    import time
    reason, done = [], threading.Event()
    main_thread = threading.main_thread().ident

    def interrupt(signum, frame):
        raise OutOfBounds(reason[0] if reason else f"{what}: interrupted")

    def watch():  # once out of bounds, again every second: an `except` may swallow one
        start = time.monotonic()
        while not done.wait(0.05 if not reason else 1.0):
            used = tracemalloc.get_traced_memory()[0] / 2 ** 20
            if not reason and used > MEGABYTES:
                reason.append(f"{what}: more than {MEGABYTES} MB ({used:.0f} MB)")
            elif not reason and time.monotonic() - start > SECONDS:
                reason.append(f"{what}: no end after {SECONDS} s")
            if reason:
                signal.pthread_kill(main_thread, signal.SIGALRM)
    previous = signal.signal(signal.SIGALRM, interrupt)
    tracemalloc.start()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        assert peak < MEGABYTES, f"{what}: {peak:.0f} MB"
    finally:
        done.set()
        watcher.join()
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, previous)


def run(what, *argv):
    """(status, stdout + stderr) of `python -m mflow ARGV`, in this process, bounded."""
    out = io.StringIO()
    with bounded(what), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = main(list(argv))
        except SystemExit as e:
            status = e.code
    return status, out.getvalue()


class Config:
    """What plugin.engine_reports reads of pytest's config."""

    def __init__(self, corpus):
        self.corpus, self.stash = corpus, {}

    def getoption(self, name):
        return {"--mflow-engine": "mflow", "--mflow-reports": str(self.corpus)}[name]


@pytest.fixture(scope="module")
def shared_checker():
    """list and retire build a Checker per engine; one for all examples here (a new one
    traces the compiled JAX interpreter again)."""
    import mflow.oracles.checker as checker_module
    real = checker_module.Checker
    one = real(MflowEngine(), modes=("vjp",))
    checker_module.Checker = lambda engine, **kw: one if isinstance(engine, MflowEngine) \
        else real(engine, **kw)
    yield one
    checker_module.Checker = real


@settings(max_examples=int(os.environ.get("MFLOW_DAMAGED_EXAMPLES", "200")), deadline=None,
          database=None, suppress_health_check=list(HealthCheck))
@given(plan=corpora())
def test_every_entry_point_handles_damaged_files(template, shared_checker, plan):
    reports, archive, inflight, records = plan
    base = Path(tempfile.mkdtemp(prefix="damaged-"))
    try:
        _check(base, template, shared_checker, reports, archive, inflight, records)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _check(base, template, checker, reports, archive, inflight, records):
    from mflow.reports.inflight import FOLDER, InFlight, recover
    from mflow.reports.plugin import engine_reports
    outside = base / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "file").write_text("a file of the user's")
    corpus = base / "corpus"
    corpus.mkdir()
    valid, damaged, strays = set(), set(), set()
    for k, (kind, which, where, how) in enumerate(reports):
        name = f"{template[which].name}-{k}"
        shutil.copytree(template[which], corpus / name)
        if kind == "valid":
            valid.add(name)
            continue
        damaged.add(name)
        if where == "the folder":
            damage(corpus / name, how[0] if how[0] in ("link out", "link /dev/zero", "fifo")
                   else "link out", outside)
            damaged.discard(name)  # a link or FIFO where a report was: not a report at all
            strays.add(name)
        else:
            damage(corpus / name / where, how[0], outside, how[1])
            if where in ("seen", "reproduce.py"):
                damaged.discard(name)  # the report itself still loads
                valid.add(name)
    if archive == "link out":
        (corpus / "archive").symlink_to(outside / "folder")
    elif archive == "file":
        (corpus / "archive").write_text("not a folder")
    elif archive == "fifo":
        os.mkfifo(corpus / "archive")
    flight = corpus / FOLDER
    flight.mkdir()
    for k, what in enumerate(inflight):
        path = flight / f"gw{k}-1-x.case"
        if what in ("other engine", "mflow"):
            flying = InFlight(corpus, "other_engine:x" if what == "other engine" else "mflow")
            flying.write(Case(Program(((1, 1),), (Step("neg", (0,)),)), (np.ones((1, 1)),),
                              np.ones((1, 1))))
            flying.file.close()  # its writer gone: unlocked
            flying.file = None
            continue
        damage(path, {"garbage": "json value", "empty": "empty"}.get(what, what), outside,
               "garbage")
    campaigns = []
    for m in range(2):
        folder = base / f"machine{m}" / "campaign"
        folder.mkdir(parents=True)
        (folder / "stats-main.json").write_text(json.dumps({**_stats(), "checked": 3}))
        (folder / "run.json").write_text(json.dumps({"machine": f"m{m}", "seconds": 1}))
        (folder / "failures.json").write_text("[]")
        campaigns.append(folder)
    for name, how, value in records:
        damage(campaigns[1] / name, how, outside, value)
    before = snapshot(outside)
    parent = set(os.listdir(base))

    # the gate's collection, then its replay of each collected report
    with bounded("gate collection"):
        collected = {f.name for f in engine_reports(Config(corpus))}
    assert valid | damaged <= collected, (valid, damaged, collected)
    from mflow.reports.sequence import replayed
    for name in sorted(collected):
        with bounded(f"gate replay of {name}"):
            try:
                case, report = regressions.load(corpus / name)
                outcome = replayed(checker, corpus / name, case, report)
            except regressions.ReportError as e:
                assert name in str(e) and "\n" not in str(e)
                assert name in damaged, e
                continue
            assert name in valid
            assert outcome is None

    # list: every report one line, damaged ones named; status 1 when one is damaged
    status, out = run("list", "list", "--reports", str(corpus))
    for name in valid:
        assert f"fixed      {name}" in out, out
    for name in damaged:
        assert f"unreadable {name}" in out, out
    for name in strays:
        assert f"not a report {name}" in out, out
    assert status == (1 if damaged else 0), out

    # retire: the fixed ones into archive/, never through a link or onto a file
    status, out = run("retire", "retire", "--reports", str(corpus))
    if archive is None:
        assert status == (1 if damaged else 0), out
        assert {p.name for p in (corpus / "archive").iterdir()} == valid
    else:
        assert status == 4 and "archive" in out, out
        assert valid <= set(os.listdir(corpus))

    # each report's reproduce.py: a damaged report's data raises a named ReportError
    for name in sorted(valid | damaged):
        folder = corpus / "archive" / name if (corpus / "archive" / name).is_dir() \
            else corpus / name
        script = folder / "reproduce.py"
        if not (script.is_file() and not script.is_symlink()) or \
                script.read_bytes()[:3] != b'"""':
            continue  # its reproduce.py is what was damaged: nothing of ours to run
        with bounded(f"reproduce.py of {name}"), contextlib.redirect_stdout(io.StringIO()):
            try:
                runpy.run_path(str(script), run_name="__main__")
            except regressions.ReportError as e:
                assert name in damaged and name in str(e), e
            else:
                assert name in valid

    # the cases left in flight: only unlocked mflow cases replayed (here, faked), the rest
    # named or left alone
    with bounded("recovery"):
        lines = recover(corpus, "mflow", replay=lambda path, spec: None)
    assert sum("did not die again" in line for line in lines) == inflight.count("mflow")
    assert sum("left by a run of other_engine" in line for line in lines) == \
        inflight.count("other engine")

    # merge and report: the damaged records named, the rest merged
    merged, into = base / "merged", base / "into"
    status, out = run("merge", "merge", str(merged), *map(str, campaigns), "--from",
                      str(corpus), "--reports", str(into))
    assert status in (0, 1) and "graphs checked" in out, out  # 1: a failure was recorded
    for name, how, _ in records:
        if how != "json value":  # (valid JSON of the right type may be no damage at all)
            assert f"left out, damaged: {campaigns[1] / name}" in out, out
    assert set(os.listdir(into)) == (valid if archive is not None else set()), out
    status, out = run("report", "report", str(campaigns[1]))
    assert status in (0, 4), out  # 4: no stats left to report on
    assert snapshot(outside) == before, "something was written outside the chosen folders"
    assert set(os.listdir(base)) - parent <= {"merged", "into"}


def _stats():
    from mflow.reports.stats import Stats
    return Stats().to_dict()
