"""The convention test: an engine's derivative exactly at each kink of the
table (relu at 0) against torch's and JAX's.

Finite differences cannot judge a kink (they straddle it and average the two
slopes), so the fuzzer keeps away from kinks and this test goes to them on
purpose. Where torch and JAX agree, the engine must give the same value; where
they differ, the table's `convention` records both and the engine is held to
neither.
"""

import numpy as np

from mflow.ops import OPS

from .engine import run_engine
from .jax_backend import plain_vjp
from .program import Program, Step
from .torch_backend import TorchEngine


def kink_disagreements(engine):
    """[(op, kink, engine's derivative, the references')] where the engine differs
    from torch and JAX that agree; empty when every convention holds."""
    out = []
    for name, op in OPS.items():
        if not op.kinks or name not in engine.ops or op.arity != 1:
            continue
        for kink in op.kinks:
            x = np.array([[kink - 1.0, kink, kink + 1.0]])
            program = Program(((1, 3),), (Step(name, (0,)),))
            cot = np.ones((1, 3))
            mine = run_engine(engine, program, [x], cot).grads[0]
            torch_g = run_engine(TorchEngine(), program, [x], cot).grads[0]
            jax_g = plain_vjp(program, [x], cot).grads[0]
            if np.array_equal(torch_g, jax_g) and not np.array_equal(mine, torch_g):
                out.append((name, kink, mine[0, 1], torch_g[0, 1]))
    return out
