"""Programs are plain data: exact JSON round trips, Python that rebuilds the same
graph, and clear errors for programs that cannot run."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis.errors import InvalidArgument
from mflow.oracles.engine import MflowEngine, run_engine
from mflow.oracles.program import Program, ProgramError, Step
from mflow.strategies import cases, programs


@given(programs())
def test_json_round_trip_is_exact(program):
    again = Program.from_json(program.to_json())
    assert again == program and again.to_json() == program.to_json()


@given(cases(max_steps=6))
def test_printed_python_builds_the_same_graph(case):
    namespace = {"inputs": [np.asarray(x) for x in case.inputs]}
    exec(case.program.to_python(), namespace)  # our own generated code, not user input
    expected = run_engine(MflowEngine(), case.program, case.inputs, case.cotangent).forward
    np.testing.assert_array_equal(namespace["output"].value, expected)


BAD = [
    (lambda: Program(((2, 3),), (Step("nope", (0,)),)), r"step 0 \(value v1, nope\): unknown"),
    (lambda: Program(((2, 3),), (Step("neg", (1,)),)),
     r"step 0 \(value v1, neg\): argument 1 does not refer to an earlier value \(0 to 0\)"),
    (lambda: Program(((2, 3),), (Step("matmul", (0, 0)),)),
     r"step 0 \(value v1, matmul\): cannot multiply \(2, 3\) by \(2, 3\)"),
    (lambda: Program(((2, 3),), (Step("sum", (0,), {"axes": 1}),)),
     r"unknown attributes \['axes'\]; sum takes \['axis'\]"),
    (lambda: Program(((2, 3),), (Step("add", (0,)),)), r"takes 2 argument\(s\), got 1"),
    (lambda: Program((), ()), r"at least one input"),
    (lambda: Program(((2, 3),), (), dtype="int8"), r"dtype must be one of"),
    (lambda: Program.from_json('{"inputs": [[2, 2]]}'), r"'steps' must be a list"),
    (lambda: Program.from_json("{"), r"not JSON"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m for _, m in BAD])
def test_invalid_programs_name_the_step(make, message):
    with pytest.raises(ProgramError, match=message):
        make()


@pytest.mark.parametrize("kwargs,message", [
    ({"min_steps": 5, "max_steps": 3}, r"min_steps=5 is larger than max_steps=3"),
    ({"max_side": 0}, r"max_side=0 must be an int >= 1"),
    ({"ops": ["matmul", "nope"]}, r"unknown \['nope'\]"),
    ({"ops": "matmul"}, r"must be a list of operation names"),
    ({"ops": []}, r"empty"),
    ({"dtype": "int8"}, r"dtype='int8'"),
    ({"max_inputs": 0}, r"max_inputs=0"),
    ({"attrs": {"sum": {"axis": [2]}}}, r"attrs\['sum'\]"),
    ({"attrs": {"nope": {}}}, r"attrs\['nope'\]"),
    ({"ops": ["sum"], "attrs": {"sum": {"axis": []}}}, r"leaves no variant"),
])
def test_invalid_strategy_arguments(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        cases(**kwargs)


@given(cases(ops=["relu", "sub", "tanh", "sum"], attrs={"sum": {"axis": [0]}}))
def test_drawn_graphs_use_only_what_the_engine_declares(case):
    """An adapter lists its operations and attribute values: nothing else is drawn, not
    even the join steps (out + sum(v)), which use its own operations or none."""
    for step in case.program.steps:
        assert step.op in ("const", "relu", "sub", "tanh", "sum"), step
        assert step.op != "sum" or step.attrs["axis"] == 0, step


@given(cases(ops=["tanh", "mul", "mean", "exp"]))
def test_joins_use_the_engines_own_reduction_and_combination(case):
    assert {s.op for s in case.program.steps} <= {"const", "tanh", "mul", "mean", "exp"}


def _kinked_operands(case, op):
    from mflow.oracles.finite_differences import forward_values
    values = forward_values(case.program, case.inputs)
    n_in = len(case.program.inputs)
    leaf = [True] * n_in + [s.op == "const" for s in case.program.steps]
    return [(values[s.args[0]], leaf[s.args[0]]) for s in case.program.steps if s.op == op]


@given(cases(ops=["sub", "relu", "mul", "abs"], max_inputs=2, points=False, dtype="mixed"))
def test_without_points_operands_of_a_kink_stay_off_it(case):
    """relu(x1 - x0) with x1 drawn equal to x0 was exactly relu(0): with the interesting
    points off, computed operands are kept KINK_MARGIN away, as fresh inputs are."""
    from mflow.strategies.domains import KINK_MARGIN
    for op in ("relu", "abs"):
        for x, _ in _kinked_operands(case, op):
            assert np.min(np.abs(x)) >= KINK_MARGIN, case


@given(cases(ops=["sub", "relu", "mul", "abs"], max_inputs=2, dtype="mixed"))
def test_operands_of_a_kink_are_on_it_or_off_by_the_margin(case):
    """With the points on: never within the margin; exactly on relu's kink (torch and JAX
    agree there), as an input or constant in float32; never on abs's (they differ)."""
    from mflow.strategies.domains import KINK_MARGIN
    for op in ("relu", "abs"):
        for x, leaf in _kinked_operands(case, op):
            d = np.abs(x)
            on = d == 0
            assert np.all(on | (d >= KINK_MARGIN)), case
            assert not on.any() or (op == "relu" and (leaf or case.program.dtype == "float64")), \
                case
