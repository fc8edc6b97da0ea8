"""Replays one saved failure on the engine it was found on (mflow.oracles.adapters.mygrad), through
its adapter; needs numpy, mflow (the suite) and that engine. Run it from this folder."""
import pathlib
import traceback

import numpy as np

from mflow.oracles.engine import load_engine, run_engine
from mflow.oracles.program import Program

here = pathlib.Path(__file__).resolve().parent
program = Program.from_json((here / "program.json").read_text())
inputs = [np.load(here / f"x{i}.npy") for i in range(1)]
cotangent = np.load(here / "cotangent.npy")
# the verdict's own tolerances, norm-wise per array (oracles/tolerance.py)
tolerances = {'forward': 3.077752102594745e-14, 'gradient of x0': 4.322611469454294e-14}
for k, step in enumerate(program.steps):  # value k + number of inputs
    print(f"v{k + len(program.inputs)} = {step.op}({', '.join(f'v{a}' for a in step.args)})"
          f" {step.attrs or ''}")
engine = load_engine('mflow.oracles.adapters.mygrad')
try:
    result = run_engine(engine, program, [x.copy() for x in inputs], cotangent.copy())
except BaseException:  # noqa: BLE001 - the crash is the finding
    traceback.print_exc()
    raise SystemExit("MISMATCH: the engine raised")
mismatch = False


def compare(name, got, path, shape):
    global mismatch
    got = np.asarray(got)
    if got.shape != tuple(shape) or got.dtype != program.np_dtype:
        mismatch = True
        print(f"{name}: shape {got.shape} and dtype {got.dtype}, expected {tuple(shape)} "
              f"and {program.dtype}  MISMATCH")
        return
    if not path.exists() or name not in tolerances:
        print(f"{name}: no saved reference or tolerance")
        return
    want = np.load(path)
    diff = np.asarray(got, np.float64) - want if got.shape == want.shape else np.inf
    err = float(np.sqrt(np.sum(np.square(diff))))
    ok = err <= tolerances[name]
    mismatch |= not ok
    print(f"{name}: |engine - reference| = {err:.3g}, tolerance {tolerances[name]:.3g}"
          f"{'' if ok else '  MISMATCH'}")


compare("forward", result.forward, here / "expected_forward.npy", program.output_shape)
for i, g in enumerate(result.grads):
    compare(f"gradient of x{i}", g, here / f"expected_grad_x{i}.npy", program.inputs[i])
print("MISMATCH" if mismatch else
      "agrees with the saved references, within the verdict's tolerances")
