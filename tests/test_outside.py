"""The suite outside this repository: a throw-away project with its own adapter
and none of this repo's tests, where only the installed package is importable.
A bug planted in that adapter is found by the plugin and by the command, saved
into that project's own reports folder, and gated there."""

import os
import subprocess
import sys

import pytest

ADAPTER = '''
import os

from mflow.oracles.engine import MflowEngine


class Adapter(MflowEngine):
    """mflow under another name; with MY_BUG=1, neg forgets its sign."""
    name = "my-engine"

    def __init__(self):
        super().__init__()
        if os.environ.get("MY_BUG") == "1":
            self.ops = dict(self.ops, neg=lambda x: x * 1.0)


engine = Adapter()
'''

USERS_OWN_TEST = '''
def test_mine():
    assert 1 + 1 == 2
'''


NEG = "test_operation and neg and not float32"  # the fuzz items of the planted bug


@pytest.fixture
def project(tmp_path):
    (tmp_path / "my_adapter.py").write_text(ADAPTER)
    (tmp_path / "test_mine.py").write_text(USERS_OWN_TEST)
    return tmp_path


def run(project, *args, bug=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFLOW_")}
    env.update(PYTHONPATH=str(project), MY_BUG="1" if bug else "0", MFLOW_PROFILE="dev")
    return subprocess.run([sys.executable, "-m", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=900)


def test_the_plugin_and_the_command_work_in_another_project(project):
    # an ordinary pytest run there: untouched, only the user's test
    plain = run(project, "pytest", "-q", "-p", "no:cacheprovider")
    assert plain.returncode == 0 and "1 passed" in plain.stdout, plain.stdout + plain.stderr

    # the plugin: the planted bug is found and saved in that project's reports folder
    fuzz = run(project, "pytest", "-q", "-p", "no:cacheprovider", "--mflow-fuzz",
               "--mflow-engine", "my_adapter:engine", "-k", NEG)
    assert fuzz.returncode == 1, fuzz.stdout + fuzz.stderr
    saved = sorted(p for p in (project / "reports" / "regressions").iterdir()
                   if not p.name.startswith("."))
    # (a wrong sign shows in the forward value, or, on an exact zero, where -0 == 0, in
    # the gradient alone, or, with a cotangent of zeros drawn on purpose too, in the
    # tangent alone: a CI run drew that once)
    assert saved and all(p.name.startswith(("ForwardMismatch-neg", "GradientMismatch-neg",
                                            "TangentMismatch-neg")) for p in saved), saved

    # the command: the gate replays it there, failing while the bug is in, passing once fixed
    gate = run(project, "mflow", "gate", "--engine", "my_adapter:engine", "--jobs", "1")
    assert gate.returncode == 1 and f"{len(saved)} failed" in gate.stdout, \
        gate.stdout + gate.stderr
    fixed = run(project, "mflow", "gate", "--engine", "my_adapter:engine", "--jobs", "1",
                bug=False)
    assert fixed.returncode == 0 and f"{len(saved)} passed" in fixed.stdout, \
        fixed.stdout + fixed.stderr

    # and the command's campaign: summary and comparison report in the folder asked for
    campaign = run(project, "mflow", "fuzz", "--engine", "my_adapter:engine", "--examples", "20",
                   "--jobs", "1", "--report", "latest", "-k", NEG)
    assert campaign.returncode == 1, campaign.stdout + campaign.stderr
    assert "fuzzing summary" in campaign.stdout
    assert (project / "latest" / "index.html").exists()
    assert "my-engine" in (project / "latest" / "summary.md").read_text()


KILLER = '''
import os

from mflow.oracles.engine import MflowEngine


class Killer(MflowEngine):
    """Dies (os._exit, as a segfault would) on any graph holding a tanh."""
    name = "killer"

    def __init__(self):
        super().__init__()
        tanh = self.ops["tanh"]

        def dying(x):
            os._exit(7)
        self.ops = dict(self.ops, tanh=dying)


engine = Killer()
'''


@pytest.mark.parametrize("jobs", [["-n", "2"], ["-p", "no:xdist"]])
def test_an_engine_that_kills_its_process_leaves_a_saved_finding(tmp_path, jobs):
    (tmp_path / "killer.py").write_text(KILLER)
    args = ("pytest", "-q", "-p", "no:cacheprovider", "--mflow-fuzz", "--mflow-engine",
            "killer:engine", "-k", "test_operation and tanh and not float32 and not large",
            *jobs)
    first = run(tmp_path, *args)
    assert first.returncode != 0, first.stdout + first.stderr
    if jobs[0] == "-p":  # one process: the run died with it; the next run saves the case,
        again = run(tmp_path, *args)  # once it has killed a fresh process too
        assert "kills a fresh process too (exit status 7" in again.stdout, again.stdout
    else:
        assert "kills a fresh process too (exit status 7" in first.stdout, first.stdout
    saved = [p.name for p in (tmp_path / "reports" / "regressions").iterdir()
             if not p.name.startswith(".")]
    assert saved and all(name.startswith("EngineCrash-tanh") for name in saved), saved
