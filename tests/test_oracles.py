"""The references themselves: the compiled JAX interpreter equals plain jax.vjp,
finite differences bound their own error, and the suite's bad-input errors."""

import numpy as np
import pytest
from hypothesis import given

from oracles.engine import EngineError, load_engine, supported
from oracles.finite_differences import finite_differences
from oracles.jax_backend import JaxOracle, plain_vjp
from strategies import cases

FAST = JaxOracle()


@given(cases(max_steps=8, dtype="mixed"))
def test_compiled_jax_equals_plain_jax_vjp(case):
    fast = FAST.run(case.program, case.inputs, case.cotangent)
    plain = plain_vjp(case.program, case.inputs, case.cotangent)
    tol = 1e-12 if case.program.dtype == "float64" else 1e-4
    np.testing.assert_allclose(fast.forward, plain.forward, rtol=tol, atol=tol)
    for a, b in zip(fast.grads, plain.grads):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1, np.abs(b).max()))


@given(cases(max_steps=8, max_side=8))
def test_compiled_jax_runs_every_drawn_program_itself(case):
    """Within its slots, the compiled path takes every program (no silent fallback)."""
    assert FAST.encode(case.program) is not None or len(case.program.steps) > 16


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
    ("oracles.engine:Nope", r"has no 'Nope'"),
    ("numpy", r"the adapter lacks name, ops, leaf, constant, gradients"),
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
