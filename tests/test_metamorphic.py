"""Properties that need no reference: the VJP is linear in the cotangent, a node
used twice gets both uses' gradients, backward twice doubles `.grad`."""

import numpy as np
from hypothesis import assume, given

import mflow
from oracles.engine import MflowEngine, run_engine
from oracles.program import Program, Step
from strategies import cases

ENGINE = MflowEngine()


@given(cases(max_steps=8))
def test_vjp_is_linear_in_the_cotangent(case):
    p, x, c = case.program, case.inputs, case.cotangent
    c2 = np.roll(c, 1)
    g1 = run_engine(ENGINE, p, x, c).grads
    g2 = run_engine(ENGINE, p, x, c2).grads
    g12 = run_engine(ENGINE, p, x, c + 2 * c2).grads
    for a, b, ab in zip(g1, g2, g12):
        scale = np.abs(a).max() + 2 * np.abs(b).max() + 1e-300
        np.testing.assert_allclose(ab, a + 2 * b, rtol=0, atol=1e-12 * scale)


@given(cases(max_steps=8))
def test_output_used_twice_doubles_every_gradient_exactly(case):
    """y + y: the output's node is used twice; scaling by 2 is exact in floating point."""
    p = case.program
    n = len(p.inputs) + len(p.steps) - 1
    twice = Program(p.inputs, p.steps + (Step("add", (n, n)),), p.dtype)
    once = run_engine(ENGINE, p, case.inputs, case.cotangent).grads
    doubled = run_engine(ENGINE, twice, case.inputs, case.cotangent).grads
    for a, b in zip(once, doubled):
        np.testing.assert_array_equal(b, 2 * a)


@given(cases(max_steps=8))
def test_backward_twice_doubles_grad(case):
    leaves = [mflow.Node(x, requires_grad=True) for x in case.inputs]
    values = list(leaves)
    for step in case.program.steps:
        if step.op == "const":
            values.append(mflow.Node(np.asarray(step.attrs["value"], case.program.dtype)))
        else:
            values.append(mflow.apply(step.op, *[values[a] for a in step.args], **step.attrs))
    out = values[-1]
    assume(out.requires_grad)  # an output built from constants alone has no backward
    out.backward(case.cotangent)
    first = [None if x.grad is None else x.grad.copy() for x in leaves]
    out.backward(case.cotangent)
    for x, g in zip(leaves, first):
        if g is not None:
            np.testing.assert_array_equal(x.grad, 2 * g)
