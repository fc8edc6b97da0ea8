"""The regression gate itself is shipped (mflow/reports/gate.py, `--mflow-gate`).
Here: reports are written atomically, counted once per signature, and validated
on load."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from mflow.oracles.checker import Checker
from mflow.oracles.engine import MflowEngine
from mflow.oracles.program import Case, Program, Step
from mflow.oracles.verdict import GradientMismatch
from mflow.reports import regressions
from mflow.reports.reduce import blame_and_save

from tests.planted_bugs import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
SAVED = regressions.reports(ROOT / "reports" / "regressions")  # this project's corpus


def test_the_gate_has_a_corpus():
    assert SAVED, "reports/regressions holds the demonstrated first entry of the corpus"


@pytest.fixture(scope="module")
def tanh_failure():
    bug = next(b for b in CATALOGUE if b.name == "tanh_not_squared")
    p = Program(((2, 2), (2, 2)), (Step("matmul", (0, 1)), Step("tanh", (2,)), Step("add", (3, 0))))
    rng = np.random.default_rng(1)
    case = Case(p, (rng.uniform(-1, 1, (2, 2)), rng.uniform(-1, 1, (2, 2))),
                rng.uniform(-1, 1, (2, 2)))
    with bug.planted():  # only while checking: the tests that use it plant it again, and
        with pytest.raises(GradientMismatch) as info:  # the others in this module run on
            Checker(MflowEngine()).check(case)  # mflow as it is (a bug left planted for the
    return info.value  # module's life made a forward-mode test see tanh's VJP bug)


def test_a_report_saves_once_counts_repeats_and_reloads(tanh_failure, tmp_path):
    with next(b for b in CATALOGUE if b.name == "tanh_not_squared").planted():
        first = blame_and_save(tanh_failure, MflowEngine(), tmp_path)
        again = blame_and_save(tanh_failure, MflowEngine(), tmp_path)
    assert first == again and len(list((first / "seen").iterdir())) == 1
    case, report = regressions.load(first)
    assert case.program == tanh_failure.verdict.case.program
    # every answer is kept: the engine's (wrong) and each oracle's
    assert set(report["answers"]) == {"engine", "torch", "jax", "torch32", "fd"}
    engine_grad = np.load(first / "engine_grad_x0.npy")
    torch_grad = np.load(first / "torch_grad_x0.npy")
    assert np.array_equal(engine_grad, tanh_failure.verdict.results["engine"].grads[0])
    assert not np.allclose(engine_grad, torch_grad)
    assert np.load(first / "fd_x0_valid.npy").dtype == bool
    assert report["blame"]["op"] == "tanh" and report["blame"]["step"] == 1
    assert not list(tmp_path.glob(".*"))  # no temporary folder left behind


def _saved(bug_names, program, seed, tmp_path):
    """Check a case on mflow with the named bugs planted; blame and save its failure."""
    import contextlib
    rng = np.random.default_rng(seed)
    case = Case(program, tuple(rng.uniform(-1, 1, s) for s in program.inputs),
                rng.uniform(-1, 1, program.output_shape))
    with contextlib.ExitStack() as stack:
        for name in bug_names:
            stack.enter_context(next(b for b in CATALOGUE if b.name == name).planted())
        failure = Checker(MflowEngine()).judge(case).outcome
        assert failure is not None, program
        folder = blame_and_save(failure, MflowEngine(), tmp_path)
    return folder, regressions.load(folder)[1]


def test_one_bug_found_in_different_graphs_is_one_report(tmp_path):
    graphs = [Program(((2, 2), (2, 2)), (Step("matmul", (0, 1)), Step("tanh", (2,)),
                                         Step("add", (3, 0)))),
              Program(((3, 2),), (Step("sin", (0,)), Step("tanh", (1,)), Step("sum", (2,)))),
              Program(((1, 4), (1, 4)), (Step("mul", (0, 1)), Step("tanh", (2,))))]
    folders = {_saved(["tanh_not_squared"], p, k, tmp_path)[0] for k, p in enumerate(graphs)}
    assert len(folders) == 1, folders
    assert len(list(next(iter(folders)).joinpath("seen").iterdir())) == 2  # repeats counted


def test_two_bugs_in_one_rule_are_two_reports(tmp_path):
    """A broadcasting bug and an x + x bug, both in one engine's add, once got one
    signature (the second stayed hidden until the first was fixed). The one-step
    re-check keeps x + x as one value used twice, so the x + x bug is blamed on add."""
    bugs = ["broadcast_not_reduced", "fanout_overwrites"]
    broadcast, b = _saved(bugs, Program(((2, 3), (1, 3)), (Step("add", (0, 1)),)), 0, tmp_path)
    twice, t = _saved(bugs, Program(((2, 3),), (Step("add", (0, 0)),)), 1, tmp_path)
    across, a = _saved(bugs, Program(((2, 3),), (Step("sin", (0,)), Step("cos", (0,)),
                                                 Step("add", (1, 2)))), 2, tmp_path)
    assert len({broadcast, twice, across}) == 3
    assert b["blame"]["variant"]["broadcast"] == ["full", "row"]
    assert t["blame"]["op"] == "add" and t["blame"]["variant"]["same operand"] == [0, 0]
    assert "every step's rule agrees alone" in a["blame"]  # fan-out across steps: combine
    assert "-combine-" in across.name


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "report.json").write_text("{"), r"report.json: cannot read"),
    (lambda d: (d / "report.json").write_text(json.dumps({"format": 1})), r"field 'signature'"),
    (lambda d: (d / "x0.npy").unlink(), r"x0.npy: cannot open"),
    (lambda d: np.save(d / "x1.npy", np.zeros((3, 3))), r"x1.npy: expected shape \(2, 2\)"),
    (lambda d: (d / "program.json").write_text('{"inputs": [[2, 2]], "steps": [{"op": "x"}]}'),
     r"program.json: .*unknown operation"),
])
def test_a_damaged_report_names_the_file_and_field(tanh_failure, tmp_path, damage, message):
    with next(b for b in CATALOGUE if b.name == "tanh_not_squared").planted():
        folder = blame_and_save(tanh_failure, MflowEngine(), tmp_path)
    damage(folder)
    with pytest.raises(regressions.ReportError, match=message):
        regressions.load(folder)
    shutil.rmtree(folder)


def _npy_header(shape):
    """A valid .npy header claiming `shape`, with no data: 144 bytes that once asked for
    74.5 GiB."""
    import io
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                             "shape": shape})
    return np.lib.format.magic(1, 0) + f.getvalue()


HOSTILE = {
    "json not an object": lambda d: (d / "report.json").write_text("[]"),
    "json null": lambda d: (d / "report.json").write_text("null"),
    "json deep": lambda d: (d / "report.json").write_text("[" * 100_000 + "]" * 100_000),
    "json Infinity": lambda d: (d / "report.json").write_text('{"format": Infinity}'),
    "json inputs Infinity": lambda d: _edit(d, inputs=float("inf")),
    "json not utf-8": lambda d: (d / "report.json").write_bytes(b'{"format": "\xff\xfe"}'),
    "json huge": lambda d: (d / "report.json").write_bytes(b" " * (5 << 20)),
    "format bool": lambda d: _edit(d, format=True),
    "inputs text": lambda d: _edit(d, inputs="a"),
    "report FIFO": lambda d: ((d / "report.json").unlink(), os.mkfifo(d / "report.json")),
    "report symlink": lambda d: ((d / "report.json").unlink(),
                                 (d / "report.json").symlink_to("/etc/passwd")),
    "npy symlink": lambda d: ((d / "x0.npy").unlink(), (d / "x0.npy").symlink_to(d / "x1.npy")),
    "npy directory": lambda d: ((d / "x0.npy").unlink(), (d / "x0.npy").mkdir()),
    "npy huge header": lambda d: (d / "x0.npy").write_bytes(_npy_header((100_000, 100_000))),
    "npy header only": lambda d: (d / "x0.npy").write_bytes(_npy_header((2, 2))),
    "npy truncated": lambda d: (d / "x0.npy").write_bytes((d / "x0.npy").read_bytes()[:20]),
    "npy pickled": lambda d: np.save(d / "x0.npy", np.array([[None, 1], [2, 3]], object),
                                     allow_pickle=True),
    "npy garbage": lambda d: (d / "x0.npy").write_bytes(os.urandom(200)),
    "program slice 1e9": lambda d: (d / "program.json").write_text(
        '{"inputs": [[2, 2], [2, 2]], "dtype": "float64", "steps": [{"op": "getitem", '
        '"args": [0], "attrs": {"rows": {"slice": [0, 1000000000, null]}}}]}'),
    "program deep": lambda d: (d / "program.json").write_text("[" * 50_000),
    "program not utf-8": lambda d: (d / "program.json").write_bytes(b"\xff" * 10),
}


def _edit(folder, **fields):
    report = json.loads((folder / "report.json").read_text())
    report.update(fields)
    (folder / "report.json").write_text(json.dumps(report))


@pytest.mark.parametrize("damage", sorted(HOSTILE))
def test_a_hostile_report_gets_a_named_error_never_a_hang_or_a_huge_allocation(
        tanh_failure, tmp_path, damage):
    import resource
    with next(b for b in CATALOGUE if b.name == "tanh_not_squared").planted():
        folder = blame_and_save(tanh_failure, MflowEngine(), tmp_path)
    HOSTILE[damage](folder)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        case, _ = regressions.load(folder)   # a damage that leaves a valid report may load
    except regressions.ReportError as e:
        assert str(e).startswith(str(folder)) and "\n" not in str(e)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200


KILLED_WRITER = """
import sys
import numpy as np
from mflow.oracles.engine import MflowEngine
from mflow.oracles.program import Case, Program, Step
from mflow.oracles.checker import Checker
from mflow.oracles.verdict import Failure
from mflow.reports import regressions
from tests.planted_bugs import CATALOGUE

