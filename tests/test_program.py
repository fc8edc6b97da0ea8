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
    (lambda: Program(((2, 3),), (), dtype="float16"), r"dtype must be one of"),
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
])
def test_invalid_strategy_arguments(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        cases(**kwargs)
