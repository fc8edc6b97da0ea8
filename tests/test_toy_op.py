"""Adding an operation is one catalogue record and one engine entry: here a toy
operation, x³, is added in this file alone (a test-only registry), and the whole
suite takes it: it is drawn in random graphs with the built-in operations, every
reference runs it (torch, JAX plain and compiled, numpy and the finite differences),
it is checked in every mode, and a wrong rule planted in it is found, shrunk, saved,
and failing when the saved report is replayed."""

import contextlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from mflow.oracles import catalogue
from mflow.oracles.checker import Checker
from mflow.oracles.engine import MflowEngine
from mflow.oracles.verdict import GradientMismatch
from mflow.reports import regressions
from mflow.reports.reduce import reduce_and_save
from mflow.strategies import cases

import mflow
from mflow import shapes
from mflow.node import Op
from mflow.ops import OPS

TOY = catalogue.Record(
    "toy_cube", 1, "elementwise", shapes.same,
    torch=lambda torch, x: x ** 3, jax=lambda jax, x: x ** 3, numpy=lambda np, x: x ** 3,
    samples=((((3, 4),), {}),))
RIGHT = Op("toy_cube", 1, shapes.same, forward=lambda x: x ** 3,
           vjp=lambda F, g, ans, x: (g * 3 * x * x,), jvp=lambda t, ans, x: t[0] * 3 * x * x)
WRONG = Op("toy_cube", 1, shapes.same, forward=lambda x: x ** 3,
           vjp=lambda F, g, ans, x: (g * 2 * x * x,),  # 2x² for 3x²
           jvp=lambda t, ans, x: t[0] * 3 * x * x)


@contextlib.contextmanager
def toy(engine_entry):
    """The test-only registry: the record in the catalogue, the entry in mflow's table."""
    with catalogue.registered(TOY), mock.patch.dict(OPS, {"toy_cube": engine_entry}):
        yield MflowEngine()  # (an adapter made now has the new operation in its ops)


def has_toy(case):
    return "toy_cube" in case.program.ops()


def test_the_toy_operation_is_drawn_run_by_every_reference_and_checked_in_every_mode():
    with toy(RIGHT) as engine:
        checker = Checker(engine)
        assert checker.modes == ("vjp", "jvp", "hvp")
        seen = []

        @settings(max_examples=40, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(cases(ops=["toy_cube", "add", "mul", "tanh", "sum"], max_steps=4))
        def check(case):
            verdict = checker.judge(case)
            assert verdict.outcome is None, verdict.describe()
            if has_toy(case):
                seen.append({c.pair for c in verdict.comparisons})
        check()
    assert seen, "the toy operation was never drawn"
    pairs = set().union(*seen)
    for pair in [("engine", "torch"), ("engine", "jax"), ("engine", "fd"), ("jax", "torch"),
                 ("engine jvp", "torch jvp"), ("engine jvp", "jax jvp"),
                 ("engine jvp", "engine vjp"), ("engine hvp", "torch hvp"),
                 ("engine hvp", "jax hvp")]:
        assert pair in pairs, pair
    assert "toy_cube" not in catalogue.CATALOGUE and "toy_cube" not in OPS  # gone after


def test_a_wrong_rule_in_the_toy_operation_is_found_shrunk_saved_and_replays(tmp_path):
    with toy(WRONG) as engine:
        checker = Checker(engine, modes=("vjp",))

        def fails(case):
            return has_toy(case) and isinstance(checker.judge(case).outcome, GradientMismatch)
        case = find(cases(ops=["toy_cube", "add", "mul", "tanh"], max_steps=5), fails,
                    settings=settings(max_examples=500, database=None, deadline=None,
                                      suppress_health_check=list(HealthCheck)))
        failure = checker.judge(case).outcome
        folder = reduce_and_save(failure, checker, engine, tmp_path)
        saved, report = regressions.load(folder)
        assert len([s for s in saved.program.steps if s.op != "const"]) <= 2, saved.program
        assert report["blame"]["op"] == "toy_cube"
        assert isinstance(checker.judge(saved).outcome, GradientMismatch)  # the gate fails
        namespace = {"np": np, "mflow": mflow, "inputs": list(saved.inputs)}
        exec(saved.program.to_python(imports=False), namespace)  # the printer writes it too
    with toy(RIGHT) as engine:
        assert Checker(engine, modes=("vjp",)).judge(saved).outcome is None  # fixed


@pytest.mark.parametrize("library", ["torch", "jax", "numpy"])
def test_a_record_names_its_references_or_takes_the_librarys_function_by_name(library):
    import importlib
    module = importlib.import_module(library)
    rec = catalogue.CATALOGUE["tanh"]  # no reference given: tanh of each library
    f = rec.reference(library, module)
    assert np.allclose(np.asarray(f(*([module.tensor([[0.5]])] if library == "torch" else
                                     [np.array([[0.5]])]))), np.tanh(0.5))
