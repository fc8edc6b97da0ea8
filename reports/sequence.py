"""An engine session's calls as data, made on an engine one by one, each call that
answers checked: what the state machine (sessions.py) draws, what a session's report
saves (calls.json, regressions.save_calls), and what the gate, `list` and
reproduce.py replay. One path for all of them: the machine's rules only draw.

The calls (node ids count the session's values in creation order, as World does):

    leaf(value)                a new leaf (fresh values, a copy, 1x1, zeros, an update)
    build(program, on, inputs) a graph on held values `on` and new leaves `inputs`
                               (read: its value read in the same call, a loop's step)
    read(node)                 the value, read now (a lazy engine realises it)
    vjp(node, cotangent)       the gradients of the leaves `node` depends on
    jvp(node)                  J t, for the tangents the checker draws (by the case)
    hvp(node, cotangent)       H t of each leaf, for the tangents the checker draws
    backward(node, cotangent)  the VJP added into each leaf's own buffer (adapter.backward,
                               capability "accumulate": torch's .backward(), .grad)
    grad(node)                 the leaf's buffer, read: the sum of the VJPs of every
                               backward since its zero_grad (checked as the VJP of
                               Σ sum(cₖ ⊙ yₖ), a graph of the references like any other)
    zero_grad(node)            the leaf's buffer emptied
    assign(node, value)        the leaf `node`'s values replaced in place (adapter.assign):
                               a new node on the same engine object; every value that
                               depended on the old one is stale, never asked about again
"""

import contextlib
import warnings

import numpy as np
from mflow.oracles.engine import Result, capabilities, normalise
from mflow.oracles.program import Program, Step, interpret, np_dtype
from mflow.oracles.verdict import Failure, ReferenceDisagreement, accuses_engine, same_failure
from mflow.oracles.world import World


class Live:
    """The engine as the checker sees it during a session: each mode's call is answered
    by the call the session is making (`answer`: {mode: function of the mode's
    arguments}) on the values it holds, instead of a fresh run; an answer the call does
    not give is None."""

    def __init__(self, normalised):
        self.normalised, self.name = normalised, normalised.name
        self.offers, self.answer = normalised.offers, {}

    def vjp(self, program, inputs, cotangent):
        return self.answer["vjp"](program, inputs, cotangent)

    def jvp(self, program, inputs, tangents):
        return self.answer["jvp"](program, inputs, tangents)

    def hvp(self, program, inputs, cotangent, tangents):
        return self.answer["hvp"](program, inputs, cotangent, tangents)


@contextlib.contextmanager
def answering(checker):
    """The checker, answered by a session's calls while the block runs (Live)."""
    saved = checker.normalised
    checker.normalised = Live(saved)
    try:
        yield checker
    finally:
        checker.normalised = saved


