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
        if name not in engine.ops:
            continue
        rows += _tie_rows(engine, name, op)
        if op.arity != 1:
            continue
        attrs = op.complete({})
        for kink in op.kinks_at(attrs):
            x = np.array([[kink - 1.0, kink, kink + 1.0]])
            program = Program(((1, 3),), (Step(name, (0,), attrs),))
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


def _tie_rows(engine, name, op):
    """The derivatives at each of the record's ties (`at_tie`), every operand's gradient
    with cotangent 1, as text: the engine's against torch's and JAX's."""
    rows = []
    for operands, attrs, what in op.at_tie:
        xs = [np.asarray(x, np.float64) for x in operands]
        program = Program(tuple(x.shape for x in xs), (Step(name, tuple(range(len(xs))),
                                                            attrs),))
        cot = np.ones(program.output_shape)
        mine = run_engine(engine, program, xs, cot).grads
        torch_g = run_engine(TorchEngine(), program, xs, cot).grads
        jax_g = plain_vjp(program, xs, cot).grads
        references_agree = all(np.array_equal(t, j) for t, j in zip(torch_g, jax_g))
        rows.append({"op": name, "kink": f"tie: {what}", "engine": _text(mine),
                     "torch": _text(torch_g), "jax": _text(jax_g), "convention": op.convention,
                     "declared": None, "as_declared": False,
                     "agrees": (not references_agree) or all(
                         np.array_equal(m, t) for m, t in zip(mine, torch_g))})
    return rows


def _text(grads):
    return "; ".join(np.array2string(np.asarray(g, np.float64), precision=3, separator=", ")
                     .replace("\n", "") for g in grads)


def kink_disagreements(engine):
    """[(op, kink, engine's derivative, the references')] where the engine differs
    from torch and JAX that agree; empty when every convention holds."""
    return [(r["op"], r["kink"], r["engine"], r["torch"]) for r in kink_table(engine)
            if not r["agrees"]]
