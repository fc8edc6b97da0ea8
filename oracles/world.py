"""An engine session's values as one growing program: every leaf the session made is
an input, every graph built since is steps on earlier values, so that whatever a call
is about (a value read, a gradient taken) is a Case like any other: the steps it
depends on, over the leaves it depends on, checked by the same references and
tolerances as a fuzzed graph (reports/sessions.py drives it).

    >>> w = World("float64")
    >>> x = w.leaf(np.ones((1, 2)))
    >>> program = Program(((1, 2),), (Step("exp", (0,)),))
    >>> _, y = w.extend(program, [x])
    >>> w.case(y, np.ones((1, 2)))[0].program.steps
    (Step(op='exp', args=(0,), attrs={}),)
"""

import numpy as np

from .numpy_backend import NUMPY_OPS
from .program import Case, Program, Step, interpret, live_values, np_dtype


class World:
    """Nodes in creation order: a leaf (its value) or a step on earlier nodes."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.steps = []   # per node: None for a leaf, else a Step whose args are node ids
        self.values = []  # per node: its value as numpy computes it in float64
        self.leaves = []  # per node: the leaves it depends on, node ids in order

    def __len__(self):
        return len(self.steps)

    def copy(self):
        """Another world with the same nodes, to extend without changing this one."""
        other = World(self.dtype)
        other.steps, other.values, other.leaves = (list(self.steps), list(self.values),
                                                   list(self.leaves))
        return other

    def leaf(self, value):
        """A new leaf; its node id."""
        self.steps.append(None)
        self.values.append(np.asarray(value, np.float64))
        self.leaves.append((len(self.steps) - 1,))
        return len(self.steps) - 1

    def extend(self, program, bound, inputs=()):
        """The program's values as nodes: its first inputs are the nodes `bound`, the
        rest new leaves with the values `inputs`; its steps new nodes. The node ids of
        all its values, inputs first."""
        ids = list(bound) + [self.leaf(x) for x in inputs[len(bound):]]
        if len(ids) != len(program.inputs):
            raise ValueError(f"{len(program.inputs)} inputs, {len(ids)} nodes given")
        values = interpret(program, NUMPY_OPS, lambda x: x, lambda a: a.astype(np.float64),
                           [self.values[i] for i in ids])
        for step, value in zip(program.steps, values[len(ids):]):
            args = tuple(ids[a] for a in step.args)
            self.steps.append(Step(step.op, args, step.attrs))
            self.values.append(np.asarray(value, np.float64))
            self.leaves.append(tuple(sorted({k for a in args for k in self.leaves[a]})))
            ids.append(len(self.steps) - 1)
        return ids

    def depends(self, node):
        """The nodes `node` depends on, itself included."""
        return live_values([() if s is None else s.args for s in self.steps], node)

    def case(self, node, cotangent):
        """(Case, leaf ids): the program computing `node` from the leaves it depends on,
        in node order, with their values in the session's dtype."""
        live = self.depends(node)
        leaves = [i for i in sorted(live) if self.steps[i] is None]
        if not leaves:
            raise ValueError(f"node {node} depends on no leaf")
        order = leaves + [i for i in sorted(live) if self.steps[i] is not None]
        new = {old: k for k, old in enumerate(order)}
        steps = [Step(self.steps[i].op, tuple(new[a] for a in self.steps[i].args),
                      self.steps[i].attrs) for i in order[len(leaves):]]
        program = Program(tuple(self.values[i].shape for i in leaves), tuple(steps),
                          self.dtype)
        dt = np_dtype(self.dtype)
        return Case(program, tuple(self.values[i].astype(dt) for i in leaves),
                    np.asarray(cotangent).astype(dt)), leaves