class Sequence:
    """One session on the engine of `checker` (answered by Live): its values held, the
    calls made so far (`calls`, plain data), the gradients of the last VJP (`grads`).
    A call whose answer disagrees raises its failure, numbered (`failure.call`), after
    `found(failure, sequence)` if set (with `fewest`, once Hypothesis has shrunk it,
    the calls it does not need left out first: fewest_calls); the references
    disagreeing among themselves are warned about (not the engine's fault), as in the
    rest of the suite."""

    def __init__(self, checker, dtype, found=None, fewest=False):
        self.checker, self.live, self.adapter = checker, checker.normalised, checker.engine
        self.fewest = fewest  # a failure's calls cut to those it needs (_failed)
        self.engine = self.live.normalised
        self.caps = capabilities(self.adapter)
        self.dtype, self.world, self.found = dtype, World(dtype), found
        self.held, self.grads, self.walked, self.calls = {}, {}, {}, []
        # (walked: each node a VJP walked, and the number of nodes at its latest walk)
        self.buffers = {}  # a leaf: the (node, cotangent) of each backward since zero_grad
        self.unknown = set()  # leaves whose buffer holds VJPs from before an assign
        self.stale = set()  # nodes on a leaf's values before an assign
        self.replaced = {}  # an assigned leaf's node: the node of its new values

    def current(self, node):
        """The node of `node`'s values now: itself, or, for a leaf assigned since, the
        node of its newest values."""
        while node in self.replaced:
            node = self.replaced[node]
        return node

    def usable(self):
        """The nodes a call may name: every one not stale."""
        return [i for i in range(len(self.world)) if i not in self.stale]

    # --- calls that make values ------------------------------------------------------

    def leaf(self, value, how="fresh", **note):
        value = np.asarray(value, np_dtype(self.dtype))
        node = self.world.leaf(value)
        self.calls.append({"call": "leaf", "how": how, "value": value, **note})
        if not self.engine.functional:
            self.held[node] = self._engine(node, lambda: self.adapter.leaf(np.array(value)))
        return node

    def assign(self, node, value):
        value = np.asarray(value, np_dtype(self.dtype))
        new = self.world.leaf(value)
        self.calls.append({"call": "assign", "node": node, "value": value})
        self.stale |= {i for i in range(new) if node in self.world.leaves[i]}
        self.replaced[node] = new
        if node in self.buffers or node in self.unknown:  # the same object keeps its
            self.buffers.pop(node, None)  # buffer (torch's .grad does), holding VJPs at
            self.unknown.add(new)  # the old values, which the world keeps as another leaf:
            # the buffer is not checked again until zeroed
        if not self.engine.functional:
            self.held[new] = self.held[node]
            self._engine(new, lambda: self.adapter.assign(self.held[new], np.array(value)))
        return new

    def build(self, program, on, inputs=(), read=False):
        """The program's first inputs are the held values `on`, the rest new leaves;
        `read`: its value read in the same call (a training loop's step, which prints
        its loss), where the output depends on a leaf."""
        inputs = [np.asarray(x, np_dtype(self.dtype)) for x in inputs]
        ids = self.world.extend(program, on, [None] * len(on) + inputs)
        read = bool(read and self.world.leaves[ids[-1]])
        self.calls.append({"call": "build", "program": program, "on": list(on),
                           "inputs": inputs, **({"read": True} if read else {})})
        if not self.engine.functional:
            self._made(program, on, inputs, ids)
        if read:
            self._read(ids[-1])
        return ids

    def _made(self, program, on, inputs, ids):
        """The engine's values of a graph built: held."""
        fresh, bound = iter(ids[len(on):]), iter(on)

        def leaf(x):
            k = next(bound, None)
            if k is not None:
                return self.held[k]
            value = self.adapter.leaf(np.array(x))
            self.held[next(fresh)] = value
            return value
        values = self._engine(ids[-1], lambda: interpret(
            program, self.adapter.ops, leaf, self.adapter.constant,
            [None] * len(on) + [np.array(x) for x in inputs]))
        for k, v in zip(ids, values):
            self.held.setdefault(k, v)

    def _engine(self, node, call):
        """An engine call that makes `node`, under the checker's guard: a crash or a
        hang there is a finding about the case of that node (of the newest value on a
        leaf, for a value of constants alone)."""
        node = next(i for i in [node, *range(len(self.world) - 1, -1, -1)]
                    if self.world.leaves[i])
        case, _ = self.world.case(node, np.ones(self.world.values[node].shape))
        try:
            return self.checker.guard(case, call)
        except Failure as failure:
            self._failed(failure)

    # --- calls that answer: each checked ---------------------------------------------

    def read(self, node):
        self.calls.append({"call": "read", "node": node})
        self._read(node)

    def _read(self, node):
        def answer(case, leaves):
            if self.engine.functional:
                return {"vjp": self.engine.vjp}
            nothing = [None] * len(leaves)
            return {"vjp": lambda p, x, c: Result(np.asarray(self.adapter.to_numpy(
                self.held[node])), nothing)}
        self._check(node, np.ones(self.world.values[node].shape), ("vjp",), answer)

    def vjp(self, node, cotangent):
        cotangent = np.asarray(cotangent, np_dtype(self.dtype))
        self.calls.append({"call": "vjp", "node": node, "cotangent": cotangent})
        got = {}

        def answer(case, leaves):
            if self.engine.functional:
                return {"vjp": self.engine.vjp}

            def call(p, x, c):
                grads = self.adapter.gradients(self.held[node], [self.held[k] for k in leaves],
                                               c)
                got.update(zip(leaves, grads))
                return Result(None, [self.engine._array(g) for g in grads])
            return {"vjp": call}
        self._walk(node)
        self._check(node, cotangent, ("vjp",), answer)
        self.grads = {k: np.asarray(self.engine._array(g), np.float64) for k, g in got.items()}

    def jvp(self, node):
        self.calls.append({"call": "jvp", "node": node})

        def answer(case, leaves):
            nothing = Result(None, [None] * len(leaves))
            if self.engine.functional:
                return {"vjp": lambda p, x, c: nothing, "jvp": self.engine.jvp}
            return {"vjp": lambda p, x, c: nothing, "jvp": lambda p, x, t: (
                None, self.engine._array(self.adapter.jvp(
                    self.held[node], [self.held[k] for k in leaves], t)))}
        self._check(node, np.ones(self.world.values[node].shape), ("vjp", "jvp"), answer)

    def hvp(self, node, cotangent):
        cotangent = np.asarray(cotangent, np_dtype(self.dtype))
        self.calls.append({"call": "hvp", "node": node, "cotangent": cotangent})

        def answer(case, leaves):
            # the VJP a fresh run (the vjp call checks the session's own), as is the
            # engine's gradient at the steps of its own difference along t
            if self.engine.functional:
                return {"vjp": self.engine.vjp, "hvp": self.engine.hvp}
            return {"vjp": self.engine.vjp, "hvp": lambda p, x, c, t: [
                self.engine._array(h) for h in self.adapter.hvp(
                    self.held[node], [self.held[k] for k in leaves], c, t)]}
        self._walk(node)
        self._check(node, cotangent, ("vjp", "hvp"), answer)

    def _walk(self, node):
        """A VJP walks `node`'s graph: each node of it, with the size of the world now."""
        self.walked.update(dict.fromkeys(self.world.depends(node), len(self.world)))

    # --- gradient buffers (capability "accumulate") ---------------------------------

    def backward(self, node, cotangent):
        """The VJP added into the buffers of the leaves `node` depends on: no answer."""
        cotangent = np.asarray(cotangent, np_dtype(self.dtype))
        self.calls.append({"call": "backward", "node": node, "cotangent": cotangent})
        self._walk(node)
        for leaf in set(self.world.leaves[node]) - self.unknown:
            self.buffers.setdefault(leaf, []).append((node, cotangent))
        self._engine(node, lambda: self.adapter.backward(self.held[node], np.array(cotangent)))

    def zero_grad(self, node):
        self.calls.append({"call": "zero_grad", "node": node})
        self.buffers.pop(node, None)
        self.unknown.discard(node)
        self._engine(node, lambda: self.adapter.zero_grad(self.held[node]))

    def grad(self, node):
        """The leaf's buffer, checked as the VJP (cotangent 1) of Σ sum(cₖ ⊙ yₖ) over its
        backward calls (none: 0 ⊙ the leaf, so nothing or zeros), on a copy of the world:
        the session's node ids stay as they are."""
        self.calls.append({"call": "grad", "node": node})
        if node in self.unknown:  # read, not checked (see assign)
            self._engine(node, lambda: self.adapter.grad(self.held[node]))
            return
        shape = self.world.values[node].shape
        terms = self.buffers.get(node) or [(node, np.zeros(shape, np_dtype(self.dtype)))]
        got = self._engine(node, lambda: self.adapter.grad(self.held[node]))
        got = np.zeros(shape, np_dtype(self.dtype)) if got is None else self.engine._array(got)
        k = len(terms)
        steps = [Step("mul", (j, k + j)) for j in range(k)]
        steps += [Step("sum", (2 * k + j,), {"axis": None}) for j in range(k)]
        steps += [Step("add", (4 * k + j - 2 if j > 1 else 3 * k, 3 * k + j))
                  for j in range(1, k)]
        program = Program(tuple(self.world.values[y].shape for y, _ in terms) +
                          tuple(c.shape for _, c in terms), tuple(steps), self.dtype)
        world = self.world.copy()
        out = world.extend(program, [y for y, _ in terms], [None] * k + [c for _, c in terms])
        self._check(out[-1], np.ones((1, 1)), ("vjp",), lambda case, leaves: {
            "vjp": lambda p, x, c: Result(None, [got if i == node else None
                                                 for i in leaves])}, world)

    def _check(self, node, cotangent, modes, answer, world=None):
        case, leaves = (world or self.world).case(node, cotangent)
        self.live.answer = answer(case, leaves)
        failure = self.checker.judge(case, modes=modes).outcome
        if failure is None:
            return
        if not accuses_engine(failure):
            warnings.warn(ReferenceDisagreement(
                f"the references disagree (not your engine), at call {len(self.calls) - 1} "
                f"of a session: {str(failure).splitlines()[-1].strip()[:300]}"), stacklevel=2)
            return
        self._failed(failure)

    def _failed(self, failure):
        failure.call = len(self.calls) - 1
        from .saving import final_example
        if self.fewest and final_example():
            fewer, shorter = fewest_calls(self._fresh_checker, self.dtype, self.calls,
                                          failure)
            if len(fewer) < len(self.calls):
                failure.add_note(f"{len(self.calls) - len(fewer)} of the {len(self.calls)} "
                                 "calls Hypothesis shrank to left out: the same graph fails "
                                 "the same way without them (the case above: without them)")
                failure.args, failure.verdict = shorter.args, shorter.verdict
                self.calls, failure.call = fewer, len(fewer) - 1
        failure.add_note(f"the first call whose answer disagreed: call {failure.call} of "
                         f"this session:\n" + "\n".join(as_code(self.calls)))
        if self.found is not None:
            self.found(failure, self)
        raise failure

    def _fresh_checker(self):
        """A checker as this session's on a new adapter of its class (None where the
        class needs arguments): a replay's state its own calls'. Made anew, not copied
        (a copy kept what was set on the instance: a campaign's counting `judge` judged
        the replays on the session's adapter); the compiled JAX interpreters shared."""
        from mflow.oracles.checker import Checker
        try:
            adapter = type(self.adapter)()
        except Exception:  # noqa: BLE001 - an adapter made with arguments
            return None
        old = self.checker
        checker = Checker(adapter, oracles=old.oracles, modes=old.modes,
                          fail_on_warnings=old.fail_on_warnings, lazy_gauge=old.lazy_gauge)
        if hasattr(old, "jax"):
            checker.jax = old.jax
        return checker


