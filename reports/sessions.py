"""Engine sessions: the calls a user makes, in any order, as Hypothesis's stateful
testing draws them (a `RuleBasedStateMachine`): make leaves (fresh values, a copy of
another leaf's values, 1x1, exact zeros), build graphs on leaves and on values
computed earlier, read a value at any point, take the VJP of any value held (again,
with a new cotangent), forward mode, an optimiser's update (a new leaf x - eta g).
After every call that answers, its answer is checked against the references computed
fresh for the same values (oracles/world.py makes the session's values one program;
the checker and the tolerance model are the suite's own), whatever the history: so a
gradient buffer that is not zeroed, a cache keyed by identity or two equal leaves
merged into one are failures, shrunk to the shortest sequence of calls.

    from hypothesis.stateful import run_state_machine_as_test
    run_state_machine_as_test(machine(MflowEngine()))

An adapter in graph form holds its values across calls (leaf, constant, ops,
gradients, jvp: engine.py); one in functional form has no values to hold, and each
call runs its program afresh (its library's caches are what the session tests there).
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from mflow.oracles.engine import Result, capabilities, normalise, supported
from mflow.oracles.program import Program, Step, interpret, np_dtype
from mflow.oracles.world import World
from mflow.strategies import cases
from mflow.strategies.domains import from_seed

SIDES = st.integers(1, 4)
SEEDS = st.integers(0, 2 ** 16 - 1)
ETAS = st.sampled_from([0.5, 0.1, 0.01])  # an optimiser's step sizes
COMBINE = ("add", "sub", "mul")  # the domain of either operand: every real value


def _newest_first(nodes):
    """A node, drawn (and shrunk) from the newest back: deleting an earlier call while
    shrinking leaves the reference to a recent value where it was."""
    return st.sampled_from(list(nodes)[::-1])


class Live:
    """The engine as the checker sees it during a session: each mode's call is answered
    by the call the session is making (`answer`: {mode: function}) on the values it
    holds, instead of a fresh run; an answer the call does not give is None."""

    def __init__(self, normalised):
        self.normalised, self.name = normalised, normalised.name
        self.offers, self.answer = normalised.offers, {}

    def vjp(self, program, inputs, cotangent):
        return self.answer["vjp"](cotangent)

    def jvp(self, program, inputs, tangents):
        return self.answer["jvp"](tangents)


def machine(adapter, ops=None, max_steps=4):
    """The state machine class for one adapter (its operations, or `ops`), its
    checker made once (the references' compiled interpreters are kept between runs)."""
    from mflow.oracles.checker import Checker
    caps = capabilities(adapter)
    modes = ("vjp", "jvp") if normalise(adapter).offers["jvp"] else ("vjp",)
    checker = Checker(adapter, modes=modes)
    live = Live(checker.normalised)
    checker.normalised = live
    drawn_ops = tuple(supported(adapter, ops))
    dtypes = [d for d in ("float64", "float32") if d in caps.dtypes] or ["float64"]

    class Session(_Session):
        pass
    Session.adapter, Session.engine, Session.checker, Session.live = (
        adapter, normalise(adapter), checker, live)
    Session.ops, Session.dtypes, Session.max_steps = drawn_ops, dtypes, max_steps
    Session.caps = caps
    Session.__name__ = Session.__qualname__ = f"Session_{adapter.name}"
    return Session


class _Session(RuleBasedStateMachine):
    """The rules (see the module's docstring); `machine` sets the class attributes."""

    last_calls = ()  # the calls of the last run that ended (after a failure: the shrunk one)

    def __init__(self):
        super().__init__()
        self.world, self.held, self.grads = None, {}, {}
        self.walked = set()  # the nodes of every graph a VJP walked
        self.calls = []  # the sequence as plain data, for reports and replay

    def teardown(self):
        type(self).last_calls = tuple(self.calls)

    # --- making values -------------------------------------------------------------

    @initialize(dtype=st.data())
    def start(self, dtype):
        self.dtype = dtype.draw(st.sampled_from(self.dtypes), label="dtype")
        self.world = World(self.dtype)
        self.new_leaf(dtype)

    @rule(data=st.data())
    def new_leaf(self, data):
        """A leaf: fresh values, a copy of another leaf's, 1x1, or exact zeros."""
        how = data.draw(st.sampled_from(["fresh", "copy", "1x1", "zeros"]), label="leaf")
        leaves = [i for i in range(len(self.world)) if self.world.steps[i] is None]
        if how == "copy" and leaves:
            value = self.world.values[data.draw(_newest_first(leaves), label="of")]
        else:
            shape = (1, 1) if how == "1x1" else (data.draw(SIDES), data.draw(SIDES))
            value = np.zeros(shape) if how == "zeros" else from_seed(
                "real", shape, data.draw(SEEDS, label="seed"), (), False)
        value = np.asarray(value, np_dtype(self.dtype))
        node = self.world.leaf(value)
        self.calls.append(("leaf", node, how))
        self.held[node] = self._leaf(node, value)

    def _leaf(self, node, value):
        if self.engine.functional:
            return None
        return self._engine(node, lambda: self.adapter.leaf(np.array(value)))

    def _engine(self, node, call):
        """An engine call that makes `node` (a leaf, a graph), under the checker's guard:
        a crash or a hang there is a finding about the case of that node (of the newest
        value on a leaf, for a value of constants alone)."""
        node = next(i for i in [node, *range(len(self.world) - 1, -1, -1)]
                    if self.world.leaves[i])
        case, _ = self.world.case(node, np.ones(self.world.values[node].shape))
        return self.checker.guard(case, call)

    @rule(data=st.data())
    def build(self, data):
        """A graph of up to `max_steps` operations on values held (leaves or computed)
        and fresh leaves."""
        held = list(range(len(self.world)))
        chosen = data.draw(st.lists(_newest_first(held), max_size=2, unique=True),
                           label="on")
        given = [(self.world.values[i], self.world.steps[i] is not None) for i in chosen]
        case = data.draw(cases(ops=self.ops, max_steps=self.max_steps, max_inputs=2,
                               dtype=self.dtype, given=given, attrs=self.caps.attrs or None,
                               declared=tuple(self.caps.conventions)), label="graph")
        ids = self.world.extend(case.program, chosen, case.inputs)
        if not self.engine.functional:
            fresh, bound = iter(ids[len(chosen):]), iter(chosen)

            def leaf(x):
                k = next(bound, None)
                if k is not None:
                    return self.held[k]
                value = self.adapter.leaf(np.array(x))
                self.held[next(fresh)] = value
                return value
            self.calls.append(("build", case.program, chosen, ids))
            values = self._engine(ids[-1], lambda: interpret(
                case.program, self.adapter.ops, leaf, self.adapter.constant,
                [np.array(x) for x in case.inputs]))
            for k, v in zip(ids, values):
                self.held.setdefault(k, v)
        else:
            self.calls.append(("build", case.program, chosen, ids))

    @rule(data=st.data())
    def combine(self, data):
        """Two values held, of one shape (or one 1x1), into one: a + b, a - b or a * b, as
        a user adds a loss term (two equal leaves, or a value and itself, meet here)."""
        ops = [o for o in COMBINE if o in self.ops]
        if not ops:
            return
        a = data.draw(_newest_first(range(len(self.world))), label="a")
        shape = self.world.values[a].shape
        b = data.draw(_newest_first([i for i in range(len(self.world)) if
                                     self.world.values[i].shape in (shape, (1, 1))]),
                      label="b")
        op = data.draw(st.sampled_from(ops), label="op")
        program = Program((shape, self.world.values[b].shape), (Step(op, (0, 1)),),
                          self.dtype)
        node = self.world.extend(program, [a, b])[-1]
        self.calls.append(("build", program, [a, b], [a, b, node]))
        if not self.engine.functional:
            self.held[node] = self._engine(node, lambda: self.adapter.ops[op](
                self.held[a], self.held[b]))

    @precondition(lambda self: self.grads)
    @rule(data=st.data())
    def update(self, data):
        """An optimiser's step: a new leaf x - eta g from the last gradient taken."""
        leaf = data.draw(_newest_first(sorted(self.grads)), label="leaf")
        eta = data.draw(ETAS, label="eta")
        x = self.world.values[leaf].astype(np_dtype(self.dtype))
        value = (x - eta * self.grads[leaf].astype(x.dtype)).astype(x.dtype)
        node = self.world.leaf(value)
        self.calls.append(("update", node, leaf, eta))
        self.held[node] = self._leaf(node, value)

    # --- calls that answer: each checked ---------------------------------------------

    def _value(self, data, differentiate=True):
        """A value held that depends on a leaf (a constant alone has no gradient), and
        that the adapter's declared session allows (engine.py, `session`): without
        "second_gradient", none computed in a graph a VJP walked already; without
        "read_early", reads only in such graphs."""
        allowed = [i for i in range(len(self.world)) if self.world.leaves[i]]
        if differentiate and not self.caps.session["second_gradient"]:
            allowed = [i for i in allowed if not any(
                k in self.walked and self.world.steps[k] is not None
                for k in self.world.depends(i))]
        if not differentiate and not self.caps.session["read_early"]:
            allowed = [i for i in allowed if i in self.walked]
        if not allowed:
            return None
        return data.draw(_newest_first(allowed), label="value")

    def _check(self, node, cotangent, modes, answer):
        case, leaves = self.world.case(node, cotangent)
        self.live.answer = answer(case, leaves)
        verdict = self.checker.judge(case, modes=modes)
        if verdict.outcome is not None:
            raise verdict.outcome
        return case, leaves

    @rule(data=st.data())
    def read(self, data):
        """The value, read at this point of the session (a lazy engine realises it)."""
        node = self._value(data, differentiate=False)
        if node is None:
            return
        self.calls.append(("read", node))

        def answer(case, leaves):
            if self.engine.functional:
                return {"vjp": lambda c: self.engine.vjp(case.program, case.inputs, c)}
            nothing = [None] * len(leaves)
            return {"vjp": lambda c: Result(np.asarray(self.adapter.to_numpy(
                self.held[node])), nothing)}
        self._check(node, np.ones(self.world.values[node].shape), ("vjp",), answer)

    @rule(data=st.data())
    def vjp(self, data):
        """The VJP of a value held with a new cotangent (again and again, of any value)."""
        node = self._value(data)
        if node is None:
            return
        cotangent = from_seed("real", self.world.values[node].shape,
                              data.draw(SEEDS, label="cotangent"), (), False)
        self.calls.append(("vjp", node))
        got = {}

        def answer(case, leaves):
            if self.engine.functional:
                return {"vjp": lambda c: self.engine.vjp(case.program, case.inputs, c)}

            def call(c):
                grads = self.adapter.gradients(self.held[node], [self.held[k] for k in leaves],
                                               c)
                got.update(zip(leaves, grads))
                return Result(None, [self.engine._array(g) for g in grads])
            return {"vjp": call}
        self.walked |= self.world.depends(node)
        self._check(node, cotangent, ("vjp",), answer)
        self.grads = {k: np.asarray(self.engine._array(g), np.float64) for k, g in got.items()}

    @precondition(lambda self: self.engine.offers["jvp"])
    @rule(data=st.data())
    def jvp(self, data):
        """J t of a value held, for tangents the checker draws."""
        node = self._value(data)
        if node is None:
            return
        case, _ = self.world.case(node, np.ones(self.world.values[node].shape))
        if not set(case.program.ops()) <= self.caps.jvp_ops:
            return  # no forward mode of one of its operations: not a call to make
        self.calls.append(("jvp", node))

        def answer(case, leaves):
            nothing = Result(None, [None] * len(leaves))
            if self.engine.functional:
                return {"vjp": lambda c: nothing,
                        "jvp": lambda t: self.engine.jvp(case.program, case.inputs, t)}
            return {"vjp": lambda c: nothing, "jvp": lambda t: (None, self.engine._array(
                self.adapter.jvp(self.held[node], [self.held[k] for k in leaves], t)))}
        self._check(node, np.ones(self.world.values[node].shape), ("vjp", "jvp"), answer)
