"""One catalogue per operation: mflow's table (mflow/ops.py) is the source, and
every other table follows it. This fails when a backend (torch, JAX plain and
compiled, numpy / Monte Carlo), the program printer, the strategies' draws, the
benchmark or mflow's functions lacks an operation or reads an attribute otherwise."""

import inspect
import re
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from mflow.oracles.engine import MflowEngine, run_engine
from mflow.oracles.finite_differences import forward_values
from mflow.oracles.jax_backend import _CODES, JAX_OPS, JaxOracle, plain_vjp
from mflow.oracles.numpy_backend import NUMPY_OPS
from mflow.oracles.torch_backend import TORCH_OPS, TorchEngine
from mflow.strategies import cases
from mflow.strategies.graphs import _VARIANTS, ORDER

import mflow
from mflow import OPS, functions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
JAX = JaxOracle()


def test_every_table_has_every_operation():
    for table in (TORCH_OPS, JAX_OPS, NUMPY_OPS, _VARIANTS):
        assert set(table) == set(OPS)
    assert sorted(ORDER) == sorted(OPS)
    codes = {re.sub(r"[01]$", "", c) for c in _CODES} - {"nop"}
    assert codes == set(OPS)


def test_every_attribute_is_drawn_as_its_entry_says():
    for name, op in OPS.items():
        assert set(op.drawn) == set(op.attrs), name
        for _arity, attrs in _VARIANTS[name]:
            assert set(dict(attrs)) <= set(op.attrs), name
            for k, v in dict(attrs).items():
                assert op.drawn[k] is None or v in op.drawn[k], (name, k, v)


def test_mflow_functions_default_as_the_table_does():
    for name, op in OPS.items():
        f = getattr(functions, name, None)
        if f is None:
            continue
        params = inspect.signature(f).parameters
        for k, default in op.attrs.items():
            if k in params and params[k].default is not inspect.Parameter.empty:
                assert params[k].default == default, (name, k)


def test_the_benchmark_draws_from_the_table():
    import bench_engine
    assert set(bench_engine.BENCH_OPS) <= set(OPS)
    for name, variants in bench_engine.ATTRS.items():
        assert len(variants) == np.prod([len(v) for v in OPS[name].drawn.values()]), name


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(OPS)), st.data())
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


def test_the_readme_names_the_tables_this_test_checks():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("Adding an operation"):][:600]
    for path in ("oracles/torch_backend.py", "oracles/jax_backend.py",
                 "oracles/numpy_backend.py"):
        assert path in section and (ROOT / path).exists(), path