def made(call):
    """How many values (the world's nodes) a call makes."""
    if call["call"] == "build":
        program = call["program"]
        return len(program.inputs) - len(call["on"]) + len(program.steps)
    return int(call["call"] in ("leaf", "assign"))


def without(calls, k):
    """The calls without call k, later values renumbered; None where a later call names
    a value call k made (but the node of an assign left out: the leaf's before it)."""
    first = sum(map(made, calls[:k]))
    gone = range(first, first + made(calls[k]))
    same = calls[k]["node"] if calls[k]["call"] == "assign" else None  # the same object
    if same is None and any(i in gone for c in calls[k + 1:]
                            for i in [c.get("node"), *c.get("on", ())]):
        return None

    def moved(i):
        if i is None or i in gone:
            return same
        return i - len(gone) if i >= gone.stop else i
    out = list(calls[:k])
    for c in calls[k + 1:]:
        c = dict(c)
        if "node" in c:
            c["node"] = moved(c["node"])
        if "on" in c:
            c["on"] = [moved(i) for i in c["on"]]
        if "of" in c:  # (an update's note: which leaf it stepped)
            c["of"] = moved(c["of"])
        out.append(c)
    return out


def fewest_calls(fresh_checker, dtype, calls, failure):
    """(calls, their failure): `calls` with every call the failure does not need left
    out, one at a time from the last but one: a call is left out if, without it, a new
    adapter fails the same way at the last call, on the same graph (its values may
    differ: an assign left out). Hypothesis deletes a call only where the choices
    after it still draw the same calls, and stopped at 5 calls where the bug needs 4
    (benchmarks/results/state_bugs.md); a replay costs a few checks."""
    graph = failure.verdict.case.program.to_dict()
    for k in range(len(calls) - 2, -1, -1):
        shorter = without(calls, k)
        checker = fresh_checker() if shorter is not None else None
        if checker is None:
            continue
        try:
            with warnings.catch_warnings():  # (a replay's own cases: not the run's to
                warnings.simplefilter("ignore")  # count, nor the references' to warn of)
                again = replay(checker, dtype, shorter)
        except Exception:  # noqa: BLE001 - not the same failure (the references'), kept
            continue
        if same_failure(failure, again) and again.call == len(shorter) - 1 and \
                again.verdict.case.program.to_dict() == graph:
            calls, failure = shorter, again
    return calls, failure


