"""Forward mode over a graph already built: each operation's own JVP rule (mflow.ops),
applied once per node in topological order. Not the VJPs transposed: a wrong JVP
rule is a bug of its own, which the suite's transpose identity check can see."""

import numpy as np

from .node import Node, as_matrix, topological
from .shapes import ShapeError


def jvp(output, inputs, tangents):
    """The tangent of `output` when each node of `inputs` moves along its tangent:
    J ṫ = d/dε output(inputs + ε tangents) at ε = 0, an array of output's shape.
    Nodes that are not among `inputs` stay fixed. One pass, linear in the graph.

    >>> x = Node([[1.0, 2.0]], requires_grad=True)
    >>> jvp((x * x).sum(), [x], [[[1.0, 0.0]]])
    array([[2.]])
    """
    if type(output) is not Node:
        raise TypeError(f"jvp: the output is a {type(output).__name__}, not a Node")
    if isinstance(inputs, Node):
        inputs, tangents = [inputs], [tangents]
    inputs, tangents = list(inputs), list(tangents)
    for k, x in enumerate(inputs):
        if type(x) is not Node:
            raise TypeError(f"jvp: input {k} is a {type(x).__name__}, not a Node")
    if len(inputs) != len(tangents):
        raise ValueError(f"jvp: {len(inputs)} inputs but {len(tangents)} tangents")
    tangent_of = {}
    for k, (x, t) in enumerate(zip(inputs, tangents)):
        t = as_matrix(t.value if isinstance(t, Node) else t, "jvp")
        if t.shape != x.shape:
            raise ShapeError(f"jvp: the tangent of input {k} has shape {t.shape}, the input "
                             f"{x.shape}")
        tangent_of[x] = t.astype(x.dtype, copy=False)
    t = propagate(output, tangent_of).get(output)
    return np.zeros_like(output.value) if t is None else np.array(t)


def propagate(output, tangent_of, value=None, rule=None):
    """The one forward-mode walk (`jvp`, and the suite's measurement of rounding use
    it): every node's tangent from the given ones (`tangent_of`, {node: tangent}, filled
    in and returned). value(node): what a rule reads (default its value); rule(op, ts,
    ans, operands, attrs): how a JVP rule runs (default op.jvp(ts, ans, ...))."""
    if value is None:
        def value(node):
            return node.value
    if rule is None:
        def rule(op, ts, ans, operands, attrs):
            return op.jvp(ts, ans, *operands, **attrs)
    for node in topological(output, every=True):
        if node in tangent_of or node.op is None:
            continue  # a given input, or a leaf held fixed (no tangent: zero)
        ts = [tangent_of.get(p) for p in node.parents]
        if all(t is None for t in ts):
            continue
        ts = tuple(np.zeros_like(value(p)) if t is None else t
                   for p, t in zip(node.parents, ts))
        t = rule(node.op, ts, value(node), [value(p) for p in node.parents], node.attrs)
        if t.shape != node.value.shape or t.dtype != value(node).dtype:
            t = _as_result(t, node, value(node).dtype)
        tangent_of[node] = t
    return tangent_of


def _as_result(t, node, dtype):
    """A rule's tangent in the result's shape and dtype (broadcast operands' tangents
    broadcast too); any other shape is the rule's bug, named."""
    try:
        out = np.empty(node.value.shape, dtype)
        out[...] = t
        return out
    except ValueError:
        raise ShapeError(f"{node.op.name}: its JVP rule returned shape {np.shape(t)} for a "
                         f"result of shape {node.value.shape}") from None
