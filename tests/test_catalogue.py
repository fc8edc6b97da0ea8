"""One record per operation (oracles/catalogue.py), read by everything: every table
the suite uses is derived from it (the references, the compiled JAX interpreter's
opcodes, the strategies' draws, the printer), mflow's engine entries agree with it,
and the README's table is its rendering. The toy-operation test (test_toy_op.py)
adds an operation with one record and one engine entry and nothing else."""

import inspect
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mflow.oracles.catalogue import CATALOGUE, markdown_table
from mflow.oracles.engine import MflowEngine, run_engine
from mflow.oracles.finite_differences import forward_values
from mflow.oracles.jax_backend import JAX_OPS, JaxOracle, codes, compiled, plain_vjp
from mflow.oracles.numpy_backend import NUMPY_OPS
from mflow.oracles.program import Program, Step
from mflow.oracles.torch_backend import TORCH_OPS, TorchEngine
from mflow.strategies import cases
from mflow.strategies.graphs import _VARIANTS, ORDER

import mflow
from mflow import OPS, functions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
JAX = JaxOracle()


def test_every_table_is_the_catalogues():
    for table in (TORCH_OPS, JAX_OPS, NUMPY_OPS, _VARIANTS):
        assert list(table) == list(CATALOGUE)
    assert list(ORDER) == list(CATALOGUE)
    # the compiled interpreter has a branch for the operations it compiles; a program with
    # any other runs op by op, never half compiled
    assert {name for name, _ in codes()[1:]} == {n for n, r in CATALOGUE.items() if compiled(r)}
    assert set(CATALOGUE) == {name for name, _ in codes()[1:]}  # mflow's: every one


def test_an_operation_the_compiled_interpreter_has_no_branch_for_runs_op_by_op():
    from mflow.oracles import catalogue

    from mflow import shapes
    flipped = catalogue.Record(  # a movement without a slot: no branch to compile
        "toy_flip", 1, "movement", shapes.same, torch=lambda torch, x: torch.flip(x, (0,)),
        jax=lambda jax, x: x[::-1], numpy=lambda np, x: x[..., ::-1, :])
    with catalogue.registered(flipped):
        assert not compiled(flipped) and "toy_flip" not in {n for n, _ in codes()[1:]}
        program = Program(((3, 4),), (Step("tanh", (0,)), Step("toy_flip", (1,))))
        assert JAX.encode(program) is None
        x, cot = np.random.default_rng(0).normal(size=(2, 3, 4))
        got, want = JAX.run(program, [x], cot), plain_vjp(program, [x], cot)
        assert np.array_equal(got.forward, want.forward)
        assert np.array_equal(got.grads[0], want.grads[0])


def test_mflow_has_an_engine_entry_for_every_record_and_they_agree():
    assert set(OPS) == set(CATALOGUE)
    for name, rec in CATALOGUE.items():
        op = OPS[name]
        assert op.arity == rec.arity and op.shape is rec.shape, name
        assert op.attrs == rec.attrs, name  # the defaults, on both sides


def test_every_attribute_is_drawn_as_its_record_says():
    for name, rec in CATALOGUE.items():
        assert set(rec.drawn) == set(rec.attrs), name
        for _arity, attrs in _VARIANTS[name]:
            assert set(dict(attrs)) <= set(rec.attrs), name
            for k, v in dict(attrs).items():
                assert rec.drawn[k] is None or v in rec.drawn[k], (name, k, v)


def test_every_record_has_samples_in_its_domain_shapes():
    for name, rec in CATALOGUE.items():
        assert rec.samples, name
        for shapes, attrs in rec.samples:
            rec.shape(*shapes, **rec.complete(attrs))  # a ShapeError would name the record


def test_mflow_functions_default_as_the_record_does():
    for name, rec in CATALOGUE.items():
        f = getattr(functions, name, None)
        if f is None:
            continue
        params = inspect.signature(f).parameters
        for k, default in rec.attrs.items():
            if k in params and params[k].default is not inspect.Parameter.empty:
                assert params[k].default == default, (name, k)


def test_the_benchmark_draws_from_the_catalogue():
    import bench_engine
    assert set(bench_engine.BENCH_OPS) <= set(CATALOGUE)
    for name, variants in bench_engine.ATTRS.items():
        assert len(variants) == np.prod([len(v) for v in CATALOGUE[name].drawn.values()]), name


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(CATALOGUE)), st.data())
def test_every_backend_and_the_printer_agree_on_every_drawn_variant(name, data):
    """The forward of one step, every attribute value fuzzing draws, on mflow, torch,
    JAX (plain and compiled), numpy, and mflow code printed by Program.to_python."""
    case = data.draw(cases(ops=[name], max_steps=1, dtype="float64"), label="case")
    program, x = case.program, case.inputs
    want = run_engine(MflowEngine(), program, x, case.cotangent).forward
    answers = {
        "numpy": forward_values(program, x)[-1],
        "torch": run_engine(TorchEngine(), program, x, case.cotangent).forward,
        "jax": plain_vjp(program, x, case.cotangent).forward,
        "jax compiled": JAX.run(program, x, case.cotangent).forward,
    }
    namespace = {"np": np, "mflow": mflow, "inputs": list(x)}
    exec(program.to_python(imports=False), namespace)
    answers["printer"] = namespace["output"].value
    for who, got in answers.items():
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{who} on {program!r}")


def test_the_readme_table_is_the_catalogues():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README: paste `python -m mflow.oracles.catalogue`"


def _points_of(rec):
    """(operands, attrs) exactly at each kink (the kink between two values off it) and
    at each tie of the record, for every drawn attribute value."""
    names = list(rec.attrs)
    variants = [dict(zip(names, v)) for v in
                itertools.product(*(rec.drawn[n] for n in names))] if names else [{}]
    out = [((x,), attrs) for attrs in variants for k in rec.kinks_at(attrs)
           for x in [np.array([[k - 1.0, k, k + 1.0]])] if rec.arity == 1]
    return out + [(tuple(np.asarray(x, np.float64) for x in xs), attrs)
                  for xs, attrs, _ in rec.at_tie]


@pytest.mark.parametrize("name", [n for n, r in CATALOGUE.items() if r.kinks or r.ties])
def test_fuzzing_goes_exactly_to_a_kink_only_where_the_references_agree_in_every_mode(name):
    """`at_kinks` is measured, not assumed: where fuzzing may put an operand exactly on a
    kink or tie, torch and JAX give the same VJP, JVP and HVP there; where it may not
    (abs, clip), they differ somewhere."""
    from mflow.oracles import jax_backend, torch_backend
    rec = CATALOGUE[name]
    rng = np.random.default_rng(0)
    differ = []
    for xs, attrs in _points_of(rec):
        program = Program(tuple(x.shape for x in xs), (Step(name, tuple(range(len(xs))), attrs),))
        cot = rng.uniform(-1, 1, program.output_shape)
        ts = [rng.uniform(-1, 1, x.shape) for x in xs]
        for mode, args in (("vjp", (cot,)), ("jvp", (ts,)), ("hvp", (cot, ts))):
            t = getattr(torch_backend, mode)(program, list(xs), *args)
            j = getattr(jax_backend, f"plain_{mode}")(program, list(xs), *args)
            t, j = (np.concatenate([np.ravel(np.asarray(a)) for a in getattr(r, "grads", r)])
                    for r in (t, j))
            if not np.allclose(t, j, rtol=1e-12, atol=1e-12):
                differ.append((mode, attrs, xs))
    assert not differ if rec.at_kinks else differ, (name, differ[:3])