bug = next(b for b in CATALOGUE if b.name == "tanh_not_squared")
case = Case(Program(((2, 2),), (Step("tanh", (0,)),)), (np.eye(2) / 2,), np.ones((2, 2)))
with bug.planted():
    try:
        Checker(MflowEngine(), oracles=("torch",)).check(case)
    except Failure as failure:
        print("ready", flush=True)
        for i in range(10 ** 6):  # until killed
            regressions.save(failure, f"{sys.argv[1]}/run{i % 50}", blamed={"op": "tanh"})
"""


def test_reports_survive_sigkill_at_random_moments(tmp_path):
    """Ten writers killed with SIGKILL at random moments leave only complete,
    loadable reports (a half-written one stays a hidden temporary folder)."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rng = random.Random(0)
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=root,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    folders = [f for run in tmp_path.iterdir() for f in regressions.reports(run)]
    assert folders
    for folder in folders:
        regressions.load(folder)


@pytest.mark.parametrize("folder", SAVED, ids=[f.name for f in SAVED])
def test_each_reproducer_agrees_with_the_gate(folder):
    """reproduce.py judges by the verdict's own tolerances: a flat 1e-6 once printed
    MISMATCH for two reports the gate passes."""
    import subprocess
    import sys
    run = subprocess.run([sys.executable, str(folder / "reproduce.py")], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "MISMATCH" not in run.stdout, run.stdout + run.stderr


def test_a_forward_mode_reproducer_still_compares_the_forward_value(tmp_path):
    """Gauging float32 for forward mode forgets the tolerances computed before it; the
    report's reproduce.py must still hold the forward value's and each gradient's, not
    only the tangent's (it compared the tangent alone before this was fixed)."""
    import subprocess
    import sys
    program = Program(((2, 2),), (Step("tanh", (0,)), Step("mul", (1, 0))))
    rng = np.random.default_rng(3)
    case = Case(program, (rng.uniform(-1, 1, (2, 2)),), rng.uniform(-1, 1, (2, 2)))
    with next(b for b in CATALOGUE if b.name == "tanh_jvp_not_squared").planted():
        verdict = Checker(MflowEngine(), modes=("vjp", "jvp")).judge(case)
        assert type(verdict.outcome).__name__ == "TangentMismatch"
        folder = blame_and_save(verdict.outcome, MflowEngine(), tmp_path)
    run = subprocess.run([sys.executable, str(folder / "reproduce.py")], capture_output=True,
                         text=True, timeout=120)
    lines = run.stdout.splitlines()
    for name in ("forward", "gradient of x0", "tangent"):
        assert any(line.startswith(f"{name}: |") and "tolerance" in line for line in lines), \
            run.stdout


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_precision_report_saves_reloads_and_replays(dtype, tmp_path):
    """A half case's arrays survive the report (.npy has no bfloat16: kept as float32,
    exactly, and read back as bfloat16), the gate's replay finds the bug again, and
    reproduce.py replays it (in its own process, where the bug is not planted: it agrees,
    by the half tolerances)."""
    import subprocess
    import sys

    from mflow.oracles.program import np_dtype

    def replay(folder, engine):
        return Checker(engine).judge(regressions.load(folder)[0]).outcome

    bug = next(b for b in CATALOGUE if b.name == "tanh_through_exp")
    program = Program(((1, 3),), (Step("tanh", (0,)),), dtype)
    x = np.array([[0.01, 0.02, 0.03]]).astype(np_dtype(dtype))  # e²ˣ - 1 cancels
    case = Case(program, (x,), np.ones((1, 3)).astype(np_dtype(dtype)))
    with bug.planted():
        failure = Checker(MflowEngine()).judge(case).outcome
        assert type(failure).__name__ == "ForwardMismatch"
        folder = blame_and_save(failure, MflowEngine(), tmp_path)
        loaded, _ = regressions.load(folder)
        assert loaded.program.dtype == dtype and loaded.inputs[0].dtype == np_dtype(dtype)
        assert np.array_equal(loaded.inputs[0], x) and loaded.cotangent.dtype == x.dtype
        assert replay(folder, MflowEngine()) is not None  # found again
        run = subprocess.run([sys.executable, str(folder / "reproduce.py")],
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "MISMATCH" not in run.stdout, run.stdout + run.stderr
    assert "tolerance" in run.stdout and "gradient of x0: |" in run.stdout, run.stdout
    assert replay(folder, MflowEngine()) is None  # the bug gone: the report passes
