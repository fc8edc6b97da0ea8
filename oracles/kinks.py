"""The convention test: an engine's derivative exactly at each kink of the
table (relu at 0) against torch's and JAX's.

Finite differences cannot judge a kink (they straddle it and average the two
slopes), so the fuzzer keeps away from kinks and this test goes to them on
purpose. Where torch and JAX agree, the engine must give the same value; where
they differ, the table's `convention` records both and the engine is held to
neither. An adapter may declare its own convention (`conventions`, see
engine.py): a derivative that matches what it declared is reported as that
documented convention, not as a disagreement.
"""

import numpy as np

from .catalogue import CATALOGUE
from .engine import capabilities, run_engine
from .jax_backend import plain_vjp
from .program import Program, Step
from .torch_backend import TorchEngine


def kink_table(engine):
    """One row per kink of the table: {op, kink, engine, torch, jax, convention,
    agrees}, the derivatives taken exactly at the kink (cotangent 1)."""
    rows, declared = [], capabilities(engine).conventions
    for name, op in CATALOGUE.items():
        if not op.kinks or name not in engine.ops or op.arity != 1:
            continue
        for kink in op.kinks:
            x = np.array([[kink - 1.0, kink, kink + 1.0]])
            program = Program(((1, 3),), (Step(name, (0,)),))
            cot = np.ones((1, 3))
            mine = run_engine(engine, program, [x], cot).grads[0]
            torch_g = run_engine(TorchEngine(), program, [x], cot).grads[0]
            jax_g = plain_vjp(program, [x], cot).grads[0]
            references_agree = np.array_equal(torch_g, jax_g)
            own = declared.get(name, {}).get(kink)
            as_declared = own is not None and mine[0, 1] == own and \
                np.array_equal(np.delete(mine, 1), np.delete(torch_g, 1))
            rows.append({"op": name, "kink": kink, "engine": float(mine[0, 1]),
                         "torch": float(torch_g[0, 1]), "jax": float(jax_g[0, 1]),
                         "convention": op.convention, "declared": own,
                         "as_declared": bool(as_declared),
                         "agrees": (not references_agree) or np.array_equal(mine, torch_g)
                         or bool(as_declared)})
    return rows


def kink_disagreements(engine):
    """[(op, kink, engine's derivative, the references')] where the engine differs
    from torch and JAX that agree; empty when every convention holds."""
    return [(r["op"], r["kink"], r["engine"], r["torch"]) for r in kink_table(engine)
            if not r["agrees"]]
