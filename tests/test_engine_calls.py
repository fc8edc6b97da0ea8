"""Every call the suite makes to an engine (the VJP, forward mode, second order; both
forms of the adapter protocol), driven by Hypothesis with adapters that misbehave in
one call: they change what they are handed, keep and later change what they returned,
return the wrong number, type, shape or dtype, or raise. Whatever they do, the check
ends with a verdict (never an error of the suite), the case it checked is the case it
was given, and a finding is saved, loads and replays as the same finding."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mflow.oracles.checker import Checker
from mflow.oracles.engine import MflowEngine, normalise
from mflow.oracles.program import Case, Program, Step
from mflow.oracles.verdict import EngineBug
from mflow.reports import regressions

import mflow

CASES = [
    Case(Program(((2, 2), (2, 2)), (Step("mul", (0, 1)), Step("tanh", (2,)))),
         (np.array([[0.5, -0.3], [0.2, 0.9]]), np.array([[1.1, 0.4], [-0.7, 0.6]])),
         np.array([[1.0, -0.5], [0.25, 2.0]])),
    Case(Program(((1, 3),), (Step("sin", (0,)), Step("sum", (1,), {"axis": None})), "float32"),
         (np.array([[0.3, -1.2, 0.7]], np.float32),), np.array([[1.5]], np.float32)),
]

# what the adapter does wrong, in the call it misbehaves in
MISBEHAVIOURS = {
    "changes an input": lambda arrays, answer: _zero(arrays["inputs"][0]) or answer,
    "changes the cotangent": lambda arrays, answer: _zero(arrays.get("cotangent")) or answer,
    "changes a tangent": lambda arrays, answer: _zero((arrays.get("tangents") or [None])[0])
    or answer,
    "returns what it was handed": lambda arrays, answer: _handed(arrays, answer),
    "returns one array too few": lambda arrays, answer: _fewer(answer),
    "returns one array too many": lambda arrays, answer: _more(answer),
    "returns None": lambda arrays, answer: None,
    "returns text": lambda arrays, answer: "gradient",
    "returns the wrong shape": lambda arrays, answer: _map(answer, lambda a: np.hstack([a, a])),
    "returns the wrong dtype": lambda arrays, answer: _map(answer, lambda a: a.astype(np.int64)),
    "returns nested lists": lambda arrays, answer: _map(answer, lambda a: a.tolist()),
    "raises": lambda arrays, answer: 1 / 0,
    "keeps its answer and changes it later": None,  # see Adapter.kept
    "behaves": lambda arrays, answer: answer,
}


def _zero(a):
    if isinstance(a, np.ndarray):
        a[...] = 0


def _handed(arrays, answer):
    given = arrays.get("cotangent") if "cotangent" in arrays else arrays["inputs"][0]
    if isinstance(answer, list):
        return [given for _ in answer]
    if isinstance(answer, tuple):
        return (answer[0], given)
    return given


def _fewer(answer):
    if isinstance(answer, list):
        return answer[:-1]
    if isinstance(answer, tuple):
        return answer[:1]
    return []


def _more(answer):
    if isinstance(answer, list):
        return answer + answer[:1]
    if isinstance(answer, tuple):
        return (*answer, answer[-1])
    return [answer, answer]


def _map(answer, f):
    if isinstance(answer, list):
        return [f(np.asarray(a)) for a in answer]
    if isinstance(answer, tuple):
        return (answer[0], f(np.asarray(answer[1])))
    return f(np.asarray(answer))


class Adapter:
    """mflow in either form of the protocol, misbehaving (`how`) in one call (`where`)."""

    def __init__(self, form, where, how):
        self.name, self.form, self.where, self.how = "misbehaving", form, where, how
        self.base = MflowEngine()
        self.ops, self.to_numpy = self.base.ops, self._to_numpy
        self.kept = []
        if form == "functional":
            self.vjp, self.jvp, self.hvp = self._vjp_f, self._jvp_f, self._hvp_f
        else:
            self.handed = []  # the arrays the suite hands it for its leaves

            def leaf(array):
                self.handed.append(array)
                return self.base.leaf(array)
            self.leaf, self.constant = leaf, self.base.constant
            self.gradients, self.jvp, self.hvp = self._gradients, self._jvp_g, self._hvp_g

    def _to_numpy(self, value):
        return value.value if isinstance(value, mflow.Node) else value

    def _answer(self, call, arrays, answer):
        for old in self.kept:  # an answer kept from an earlier call, changed now
            old[...] = 7.0
        if call != self.where:
            return answer
        if self.how == "keeps its answer and changes it later":
            self.kept += [a for a in (answer if isinstance(answer, list) else [answer])
                          if isinstance(a, np.ndarray)]
            return answer
        return MISBEHAVIOURS[self.how](arrays, answer)

    # graph form
    def _gradients(self, output, leaves, cotangent):
        answer = self.base.gradients(output, leaves, cotangent)
        return self._answer("vjp", {"inputs": self.handed[-len(leaves):],
                                    "cotangent": cotangent}, answer)

    def _jvp_g(self, output, leaves, tangents):
        answer = self.base.jvp(output, leaves, tangents)
        return self._answer("jvp", {"inputs": self.handed[-len(leaves):],
                                    "tangents": tangents}, answer)

    def _hvp_g(self, output, leaves, cotangent, tangents):
        answer = self.base.hvp(output, leaves, cotangent, tangents)
        return self._answer("hvp", {"inputs": self.handed[-len(leaves):], "cotangent": cotangent,
                                    "tangents": tangents}, answer)

    # functional form: the same mflow, through fn
    def _built(self, fn, inputs):
        leaves = [mflow.Node(x, requires_grad=True) for x in inputs]
        return leaves, fn(*leaves)

    def _vjp_f(self, fn, inputs, cotangent):
        leaves, out = self._built(fn, inputs)
        grads = self.base.gradients(out, leaves, cotangent)
        answer = self._answer("vjp", {"inputs": inputs, "cotangent": cotangent}, grads)
        return out.value, answer

    def _jvp_f(self, fn, inputs, tangents):
        leaves, out = self._built(fn, inputs)
        answer = self._answer("jvp", {"inputs": inputs, "tangents": tangents},
                              (out.value, self.base.jvp(out, leaves, tangents)))
        return answer

    def _hvp_f(self, fn, inputs, cotangent, tangents):
        leaves, out = self._built(fn, inputs)
        return self._answer("hvp", {"inputs": inputs, "cotangent": cotangent,
                                    "tangents": tangents},
                            self.base.hvp(out, leaves, cotangent, tangents))


_checkers = {}


def checker(adapter):
    """One Checker per form, its engine swapped per example: a new Checker traces the
    compiled JAX interpreter again (~0.3 s per mode)."""
    if adapter.form not in _checkers:
        _checkers[adapter.form] = Checker(adapter)
    checking = _checkers[adapter.form]
    checking.engine, checking.normalised = adapter, normalise(adapter)
    return checking


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck),
          database=None)
@given(form=st.sampled_from(["graph", "functional"]), where=st.sampled_from(["vjp", "jvp",
                                                                              "hvp"]),
       how=st.sampled_from(sorted(MISBEHAVIOURS)), k=st.integers(0, len(CASES) - 1))
def test_whatever_an_engine_does_the_check_ends_with_a_kept_replayable_verdict(
        tmp_path_factory, form, where, how, k):
    case = CASES[k]
    before = [a.copy() for a in (*case.inputs, case.cotangent)]
    verdict = checker(Adapter(form, where, how)).judge(case)  # never raises
    assert all(np.array_equal(a, b) for a, b in zip((*case.inputs, case.cotangent), before))
    assert verdict.case is case
    outcome = verdict.outcome
    if how == "behaves":
        assert outcome is None, verdict.describe()
        return
    if outcome is None:  # a misbehaviour that did not change an answer it was asked for
        # (a list of numbers in the right dtype is as good an answer as an array)
        assert how in ("keeps its answer and changes it later", "returns nested lists") or (
            how == "changes a tangent" and where == "vjp") or (
            how == "changes the cotangent" and where == "jvp"), (how, where, verdict.describe())
        return
    assert isinstance(outcome, EngineBug), verdict.describe()
    folder = regressions.save(outcome, directory=tmp_path_factory.mktemp("saved"),
                              extra={"engine_spec": "mflow", "engine_version": ""})
    saved, report = regressions.load(folder)
    assert report["failure"] == type(outcome).__name__
    assert all(np.array_equal(a, b) for a, b in zip((*saved.inputs, saved.cotangent), before))
    again = checker(Adapter(form, where, how)).judge(saved)
    assert type(again.outcome) is type(outcome), again.describe()
