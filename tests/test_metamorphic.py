"""Properties that need no reference: the VJP is linear in the cotangent, a node
used twice gets both uses' gradients, backward twice doubles `.grad`."""

import numpy as np
import pytest
from hypothesis import assume, example, given
from mflow.oracles.engine import MflowEngine, run_engine
from mflow.oracles.finite_differences import forward_values
from mflow.oracles.program import Case, Program, Step
from mflow.oracles.tolerance import U64, condition_factor, rounding_floor, term_scales
from mflow.strategies import cases

import mflow
from tests.planted_bugs import Bug

ENGINE = MflowEngine()


def assert_vjp_linear(case):
    """VJP(c + 2 c') = VJP(c) + 2 VJP(c'), each of the three backward passes
    within the verdict's rounding floor for float64 (the terms each sums, not the
    answer alone: a gradient that cancels to 0 is never held to its own residue)."""
    p, x, c = case.program, case.inputs, case.cotangent
    c2 = np.roll(c, 1)
    values = forward_values(p, x)
    kappa = condition_factor(p, values)
    runs = [(c, 1.0), (c2, 2.0), (c + 2 * c2, 1.0)]
    grads = [run_engine(ENGINE, p, x, cot).grads for cot, _ in runs]
    for i, (a, b, ab) in enumerate(zip(*grads)):
        error = np.linalg.norm(ab - (a + 2 * b))
        tol = sum(w * rounding_floor(p, U64, kappa, np.linalg.norm(g) + term_scales(cot, values)[1])
                  for (cot, w), g in zip(runs, (a, b, ab)))
        assert error <= tol, f"gradient of x{i}: ||VJP(c + 2c') - VJP(c) - 2 VJP(c')|| = " \
                             f"{error:.3g} > {tol:.3g}"


@given(cases(max_steps=8))
# found by a 3,000-example run when the tolerance was relative to the gradient: the
# gradient of sum(softmax(x)) is 0 and came back as 0 once, as ±1e-17 the other times
@example(Case(Program(((1, 2),), (Step("softmax", (0,), {"axis": 1}),
                                  Step("sum", (1,), {"axis": None})), "float64"),
              (np.array([[0.047286, 1.801855]]),), np.array([[0.047286]])))
def test_vjp_is_linear_in_the_cotangent(case):
    assert_vjp_linear(case)


def test_the_linearity_check_catches_a_vjp_that_is_not_linear():
    """A relu whose VJP masks by the cotangent's sign (g > 0) instead of the input's:
    right for a positive cotangent, not linear in it."""
    bug = Bug("relu_masks_by_cotangent", "relu", "mask (g > 0) instead of (x > 0)",
              {"relu": {"vjp": lambda F, g, ans, x: (g * (g > 0),)}})
    case = Case(Program(((2, 2),), (Step("relu", (0,)),), "float64"),
                (np.array([[1.0, 2.0], [3.0, 4.0]]),), np.array([[1.0, -1.0], [2.0, -3.0]]))
    assert_vjp_linear(case)  # the correct rule passes
    with bug.planted(), pytest.raises(AssertionError, match="gradient of x0"):
        assert_vjp_linear(case)


@given(cases(max_steps=8))
def test_output_used_twice_doubles_every_gradient_exactly(case):
    """y + y: the output's node is used twice; scaling by 2 is exact in floating point."""
    p = case.program
    n = len(p.inputs) + len(p.steps) - 1
    twice = Program(p.inputs, p.steps + (Step("add", (n, n)),), p.dtype)
    once = run_engine(ENGINE, p, case.inputs, case.cotangent).grads
    doubled = run_engine(ENGINE, twice, case.inputs, case.cotangent).grads
    # exact, but for subnormals: there y·(2g) and 2(y·g) round to different last bits
    # (found: a softmax gradient of 2.5e-314, off by 5e-324)
    tiny = 4 * np.finfo(p.np_dtype).smallest_subnormal
    for a, b in zip(once, doubled):
        np.testing.assert_allclose(b, 2 * a, rtol=0, atol=tiny)


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
