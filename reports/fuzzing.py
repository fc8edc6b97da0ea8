"""The fuzz tests the plugin ships (`pytest --mflow-fuzz`): random graphs on the
engine under test, every answer cross-checked against torch, JAX and finite
differences (mflow.oracles.checker). Fixtures and parameters: plugin.py."""

import functools

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from mflow.oracles.catalogue import CATALOGUE, version
from mflow.oracles.engine import capabilities
from mflow.oracles.program import HALF
from mflow.strategies import cases as all_cases

UNARY = ["neg", "relu", "exp", "tanh", "sigmoid", "sin", "cos", "log", "pow", "transpose",
         "sum", "mean", "softmax", "log_softmax", "getitem", "inv", "det", "trace"]
BINARY = ["add", "sub", "mul", "div", "matmul", "concat", "conv2d"]


# The items, longest first (benchmarks/results/campaign_profile.md: at 300 examples an
# item of large sides takes 8-20 s, the rare large cases 16 s, an operation's own items
# 1-7 s). The plugin deals them out in this order; pytest-xdist steals from the end of a
# worker's queue, so the long ones run early and the last minutes are short items on
# both workers, not one long item alone.
LONGEST_FIRST = ("test_rare_large_cases", "test_operation_at_large_sides",
                 "test_engine_sessions", "test_random_graphs", "test_deep_chains",
                 "test_fan_out_heavy_graphs", "test_half_graphs", "test_float32_graphs",
                 "test_small_graphs")


def only(ops, engine_ops):
    return [o for o in ops if o in engine_ops] or engine_ops


@pytest.fixture(scope="session")
def cases(mflow_engine):
    """strategies.cases as the engine declared it takes them: its attribute values,
    its conventions at kinks (not drawn exactly there), and its dtypes (a dtype it
    lacks: the graphs are drawn in its first one, and the tests that exist for float32
    are skipped, saying why)."""
    caps = capabilities(mflow_engine)

    def drawn(dtype="float64", **kwargs):
        if dtype == "half":  # float16, bfloat16 or either: what the engine declares
            halves = [d for d in HALF if d in caps.dtypes]
            if not halves:
                pytest.skip(f"engine {mflow_engine.name!r} declares dtypes {caps.dtypes}: no "
                            "half precision")
            if not any(CATALOGUE[o].half for o in kwargs.get("ops") or CATALOGUE):
                pytest.skip(f"{', '.join(kwargs['ops'])}: linear algebra, no half precision")
            dtype = halves[0] if len(halves) == 1 else "half"
        elif dtype not in caps.dtypes:
            if dtype == "float32":
                pytest.skip(f"engine {mflow_engine.name!r} declares dtypes {caps.dtypes}: "
                            "no float32")
            if dtype == "float64" or len(caps.dtypes) == 1:
                dtype = caps.dtypes[0]
        key = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items())
        return strategy(version(), dtype, key)

    @functools.cache  # built once per item, not per example (7 % of Hypothesis's share)
    def strategy(at, dtype, kwargs):
        return all_cases(dtype=dtype, attrs=caps.attrs or None,
                         declared=tuple(caps.conventions), **dict(kwargs))
    return drawn


@pytest.fixture
def search(request, mflow_checker):
    """search(strategy): the item's budget of graphs of `strategy`, checked, a failure
    shrunk (search.py: most drawn without Hypothesis, every failure shrunk by it)."""
    from .search import search
    name = f"{request.node.module.__name__}::{request.node.name}"  # not the checkout's path
    return lambda strategy: search(mflow_checker, strategy, name)


def test_operation(search, cases, mflow_op):
    """Each operation in small graphs of its own: the first step is always `op`."""
    search(cases(ops=[mflow_op], max_steps=3))


def test_operation_in_float32(search, cases, mflow_op):
    """Each operation in float32 too: a float32 bug (tanh computed in float16) showed in
    6.5 % of mixed graphs only; here every operation gets its own float32 item."""
    search(cases(ops=[mflow_op], max_steps=3, dtype="float32"))


def test_operation_in_half(search, cases, mflow_op):
    """Each operation in float16 and bfloat16 (those the engine declares; linear algebra
    has none): against the float64 references by the half tolerance, and against
    torch's own run in that dtype (oracles/tolerance.py, "Half precision")."""
    search(cases(ops=[mflow_op], max_steps=3, dtype="half"))


def test_random_graphs(search, cases, mflow_engine_ops, mflow_shard):
    """Graphs of up to 10 operations over everything the engine supports; split
    into shards so that pytest -n auto spreads the work over the cores."""
    search(cases(ops=mflow_engine_ops, max_steps=10))


def test_small_graphs(search, cases, mflow_engine_ops):
    search(cases(ops=mflow_engine_ops, max_steps=3, max_side=3))


