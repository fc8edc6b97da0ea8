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