def replay(checker, dtype, calls, found=None):
    """The saved calls made again in order on the checker's engine, each answer checked:
    the first failure (its call numbered), or None if every answer agrees."""
    with answering(checker):
        sequence = Sequence(checker, dtype, found)
        try:
            for call in calls:
                args = {k: v for k, v in call.items() if k in ARGS[call["call"]]}
                getattr(sequence, call["call"])(**args)
        except Failure as failure:
            if accuses_engine(failure):
                return failure
            raise
    return None


ARGS = {"leaf": ("value", "how"), "build": ("program", "on", "inputs", "read"),
        "read": ("node",),
        "vjp": ("node", "cotangent"), "jvp": ("node",), "assign": ("node", "value"),
        "hvp": ("node", "cotangent"), "backward": ("node", "cotangent"), "grad": ("node",),
        "zero_grad": ("node",)}


def as_code(calls):
    """The calls as plain code, one line per value or call (v0, v1, ...: the session's
    values in creation order; arrays by shape, their values in the report's .npy)."""
    lines, n = [], 0

    def shape(a):
        return "x".join(map(str, np.shape(a)))
    for k, call in enumerate(calls):
        kind = call["call"]
        if kind == "leaf":
            how = call.get("how", "fresh")
            if how == "update":
                of = call.get("of")  # (None: a leaf left out, fewest_calls)
                how = (f"update: {'a leaf' if of is None else f'v{of}'} - {call.get('eta')} "
                       "* its gradient")
            lines.append(f"v{n} = leaf({shape(call['value'])} values)  # call {k}: {how}")
            n += 1
        elif kind == "build":
            program, names = call["program"], [f"v{i}" for i in call["on"]]
            for _ in call["inputs"]:
                lines.append(f"v{n} = leaf({shape(_)} values)")
                names.append(f"v{n}")
                n += 1
            for step in program.steps:
                args = ", ".join([names[a] for a in step.args] + [
                    f"{key}={value!r}" for key, value in step.attrs.items()
                    if step.op != "const"])
                lines.append(f"v{n} = {step.op}({args})")
                names.append(f"v{n}")
                n += 1
            lines[-1] += f"  # call {k}: a graph"
            if call.get("read"):
                lines[-1] += ", its value read"
                lines.append(f"print(v{n - 1})")
        elif kind == "assign":
            lines.append(f"v{n} = assign(v{call['node']}, {shape(call['value'])} values)"
                         f"  # call {k}: in place, the same leaf")
            n += 1
        elif kind == "read":
            lines.append(f"print(v{call['node']})  # call {k}: the value")
        elif kind == "vjp":
            lines.append(f"vjp(v{call['node']}, cotangent of {shape(call['cotangent'])})"
                         f"  # call {k}: the gradients of its leaves")
        elif kind == "hvp":
            lines.append(f"hvp(v{call['node']}, cotangent of {shape(call['cotangent'])})"
                         f"  # call {k}: H t of its leaves")
        elif kind == "backward":
            lines.append(f"v{call['node']}.backward(cotangent of {shape(call['cotangent'])})"
                         f"  # call {k}: added into its leaves' buffers")
        elif kind == "grad":
            lines.append(f"print(v{call['node']}.grad)  # call {k}: the buffer")
        elif kind == "zero_grad":
            lines.append(f"v{call['node']}.grad = None  # call {k}: zeroed")
        else:
            lines.append(f"jvp(v{call['node']})  # call {k}: J t")
    return lines


