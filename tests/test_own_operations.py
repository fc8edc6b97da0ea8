"""Operations of the user's own, from a throw-away project outside this repository:
the README's two GELU examples (a torch.autograd.Function and a jax.custom_vjp), each
with its catalogue record in the adapter. With a wrong backward planted, the fuzzer
finds it, shrinks it to one step and saves it there, the gate fails on it, `list`
without --engine says `not run` (a report never makes an adapter's operation known)
and `reproduce.py` replays it; with the right backward everything passes."""

import json
import os
import subprocess
import sys

import pytest

from tests.test_readme import _block

EXAMPLES = {  # module: (the README's code, the text that plants a wrong backward)
    "my_gelu": (_block("# my_gelu.py"), ("return g * (cdf + x * pdf)", "return g * cdf")),
    "my_jax_gelu": (_block("# my_jax_gelu.py"), ("(cdf + x * jnp.exp", "(cdf + 0 * x * jnp.exp")),
}
GELU = "test_operation and gelu and not float32 and not large"


def run(project, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFLOW_")}
    env.update(PYTHONPATH=str(project), MFLOW_PROFILE="dev")
    return subprocess.run([sys.executable, "-m", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=900)


def replayed(project, folder):
    """The last line reproduce.py prints: MISMATCH (exit status 1), or that it agrees (0)."""
    replay = subprocess.run([sys.executable, "reproduce.py"], cwd=folder, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(project)})
    last = replay.stdout.strip().splitlines()[-1]
    assert replay.returncode == (last == "MISMATCH"), replay.stdout + replay.stderr
    return last


def write(project, module, wrong):
    code, (right, planted) = EXAMPLES[module]
    assert right in code
    (project / f"{module}.py").write_text(code.replace(right, planted) if wrong else code)


@pytest.mark.parametrize("module", list(EXAMPLES))
def test_a_wrong_backward_in_an_operation_of_ones_own_is_found_saved_and_gated(tmp_path, module):
    spec = f"{module}:engine"
    write(tmp_path, module, wrong=True)
    fuzz = run(tmp_path, "mflow", "fuzz", "--engine", spec, "--examples", "30", "--jobs", "1",
               "--report", "latest", "-k", GELU)
    out = fuzz.stdout + fuzz.stderr
    assert fuzz.returncode == 1, out
    saved = sorted(p for p in (tmp_path / "reports" / "regressions").iterdir()
                   if not p.name.startswith("."))
    gelu = [p for p in saved if p.name.startswith("GradientMismatch-gelu")]
    assert gelu, out
    for folder in saved:
        report = json.loads((folder / "report.json").read_text())
        assert report["steps"] <= 1, report  # shrunk to gelu alone
    assert "gelu" in (tmp_path / "latest" / "summary.md").read_text()

    gate = run(tmp_path, "mflow", "gate", "--engine", spec, "--jobs", "1")
    assert gate.returncode == 1 and f"{len(saved)} failed" in gate.stdout, gate.stdout
    listed = run(tmp_path, "mflow", "list")  # no --engine: nothing is imported
    assert listed.returncode == 0 and listed.stdout.count("not run") == len(saved), listed.stdout
    assert f"--engine {spec}" in listed.stdout
    assert replayed(tmp_path, gelu[0]) == "MISMATCH", [p.name for p in saved]

    write(tmp_path, module, wrong=False)  # fixed: the gate and the listing pass
    fixed = run(tmp_path, "mflow", "gate", "--engine", spec, "--jobs", "1")
    assert fixed.returncode == 0 and f"{len(saved)} passed" in fixed.stdout, fixed.stdout
    listed = run(tmp_path, "mflow", "list", "--engine", spec)
    assert listed.returncode == 0 and listed.stdout.count("fixed") == len(saved), listed.stdout
    assert replayed(tmp_path, gelu[0]).startswith("agrees")


def test_a_record_without_a_reference_is_a_usage_error(tmp_path):
    (tmp_path / "no_reference.py").write_text(
        "from mflow import shapes\n"
        "from mflow.oracles.catalogue import Record\n"
        "from mflow.oracles.adapters.torch_eager import TorchEager\n"
        "class Engine(TorchEager):\n"
        "    records = [Record('mystery', 1, 'elementwise', shapes.same)]\n"
        "    ops = {'mystery': lambda x: x}\n"
        "engine = Engine()\n")
    gate = run(tmp_path, "mflow", "gate", "--engine", "no_reference:engine")
    assert gate.returncode == 4, gate.stdout + gate.stderr
    assert "names no torch reference" in gate.stdout + gate.stderr


@pytest.mark.parametrize("module", list(EXAMPLES))
def test_a_value_one_reference_cancels_to_zero_is_no_false_alarm(tmp_path, module):
    """gelu(-10) is -7.6e-23. torch's float64 GELU, x (1 + erf(x/√2)) / 2, cancels to -0,
    and so does the right GELU in bfloat16; JAX's gives -7.6e-23. mflow has no GELU rule
    to measure the rounding on, so the floor stands, scaled by the answer's size: found in
    a campaign, when that size was torch's 0 and the tolerance 1.8e-35. Run apart: the
    record is registered for the life of the process."""
    write(tmp_path, module, wrong=False)
    (tmp_path / "cancel.py").write_text(
        "import numpy as np\n"
        "from mflow.oracles.checker import Checker\n"
        "from mflow.oracles.engine import load_engine\n"
        "from mflow.oracles.program import Case, Program, Step, np_dtype\n"
        f"checker = Checker(load_engine('{module}:engine'))\n"
        "for dtype in ('bfloat16', 'float16', 'float32', 'float64'):\n"
        "    t = np_dtype(dtype)\n"
        "    case = Case(Program(((1, 1),), (Step('gelu', (0,)),), dtype),\n"
        "                (np.array([[-10.0]], t),), np.array([[1.0]], t))\n"
        "    verdict = checker.judge(case)\n"
        "    assert verdict.outcome is None, verdict.outcome\n"
        "print('agreed')\n")
    out = run(tmp_path, "cancel")
    assert out.returncode == 0 and "agreed" in out.stdout, out.stdout + out.stderr
