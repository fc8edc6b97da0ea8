"""Forward mode: mflow.jvp, each operation's own JVP rule, against torch's forward-mode
AD and jax.jvp (float64), the transpose identity ⟨ȳ, J ṫ⟩ = ⟨Jᵀ ȳ, ṫ⟩ against
mflow's own VJPs, and closed forms."""

import numpy as np
import pytest
from hypothesis import given, settings
from mflow.oracles.engine import MflowEngine
from mflow.oracles.jax_backend import plain_jvp as jax_jvp
from mflow.oracles.program import interpret
from mflow.oracles.torch_backend import jvp as torch_jvp
from mflow.strategies import cases

import mflow
from mflow.ops import OPS

from .helpers import assert_close


def tangents_for(case, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, x.shape).astype(x.dtype) for x in case.inputs]


def mflow_jvp(program, inputs, tangents):
    ops = MflowEngine().ops
    values = interpret(program, ops, lambda x: mflow.Node(x, requires_grad=True), mflow.Node,
                       inputs)
    return values[-1].value, mflow.jvp(values[-1], values[:len(inputs)], tangents), values


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_operation_jvp_agrees_with_torch_and_jax(name):
    @settings(max_examples=15, deadline=None, database=None)
    @given(case=cases(ops=[name], max_steps=1, dtype="float64"))
    def check(case):
        t = tangents_for(case)
        out, mine, _ = mflow_jvp(case.program, case.inputs, t)
        for who, (ref_out, ref) in (("torch", torch_jvp(case.program, case.inputs, t)),
                                    ("jax", jax_jvp(case.program, case.inputs, t))):
            assert_close(out, ref_out, what=f"{name} forward vs {who}")
            assert_close(mine, ref, what=f"{name} JVP vs {who}: {case.program}")
    check()


@settings(max_examples=60, deadline=None)
@given(case=cases(max_steps=8, dtype="float64"))
def test_transpose_identity_on_random_graphs(case):
    """⟨ȳ, J ṫ⟩ (forward mode) = ⟨Jᵀ ȳ, ṫ⟩ (reverse mode): two separate rule sets, one
    number; their rounding is bounded by the terms' size."""
    t = tangents_for(case, 1)
    _, jt, values = mflow_jvp(case.program, case.inputs, t)
    out = values[-1]
    leaves = values[:len(case.inputs)]
    if out.requires_grad:
        out.backward(case.cotangent)
    grads = [np.zeros_like(x.value) if x.grad is None else x.grad for x in leaves]
    lhs = float(np.sum(case.cotangent * jt))
    rhs = float(sum(np.sum(g * ti) for g, ti in zip(grads, t)))
    terms = float(np.sum(np.abs(case.cotangent * jt))) + float(
        sum(np.sum(np.abs(g * ti)) for g, ti in zip(grads, t)))
    # each side is a float64 sum of products of local derivatives: off by a few hundred
    # ulps of its terms at most on these graphs (conditioned domains, ≤ ~20 steps);
    # 1e-9 of the terms leaves 1e4 of margin and is still far below a wrong rule's O(1).
    # Where contributions cancel inside the walk (solve(A, A) = I, whose derivative is 0:
    # two operands' gradients of size |A⁻¹| that add to rounding noise), the terms are
    # measured after the cancellation; the floor is their size before it, Σ|ȳ| Σ|ṫ|
    # max(1, |v|)² (the floor of oracles/tolerance.py), at 1e-14: about that floor's
    # 16 (steps + 1) u, and 1e14 below a wrong rule's O(1) error
    biggest = max(1.0, max(float(np.max(np.abs(v.value))) for v in values))
    floor = float(np.sum(np.abs(case.cotangent))) * float(sum(np.sum(np.abs(ti)) for ti in t)) \
        * biggest ** 2
    assert abs(lhs - rhs) <= 1e-9 * terms + 1e-14 * floor, (lhs, rhs, case.program)


def test_closed_forms():
    rng = np.random.default_rng(3)
    A, B, X, V = (rng.uniform(-1, 1, (3, 3)) for _ in range(4))
    X = X + 3 * np.eye(3)  # well away from singular
    x = mflow.Node(X, requires_grad=True)
    # tr(A X B) is linear: its JVP is tr(A V B), at any X
    assert np.isclose(mflow.jvp((mflow.Node(A) @ x @ mflow.Node(B)).trace(), [x], [V])[0, 0],
                      np.trace(A @ V @ B))
    # log det X: d = tr(X⁻¹ V)
    assert np.isclose(mflow.jvp(mflow.log(mflow.det(x)), [x], [V])[0, 0],
                      np.trace(np.linalg.solve(X, V)))
    # sum(X ⊙ X): d = 2 Σ X ⊙ V
    assert np.isclose(mflow.jvp((x * x).sum(), [x], [V])[0, 0], 2 * np.sum(X * V))
    # a fixed operand has no tangent; an input the output ignores, none either
    y = mflow.Node(V, requires_grad=True)
    assert np.array_equal(mflow.jvp(x.sum(), [y], [V]), [[0.0]])


def test_bad_tangents_are_named():
    x = mflow.Node(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(mflow.ShapeError, match=r"tangent of input 0 has shape \(3, 2\)"):
        mflow.jvp(x.sum(), [x], [np.ones((3, 2))])
    with pytest.raises(ValueError, match="1 inputs but 2 tangents"):
        mflow.jvp(x.sum(), [x], [np.ones((2, 3))] * 2)