def session_modes(adapter):
    """The modes a session of the adapter checks: reverse, and those it offers."""
    offers = normalise(adapter).offers
    return ("vjp",) + tuple(m for m in ("jvp", "hvp") if offers[m])


def replayed(checker, folder, case, report):
    """A saved report replayed on the checker's engine (the gate, `list`): its failure,
    or None. Its case judged; a session's report: its calls made again (replay)."""
    if not report.get("session"):
        return checker.judge(case).outcome
    from .regressions import load_calls
    return replay(checker, *load_calls(folder))


def reproduce(folder, spec):
    """A session's reproduce.py: the calls printed as code, then made again on the
    engine `spec` names, each answer checked; MISMATCH and exit status 1 at the first
    one that disagrees."""
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import load_engine

    from .regressions import load, load_calls
    engine = load_engine(spec)  # first: its adapter brings the operations of its own
    load(folder)
    dtype, calls = load_calls(folder)
    print("\n".join(as_code(calls)))
    failure = replay(Checker(engine, modes=session_modes(engine)), dtype, calls)
    if failure is None:
        print(f"every answer of the {len(calls)} calls agrees with the references")
        return
    print(f"call {failure.call}: {type(failure).__name__}: {str(failure).splitlines()[0]}")
    print("MISMATCH")
    raise SystemExit(1)
