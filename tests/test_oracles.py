"""The references themselves: the compiled JAX interpreter equals plain jax.vjp,
finite differences bound their own error, and the suite's bad-input errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mflow.oracles.checker import Checker
from mflow.oracles.engine import EngineError, MflowEngine, load_engine, supported
from mflow.oracles.finite_differences import finite_differences
from mflow.oracles.jax_backend import JaxOracle, plain_vjp
from mflow.oracles.program import Case, Program, Step
from mflow.oracles.tolerance import as_dtype
from mflow.oracles.verdict import arrays
from mflow.reports.fuzzing import BINARY, UNARY
from mflow.strategies import cases

FAST = JaxOracle()


@given(cases(max_steps=8, dtype="mixed"))
def test_compiled_jax_equals_plain_jax_vjp(case):
    assert_compiled_equals_plain(case)


@settings(max_examples=8)  # plain_vjp costs ~0.5 s on these
@given(cases(ops=UNARY, max_inputs=1, min_steps=12, max_steps=24))
def test_compiled_jax_equals_plain_jax_vjp_on_deep_chains(case):
    assert_compiled_equals_plain(case)


@settings(max_examples=12)  # plain_vjp costs ~0.3 s on these
@given(st.data())
def test_compiled_jax_equals_plain_jax_vjp_at_large_sides(data):
    """Sides above 8 (the fuzz tests' operations at large sides) run in the interpreter of
    large sides, not op by op."""
    side = data.draw(st.integers(9, 64))
    case = data.draw(cases(ops=data.draw(st.sampled_from([BINARY, UNARY, ["matmul", "inv",
                                                                          "det", "conv2d"]])),
                           max_steps=2, max_side=side, dtype="mixed"))
    assert FAST.encode(case.program) is not None or max(max(s) for s in case.program.shapes) <= 8
    assert_compiled_equals_plain(case)


def assert_compiled_equals_plain(case):
    fast = FAST.run(case.program, case.inputs, case.cotangent)
    plain = plain_vjp(case.program, case.inputs, case.cotangent)
    tol = 1e-12 if case.program.dtype == "float64" else 1e-4
    np.testing.assert_allclose(fast.forward, plain.forward, rtol=tol, atol=tol)
    for a, b in zip(fast.grads, plain.grads):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1, np.abs(b).max()))


@settings(max_examples=20)
@given(cases(max_steps=10, dtype="mixed"), st.integers(1, 5))
def test_the_batched_vjp_equals_the_vjp_at_each_point(case, points):
    """JaxOracle.vjps (the second-order difference's gradients, one call for every
    point) answers as one run per point does."""
    rng = np.random.default_rng(points)
    at = [[x + rng.uniform(-1e-3, 1e-3, x.shape).astype(x.dtype) for x in case.inputs]
          for _ in range(points)]
    many = FAST.vjps(case.program, at, case.cotangent)
    tol = 1e-12 if case.program.dtype == "float64" else 1e-5
    for xs, grads in zip(at, many, strict=True):
        for a, b in zip(grads, FAST.run(case.program, xs, case.cotangent).grads, strict=True):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1, np.abs(b).max()))


@settings(max_examples=10)
@given(st.lists(cases(max_steps=8, dtype="mixed"), min_size=1, max_size=20))
def test_prefetched_vjps_answer_their_own_arguments_alone_bit_for_bit(drawn):
    """JaxOracle.prefetch (the hunt's batch in one call): `run` answers each prefetched
    request as its own call does, bit for bit, once; other arguments are not answered
    from the batch."""
    requests = [(as_dtype(c.program, "float64"), [x.astype(np.float64) for x in c.inputs],
                 c.cotangent.astype(np.float64)) for c in drawn]
    own = JaxOracle()
    fit = sum(FAST.encode(p) is not None for p, _, _ in requests)  # (the rest: run alone)
    FAST.prefetch(requests)
    assert len(FAST._ready) == fit
    program, inputs, cotangent = requests[0]
    moved = [x + 1.0 for x in inputs]
    for a, b in zip(arrays(FAST.run(program, moved, cotangent)),
                    arrays(own.run(program, moved, cotangent)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(FAST._ready) == fit
    for request in requests:
        for a, b in zip(arrays(FAST.run(*request)), arrays(own.run(*request)), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    assert FAST._ready == []


def test_a_prefetch_that_raises_leaves_each_check_its_own_call(monkeypatch):
    checker = Checker(MflowEngine())
    case = Case(Program(((2, 2),), (Step("exp", (0,)),)), (np.eye(2),), np.ones((2, 2)))

    def broken(*args):
        raise RuntimeError("no batch")
    monkeypatch.setattr(checker.jax, "_batch_function", broken)
    checker.prefetch([case])
    assert checker.jax._ready == []
    assert checker.judge(case).outcome is None


class CountsVjps(MflowEngine):
    def __init__(self):
        super().__init__()
        self.vjps = 0

    def gradients(self, output, leaves, cotangent):
        self.vjps += 1
        return super().gradients(output, leaves, cotangent)


@pytest.mark.parametrize("oracles, of, vjps", [(("torch", "jax", "fd"), "jax vjp", 1),
                                               (("torch", "fd"), "engine vjp", 17)])
def test_second_orders_difference_is_of_jaxs_gradient_else_of_the_engines(oracles, of, vjps):
    """The central difference of a gradient along ṫ (second order's third reference)
    differentiates JAX's VJP, batched, and calls the engine once per mode; without JAX,
    the engine's own VJP at each of the 16 points."""
    case = Case(Program(((2, 3),), (Step("tanh", (0,)), Step("mul", (1, 0))), "float64"),
                (np.linspace(-1, 1, 6).reshape(2, 3),), np.ones((2, 3)))
    engine = CountsVjps()
    verdict = Checker(engine, oracles=oracles).judge(case, modes=("vjp", "hvp"))
    assert verdict.outcome is None and verdict.fd_hvp_of == of and engine.vjps == vjps
    assert any(c.pair == ("engine hvp", f"fd of {of}") and c.ok for c in verdict.comparisons)


@given(st.one_of(cases(max_steps=10), cases(ops=UNARY, max_inputs=1, min_steps=12, max_steps=24),
                cases(ops=BINARY + ["neg", "tanh", "sum"], max_inputs=1, min_steps=4,
                      max_steps=12, constants=False)))
def test_compiled_jax_runs_every_fuzzed_program_itself(case):
    """The compiled path takes every program the fuzz tests draw, deep chains
    included: a fallback to plain_vjp costs ~0.5 s a graph."""
    assert FAST.encode(case.program) is not None


@given(cases(max_steps=5))
def test_finite_differences_hold_their_bound_against_jax(case):
    ref = plain_vjp(case.program, case.inputs, case.cotangent)
    for g, probes in zip(ref.grads, finite_differences(case.program, case.inputs,
                                                       case.cotangent, np.random.default_rng(0))):
        projected = np.tensordot(probes.directions, np.asarray(g, np.float64), axes=2)
        ok = np.abs(projected - probes.estimate) <= probes.error + 1e-9 * np.abs(projected)
        assert np.all(ok | ~probes.valid)


class NoOps:
    name, ops = "empty", {}
    leaf = constant = gradients = to_numpy = staticmethod(lambda *a: None)


@pytest.mark.parametrize("spec,message", [
    ("no_such_module_xyz", r"cannot import 'no_such_module_xyz'"),
    ("mflow.oracles.engine:Nope", r"has no 'Nope'"),
    ("numpy", r"the adapter lacks name, ops, to_numpy, leaf, constant, gradients"),
])
def test_bad_engines_are_named(spec, message):
    with pytest.raises(EngineError, match=message):
        load_engine(spec)


def test_an_engine_without_the_requested_operations_is_an_error():
    with pytest.raises(EngineError, match=r"supports none of the requested operations \['inv'\]"):
        supported(NoOps(), ["inv"])


def test_one_thread_per_worker():
    """conftest sets OMP_NUM_THREADS=1 before torch is imported, so `pytest -n auto`
    does not oversubscribe the cores (torch reads it when it starts)."""
    import torch
    assert torch.get_num_threads() == 1


def test_monte_carlo_arithmetic_sees_float32_error_that_one_float32_run_missed():
    """inv(trace(X)) with a trace that cancels (Σ|Xᵢᵢ| / |tr X| ≈ 1,600): torch's one
    float32 run came out exact, so it gauged the error as 0. The perturbed runs see
    what float32 rounding does here; a well-conditioned trace they see as ~u."""
    from mflow.oracles.program import Program, Step
    from mflow.oracles.tolerance import U32, perturbed_outputs
    program = Program(((8, 8),), (Step("trace", (0,)), Step("inv", (1,))), "float64")
    cancels = np.ones((8, 8)) + np.diag([0.6, 0, -1.439621, -0.3, -2.827618, 0.826992,
                                         -2.466226, -2.4])
    benign = np.eye(8)
    for x, low, high in ((cancels, 100, 1e5), (benign, 0, 10)):
        exact = 1 / np.trace(x)
        spread = np.abs(perturbed_outputs(program, [x], samples=4)[:, 0, 0] - exact)
        assert low * U32 <= spread.max() / abs(exact) <= high * U32


def test_monte_carlo_arithmetic_leaves_exact_data_exact_and_a_small_bug_visible():
    """float32 1 - (1 - 2⁻¹³) is exact, so 1/x of it has one rounding of error, not
    the 8,000 u that jittering the subtraction's operands would claim. A VJP off by
    1e-3 relative there must fail (it passed when every operand was jittered)."""
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import MflowEngine
    from mflow.oracles.program import Case, Program, Step
    from mflow.oracles.verdict import GradientMismatch

    from tests.planted_bugs import Bug
    program = Program(((1, 1), (1, 1)), (Step("sub", (0, 1)), Step("inv", (2,))), "float32")
    case = Case(program, (np.array([[1.0]], np.float32), np.array([[1 - 2.0 ** -13]], np.float32)),
                np.array([[1.0]], np.float32))
    checker = Checker(MflowEngine())
    checker.check(case)  # the correct rule passes
    off = Bug("inv_vjp_off_by_1e-3", "inv", "the VJP 0.1 % too large",
              {"inv": {"vjp": lambda F, g, ans, x: (-1.001 * ans.T @ g @ ans.T,)}})
    with off.planted(), pytest.raises(GradientMismatch):
        checker.check(case)