def test_fan_out_heavy_graphs(search, cases, mflow_engine_ops):
    """One input and binary operations: every operand is an earlier node, used again."""
    ops = only(BINARY + ["neg", "tanh", "sum"], mflow_engine_ops)
    search(cases(ops=ops, max_inputs=1, min_steps=4, max_steps=12, constants=False))


def test_deep_chains(search, cases, mflow_engine_ops):
    search(cases(ops=only(UNARY, mflow_engine_ops), max_inputs=1, min_steps=12,
                 max_steps=24))


def test_float32_graphs(search, cases, mflow_engine_ops):
    search(cases(ops=mflow_engine_ops, max_steps=8, dtype="float32"))


def test_half_graphs(search, cases, mflow_engine_ops):
    search(cases(ops=mflow_engine_ops, max_steps=8, dtype="half"))


def test_engine_sessions(mflow_engine, mflow_engine_ops, mflow_checker):
    """Calls in any order on values the engine holds (reports/sessions.py: leaves,
    graphs on earlier values, reads, VJPs again, forward mode, updates), each answer
    checked; a failure is the shortest sequence of calls, saved as a session's report
    (calls.json) that the gate replays call by call."""
    from hypothesis.stateful import run_state_machine_as_test

    from .sessions import machine, session_settings
    runs = max(10, settings.default.max_examples // 5)  # a run is about a dozen checks
    run_state_machine_as_test(machine(mflow_engine, mflow_engine_ops, saving=mflow_checker),
                              settings=session_settings(stateful_step_count=12,
                                                        max_examples=runs))


# --- rare large cases: where a small-graph fuzzer is blind ------------------------
# Sides never exceeded 8 and chains 24 steps, so a matmul that dropped the tail of an
# inner dimension above 8 passed 9,900 graphs, and a backward that recurses (depth
# ~1,000) or re-walks shared sub-graphs per path (2^depth) was never reached. A few
# cases per run go there; the engine's time limit (checker.TIME_LIMIT) makes an
# exponential backward a finding.
CHAIN = ("tanh", "sin", "neg", "add", "mul")


def _chain(seed, length, ops=CHAIN):
    """x0 (1x3), then `length` steps drawn from `ops`, each on the last value: unary,
    or with x0."""
    from mflow.oracles.program import Program, Step
    rng = np.random.default_rng(seed)
    steps = []
    for k in range(length):
        op = ops[rng.integers(len(ops))]
        last = k  # value k: x0 is value 0, step j is value j + 1
        steps.append(Step(op, (last, 0) if op in ("add", "mul") else (last,)))
    return Program(((1, 3),), tuple(steps))


def _doublings(n):
    """x0, then n times y = y + y: one input reached by 2^n paths."""
    from mflow.oracles.program import Program, Step
    return Program(((2, 2),), tuple(Step("add", (k, k)) for k in range(n)))


def rare_kinds(engine_ops):
    """The rare large cases the engine's operations can build."""
    return ((["chain"] if set(CHAIN) & set(engine_ops) else [])
            + (["fan-out"] if "add" in engine_ops else []))


@st.composite
def rare_large_cases(draw, engine_ops):
    from mflow.oracles.program import Case
    kind = draw(st.sampled_from(rare_kinds(engine_ops)))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "chain":
        program = _chain(seed, 2000, tuple(o for o in CHAIN if o in engine_ops))
        x = rng.uniform(0.2, 0.6, (1, 3))  # |x| < 1: the products stay bounded
    else:
        program = _doublings(20)
        x = rng.uniform(-1, 1, (2, 2))
    return Case(program, (x,), rng.uniform(-1, 1, program.output_shape))


@settings(max_examples=max(3, settings.default.max_examples // 20))
@given(data=st.data())
def test_operation_at_large_sides(mflow_checker, cases, mflow_op, data):
    """Each operation with sides up to 64 (a matmul that dropped the inner dimension
    beyond 8 passed every graph of sides up to 8)."""
    side = data.draw(st.integers(9, 64), label="side")
    mflow_checker.check(data.draw(cases(ops=[mflow_op], max_steps=2, max_side=side),
                                  label="case"))


# No shrinking: a case is (kind, seed), and no seed is smaller than another (the size
# is the point); each try of a hang costs the time limit twice
@settings(max_examples=max(3, settings.default.max_examples // 20),
          phases=[p for p in settings.default.phases if p is not Phase.shrink])
@given(data=st.data())
def test_rare_large_cases(mflow_checker, mflow_engine_ops, data):
    """Chains of 2,000 steps, 20 fan-out doublings."""
    if not rare_kinds(mflow_engine_ops):
        pytest.skip(f"the engine has none of {', '.join(CHAIN)}: no long chain or fan-out "
                    "can be built from its operations")
    mflow_checker.check(data.draw(rare_large_cases(mflow_engine_ops), label="case"))
