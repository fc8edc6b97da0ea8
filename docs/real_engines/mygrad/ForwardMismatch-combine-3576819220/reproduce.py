"""Replays one saved failure on the engine it was found on, through its
adapter (mflow.oracles.adapters.mygrad); needs numpy, mflow (the suite) and that engine. Run it from this folder.
Every file is read through mflow's bounded loader (mflow.reports.regressions.load)."""
import pathlib
import traceback

from mflow.oracles.engine import load_engine, normalise
from mflow.reports.regressions import Replay, expected, load

here = pathlib.Path(__file__).resolve().parent
case, _ = load(here)
program, inputs, cotangent = case.program, case.inputs, case.cotangent
# the verdict's own tolerances, norm-wise per array (oracles/tolerance.py)
tolerances = {
    'forward': 3.077752102594745e-14,
    'gradient of x0': 4.322611469454294e-14,
}
replay = Replay(here, tolerances, program.dtype, "engine")
for k, step in enumerate(program.steps):  # value k + number of inputs
    print(f"v{k + len(program.inputs)} = {step.op}({', '.join(f'v{a}' for a in step.args)})"
          f" {step.attrs or ''}")
engine = normalise(load_engine('mflow.oracles.adapters.mygrad'))
try:
    result = engine.vjp(program, [x.copy() for x in inputs], cotangent.copy())
except BaseException:  # noqa: BLE001 - the crash is the finding
    traceback.print_exc()
    raise SystemExit("MISMATCH: the engine raised") from None
replay.compare("forward", result.forward, "expected_forward", program.output_shape)
if len(result.grads) != len(inputs):
    replay.mismatch = True
    print(f"{len(result.grads)} gradients for {len(inputs)} inputs  MISMATCH")
for i, g in enumerate(result.grads[:len(inputs)]):
    replay.compare(f"gradient of x{i}", g, f"expected_grad_x{i}", program.inputs[i])
tangents = [expected(here, f"tangent_x{i}", x.shape, x.dtype) for i, x in enumerate(inputs)]
if tangents[0] is not None:  # forward mode and second order, where checked
    if engine.offers["jvp"] and expected(here, "expected_jvp", program.output_shape) is not None:
        _, got = engine.jvp(program, [x.copy() for x in inputs], [t.copy() for t in tangents])
        replay.compare("tangent", got, "expected_jvp", program.output_shape)
    if engine.offers["hvp"] and expected(here, "expected_hvp_x0", program.inputs[0]) is not None:
        got = engine.hvp(program, [x.copy() for x in inputs], cotangent.copy(),
                         [t.copy() for t in tangents])
        for i, h in enumerate(got):
            replay.compare(f"hvp of x{i}", h, f"expected_hvp_x{i}", program.inputs[i])
replay.verdict()
