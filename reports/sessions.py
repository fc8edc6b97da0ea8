"""Engine sessions: the calls a user makes, in any order, as Hypothesis's stateful
testing draws them (a `RuleBasedStateMachine`): make leaves (fresh values, a copy of
another leaf's values, 1x1, exact zeros), build graphs on leaves and on values
computed earlier, read a value at any point, take the VJP of any value held (again,
with a new cotangent), forward mode, H t, an optimiser's update (a new leaf x - eta g,
or in place where the adapter declares "assign"), and gradient buffers where it
declares "accumulate" (backward, again without zeroing, .grad read, zero_grad).
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
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from mflow.oracles.engine import capabilities, normalise, supported
from mflow.oracles.program import Program, Step, np_dtype
from mflow.strategies import cases
from mflow.strategies.domains import accepts, clear_of_ties, from_seed

from .sequence import Live, Sequence, session_modes

SIDES = st.integers(1, 4)
SEEDS = st.integers(0, 2 ** 16 - 1)
ETAS = st.sampled_from([0.5, 0.1, 0.01])  # an optimiser's step sizes
COMBINE = ("add", "sub", "mul")  # the domain of either operand: every real value


def inside_domains(program, inputs):
    """Does every step of `program` on these inputs get operands inside its domain,
    clear of its kinks and ties or exactly on one (as the strategies draw them)? A
    graph built again on an assigned leaf's new values can leave it: log of a negative,
    inv of a singular matrix (numpy raises), relu just beside 0."""
    from mflow.oracles.catalogue import CATALOGUE
    from mflow.oracles.numpy_backend import NUMPY_OPS
    from mflow.oracles.program import interpret
    try:
        with np.errstate(all="ignore"):
            values = interpret(program, NUMPY_OPS, lambda x: x, lambda a: a.astype(np.float64),
                               [np.asarray(x, np.float64) for x in inputs])
    except (ArithmeticError, ValueError, np.linalg.LinAlgError):
        return False
    for step in program.steps:
        if step.op not in CATALOGUE:  # a constant
            continue
        op, operands = CATALOGUE[step.op], [values[a] for a in step.args]
        kinks = op.kinks_at(op.complete(step.attrs))
        if not all(np.all(np.isfinite(x)) and accepts(d, x, kinks, exact=True) for d, x in
                   zip(op.domains(len(operands), step.attrs), operands)):
            return False
        if not clear_of_ties(op, operands, op.complete(step.attrs), exact=True):
            return False
    return bool(np.all(np.isfinite(values[-1])))


def session_settings(parent=None, **given):
    """Hypothesis's settings for runs of the machine (the fuzz item, the tests and the
    benchmarks): `parent`'s (default: the profile's) and `given`, with no explain
    phase (it replays a shrunk sequence ~1,000 times, minutes of checks, to mark which
    calls vary freely; the report's blame says which call disagreed) and one failure
    reported, the shortest: a session's failures of different kinds are mostly one bug
    met at different calls (equal leaves merged: a wrong value, tangent and gradient),
    and shrunk apart each stopped at its own kind's shortest, 6-8 calls where one of
    4 fails (benchmarks/results/state_bugs.md)."""
    parent = parent or settings.default
    return settings(parent, phases=[p for p in parent.phases if p is not Phase.explain],
                    report_multiple_bugs=False, **given)


def _newest_first(nodes):
    """A node, drawn (and shrunk) from the newest back: deleting an earlier call while
    shrinking leaves the reference to a recent value where it was."""
    return st.sampled_from(list(nodes)[::-1])


def machine(adapter, ops=None, max_steps=4, saving=None):
    """The state machine class for one adapter (its operations, or `ops`), its
    checker made once (the references' compiled interpreters are kept between runs).
    `saving` (reports.saving.SavingChecker): a failure, once shrunk, is saved as a
    session's report there (save_session)."""
    from mflow.oracles.checker import Checker
    caps = capabilities(adapter)
    checker = Checker(adapter, modes=session_modes(adapter))
    checker.normalised = Live(checker.normalised)
    dtypes = [d for d in ("float64", "float32") if d in caps.dtypes] or ["float64"]

    class Session(_Session):
        pass
    Session.checker, Session.caps, Session.dtypes = checker, caps, dtypes
    Session.ops, Session.max_steps = tuple(supported(adapter, ops)), max_steps
    Session.found = None if saving is None else _saver(saving)
    Session.fresh = staticmethod(_maker(adapter))
    Session.__name__ = Session.__qualname__ = f"Session_{adapter.name}"
    return Session


def _maker(adapter):
    """A new adapter of the same class for every run, where its class makes one without
    arguments (else the one given): a run's state is its own calls', so that Hypothesis
    replays and shrinks it, and a report's reproduce.py (a new adapter too) sees what
    the run saw. The library's own state (its caches) is the process's, as ever."""
    try:
        type(adapter)()
    except Exception:  # noqa: BLE001 - an adapter that needs its arguments: shared
        return lambda: adapter
    return type(adapter)


def _saver(saving):
    def found(failure, sequence):
        from .saving import final_example
        if final_example():  # the shrunk sequence, not every step of the shrinking
            save_session(saving, failure, sequence)
    return staticmethod(found)


def save_session(saving, failure, sequence):
    """A session's failure kept: if the failing value's graph fails alone too, built
    afresh, it is an ordinary bug, saved (reduced) as a graph's report; else a
    session's report with its calls (regressions.save_calls), whose reproduce.py
    replays them, tried once in a fresh process: a failure that does not come back
    there depended on the process's state before these calls, and the report says so."""
    from mflow.oracles.verdict import accuses_engine
    alone = saving.checker.judge(failure.verdict.case, failure.verdict.modes).outcome
    if alone is not None and accuses_engine(alone):
        saved = saving._save(alone)
        failure.add_note(f"its graph fails alone too, built afresh: an ordinary bug, saved "
                         f"as the regression report {saved}")
        return
    saved = saving._save(failure, session=(sequence.dtype, sequence.calls))
    if saved is not None:
        failure.add_note(f"saved as the session's regression report {saved}; "
                         f"{_in_a_fresh_process(saved)}")


def _in_a_fresh_process(folder, timeout=600):
    """What the report's reproduce.py says in a new process (importing what this one
    can: its sys.path): whether the failure needs no more than the saved calls."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        run = subprocess.run([sys.executable, "reproduce.py"], cwd=folder, timeout=timeout,
                             capture_output=True, text=True, env=env)
    except subprocess.TimeoutExpired:
        return f"its reproduce.py ran out of {timeout} s in a fresh process"
    if run.returncode == 1 and run.stdout.rstrip().endswith("MISMATCH"):
        return "it fails again in a fresh process, from its calls alone"
    if run.returncode == 0:
        return ("it does NOT fail in a fresh process: it depends on the state this process "
                "had before these calls (earlier sessions), not on chance")
    return (f"its reproduce.py could not replay it in a fresh process (exit status "
            f"{run.returncode}): {(run.stderr or run.stdout).strip()[-500:]}")


class _Session(RuleBasedStateMachine):
    """The rules (see the module's docstring): each draws one call's arguments and makes
    it on the session (reports/sequence.py); `machine` sets the class attributes."""

    last_calls = ()  # the calls of the last run that ended (after a failure: the shrunk one)

    def __init__(self):
        super().__init__()
        self.session = None

    def teardown(self):
        type(self).last_calls = tuple(self.session.calls) if self.session else ()

    @property
    def world(self):
        return self.session.world

    # --- making values -------------------------------------------------------------

    @initialize(dtype=st.data())
    def start(self, dtype):
        drawn = dtype.draw(st.sampled_from(self.dtypes), label="dtype")
        adapter = self.fresh()
        self.checker.engine, self.checker.normalised = adapter, Live(normalise(adapter))
        self.session = Sequence(self.checker, drawn, self.found, fewest=True)
        self.new_leaf(dtype)

    @rule(data=st.data())
    def new_leaf(self, data):
        """A leaf: fresh values, a copy of another leaf's, 1x1, or exact zeros."""
        how = data.draw(st.sampled_from(["fresh", "copy", "1x1", "zeros"]), label="leaf")
        leaves = [i for i in self.session.usable() if self.world.steps[i] is None]
        if how == "copy" and leaves:
            value = self.world.values[data.draw(_newest_first(leaves), label="of")]
        else:
            shape = (1, 1) if how == "1x1" else (data.draw(SIDES), data.draw(SIDES))
            value = np.zeros(shape) if how == "zeros" else from_seed(
                "real", shape, data.draw(SEEDS, label="seed"), (), False)
        self.session.leaf(value, how)

    @rule(data=st.data())
    def build(self, data):
        """A graph of up to `max_steps` operations on values held (leaves or computed)
        and fresh leaves."""
        chosen = data.draw(st.lists(_newest_first(self.session.usable()), max_size=2,
                                    unique=True), label="on")
        given = [(self.world.values[i], self.world.steps[i] is not None) for i in chosen]
        case = data.draw(cases(ops=self.ops, max_steps=self.max_steps, max_inputs=2,
                               dtype=self.session.dtype, given=given,
                               attrs=self.caps.attrs or None,
                               declared=tuple(self.caps.conventions)), label="graph")
        self.session.build(case.program, chosen, case.inputs[len(chosen):])

    @rule(data=st.data())
    def combine(self, data):
        """Two values held, of one shape (or one 1x1), into one: a + b, a - b or a * b, as
        a user adds a loss term (two equal leaves, or a value and itself, meet here)."""
        ops = [o for o in COMBINE if o in self.ops]
        if not ops:
            return
        usable = self.session.usable()
        a = data.draw(_newest_first(usable), label="a")
        shape = self.world.values[a].shape
        b = data.draw(_newest_first([i for i in usable if
                                     self.world.values[i].shape in (shape, (1, 1))]),
                      label="b")
        op = data.draw(st.sampled_from(ops), label="op")
        program = Program((shape, self.world.values[b].shape), (Step(op, (0, 1)),),
                          self.session.dtype)
        self.session.build(program, [a, b])

    def _stepped(self, data):
        """(leaf, x - eta g) for a leaf of the last gradient taken, or None."""
        leaves = [k for k in sorted(self.session.grads) if k not in self.session.stale]
        if not leaves:
            return None
        leaf = data.draw(_newest_first(leaves), label="leaf")
        eta = data.draw(ETAS, label="eta")
        x = self.world.values[leaf].astype(np_dtype(self.session.dtype))
        return leaf, eta, (x - eta * self.session.grads[leaf].astype(x.dtype)).astype(x.dtype)

    @precondition(lambda self: any(c["call"] == "build" for c in self.session.calls))
    @rule(data=st.data())
    def again(self, data):
        """A graph built before, built again on the current values of its operands (a
        training loop's next step: a leaf assigned since is the same object with new
        values), its new leaves the same values again; then its value read, as the
        loop prints its loss, in the same call (where the adapter allows reading
        early))."""
        builds = [c for c in self.session.calls if c["call"] == "build"]
        call = data.draw(_newest_first(builds), label="again")
        on = [self.session.current(i) for i in call["on"]]
        if any(i in self.session.stale for i in on) or not inside_domains(
                call["program"], [self.world.values[i] for i in on] + list(call["inputs"])):
            return
        self.session.build(call["program"], on, call["inputs"],
                           read=self.caps.session["read_early"])

    @precondition(lambda self: self.session.grads)
    @rule(data=st.data())
    def update(self, data):
        """An optimiser's step: a new leaf x - eta g from the last gradient taken."""
        stepped = self._stepped(data)
        if stepped is not None:
            leaf, eta, value = stepped
            self.session.leaf(value, "update", of=leaf, eta=eta)

    @precondition(lambda self: self.caps.session["assign"] and
                  not self.session.engine.functional)
    @rule(data=st.data())
    def assign(self, data):
        """An optimiser's step in place (x -= eta g, the same leaf object), or new values
        for a leaf (the next batch): values computed on the old ones are stale after it."""
        stepped = self._stepped(data) if data.draw(st.booleans(), label="step") else None
        if stepped is None:
            leaves = [i for i in self.session.usable() if self.world.steps[i] is None]
            leaf = data.draw(_newest_first(leaves), label="leaf")
            # (seeds of their own: shrunk to 0, a leaf's and its new values' seeds made
            # equal values, an assign that changed nothing, and kept a call the bug
            # does not need)
            value = from_seed("real", self.world.values[leaf].shape,
                              2 ** 16 + data.draw(SEEDS, label="seed"), (), False)
        else:
            leaf, _, value = stepped
        if not np.array_equal(value, self.world.values[leaf]):  # (else nothing changes)
            self.session.assign(leaf, value)

    # --- calls that answer: each checked ---------------------------------------------

    def _value(self, data, differentiate=True):
        """A value held that depends on a leaf (a constant alone has no gradient), and
        that the adapter's declared session allows (engine.py, `session`): without
        "second_gradient", none computed on a value made before a VJP walked one of its
        leaves (MyGrad's backward clears the graph of every value on the tensors it
        walked, made before; the leaves stay usable: a session campaign's false
        alarms); without "read_early", reads only in graphs a VJP walked."""
        allowed = [i for i in self.session.usable() if self.world.leaves[i]]
        walked = self.session.walked

        def cleared(j):
            return self.world.steps[j] is not None and any(
                k in walked and j < walked[k] for k in self.world.leaves[j])
        if differentiate and not self.caps.session["second_gradient"]:
            allowed = [i for i in allowed if not any(map(cleared, self.world.depends(i)))]
        if not differentiate and not self.caps.session["read_early"]:
            allowed = [i for i in allowed if i in walked]
        if not allowed:
            return None
        return data.draw(_newest_first(allowed), label="value")

    @rule(data=st.data())
    def read(self, data):
        """The value, read at this point of the session (a lazy engine realises it)."""
        node = self._value(data, differentiate=False)
        if node is not None:
            self.session.read(node)

    @rule(data=st.data())
    def vjp(self, data):
        """The VJP of a value held with a new cotangent (again and again, of any value)."""
        node = self._value(data)
        if node is not None:
            self.session.vjp(node, from_seed("real", self.world.values[node].shape,
                                             data.draw(SEEDS, label="cotangent"), (), False))

    @precondition(lambda self: self.session.engine.offers["jvp"])
    @rule(data=st.data())
    def jvp(self, data):
        """J t of a value held, for tangents the checker draws."""
        node = self._value(data)
        if node is None:
            return
        ops = set(self.world.case(node, np.ones(self.world.values[node].shape))[0].program.ops())
        if ops <= self.caps.jvp_ops:  # else no forward mode of one of its operations
            self.session.jvp(node)

    @precondition(lambda self: self.session.engine.offers["hvp"])
    @rule(data=st.data())
    def hvp(self, data):
        """H t of a value held's leaves, for a new cotangent and tangents the checker
        draws."""
        node = self._value(data)
        if node is None:
            return
        ops = set(self.world.case(node, np.ones(self.world.values[node].shape))[0].program.ops())
        if ops <= self.caps.hvp_ops:  # else no second order of one of its operations
            self.session.hvp(node, from_seed("real", self.world.values[node].shape,
                                             data.draw(SEEDS, label="cotangent"), (), False))

    # --- gradient buffers, where the adapter declares "accumulate" --------------------

    @precondition(lambda self: self.caps.session["accumulate"])
    @rule(data=st.data())
    def backward(self, data):
        """output.backward(cotangent): the VJP added into its leaves' buffers (a second
        one without zeroing adds again, as a loss of two terms does)."""
        node = self._value(data)
        if node is not None:
            self.session.backward(node, from_seed(
                "real", self.world.values[node].shape, data.draw(SEEDS, label="cotangent"),
                (), False))

    def _leaf(self, data):
        leaves = [i for i in self.session.usable() if self.world.steps[i] is None]
        return data.draw(_newest_first(leaves), label="leaf")

    @precondition(lambda self: self.caps.session["accumulate"])
    @rule(data=st.data())
    def grad(self, data):
        """A leaf's buffer read (.grad): the sum of its VJPs since it was last zeroed."""
        self.session.grad(self._leaf(data))

    @precondition(lambda self: self.caps.session["accumulate"])
    @rule(data=st.data())
    def zero_grad(self, data):
        """A leaf's buffer emptied (optimiser.zero_grad())."""
        self.session.zero_grad(self._leaf(data))
