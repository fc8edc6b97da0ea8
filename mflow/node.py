"""The graph core: `Op` (what an operation must say to take part in a graph), `Node`,
`apply` and the one backward walk. It knows no operation: the table (ops.py) is
built on it, and the operators of Node (+, @, .T, ...) are attached by
functions.py, which knows the table. Nothing here imports either."""

import operator
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .rule_ops import ARRAYS
from .shapes import ShapeError

accumulate = operator.add  # how contributions from several uses combine (a name tests can patch)


@dataclass(frozen=True)
class Op:
    """An operation of the engine: its forward, its VJP rule written against the
    namespace it is handed (F: rule_ops.ARRAYS on arrays, ops.NODES on Nodes), its JVP
    rule, its shape rule and its attributes' defaults; or, for a derived operation,
    how it is composed of primitives."""
    name: str
    arity: int | None                     # None: any number of operands (concat)
    shape: Callable                       # (*shapes, **attrs) -> shape, or ShapeError
    forward: Callable | None = None       # (*values, **attrs) -> value
    vjp: Callable | None = None           # (F, g, ans, *values, **attrs) -> gradient per operand
    jvp: Callable | None = None           # (tangents, ans, *values, **attrs) -> tangent of result
    compose: Callable | None = None       # derived ops: (*nodes, **attrs) -> node, from primitives
    attrs: dict = field(default_factory=dict)  # attribute names and their defaults
    half: bool = True                     # computes in float16 and bfloat16 (not LAPACK's)

    def complete(self, attrs):
        """`attrs` with this operation's defaults filled in: the one place defaults apply."""
        if not self.attrs or len(attrs) == len(self.attrs):
            return attrs
        return {**self.attrs, **attrs}


# the dtypes mflow computes in; bfloat16 is ml_dtypes' (what JAX uses), a numpy dtype
# of kind "V" whose name is its own. Half precision excludes linear algebra (numpy's
# LAPACK has no half): inv, det, solve and logdet raise there, naming the dtype.
FLOATS = ("float64", "float32", "float16", "bfloat16")


def as_matrix(value, who="Node"):
    """A user's value as a 2-D float matrix (numbers and 0-D arrays become 1x1)."""
    try:
        arr = np.array(value)  # a copy: later changes to the caller's array don't reach the graph
    except ValueError as e:  # a ragged nested list
        raise ShapeError(f"{who}: value is not a rectangular matrix ({e})") from None
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif (arr.dtype.kind != "f" or arr.dtype.itemsize > 8) and arr.dtype.name not in FLOATS:
        # (float16/32/64 pass on kind and size alone: a dtype's name costs ~8 µs)
        raise TypeError(f"{who}: value must be real numbers ({', '.join(FLOATS)} or ints); "
                        f"got {type(value).__name__} of dtype {arr.dtype}")
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim != 2:
        raise ShapeError(
            f"{who}: values are 2-D matrices; got a {arr.ndim}-D value of shape {arr.shape}. "
            "Reshape it first: x.reshape(1, -1) for a row, x.reshape(-1, 1) for a column.")
    if arr.size == 0:
        raise ShapeError(f"{who}: got an empty matrix of shape {arr.shape}")
    return arr


class Node:
    """A matrix in the graph: its value, its gradient, and how it was made.

    >>> x = Node([[1.0, 2.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([[2., 4.]])
    """

    __slots__ = ("value", "grad", "requires_grad", "name", "op", "parents", "attrs", "__weakref__")
    __array_ufunc__ = None  # numpy defers to our reflected operators: `array + node` is a Node
    __iter__ = None         # indexing is 2-D; iterating row by row is not meant

    def __init__(self, value, requires_grad=False, name=None):
        self.value = as_matrix(value)
        self.grad = None
        if not isinstance(requires_grad, (bool, np.bool_)):  # "no" would be True
            raise TypeError(f"Node: requires_grad must be True or False; "
                            f"got {type(requires_grad).__name__} {requires_grad!r}")
        self.requires_grad = bool(requires_grad)
        self.name = name
        self.op = None      # the Op that made this node; None for a leaf
        self.parents = ()   # its operands, in order
        self.attrs = {}

    # --- what it is --------------------------------------------------------------

    @property
    def tensor(self):
        """MatrixFlow's name for `value`."""
        return self.value

    @tensor.setter
    def tensor(self, v):
        self.value = as_matrix(v, "tensor")  # the same checks as a new Node's value

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def is_leaf(self):
        """Made by the user, not by an operation."""
        return self.op is None

    def __repr__(self):
        what = "leaf" if self.op is None else self.op.name
        name = f", name={self.name!r}" if self.name else ""
        body = np.array2string(self.value, precision=4, threshold=16, separator=", ")
        return f"Node({body}, op={what}, requires_grad={self.requires_grad}{name})"

    # (operators: attached by functions.py, which knows the table)

    # --- the backward pass -------------------------------------------------------

    def backward(self, gradient=None):
        """Accumulate d(⟨gradient, self⟩)/d(node) into `.grad` of every node
        beneath that requires grad. Each rule runs once, however many paths
        reach it; the walk is iterative, so depth is no limit."""
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this node does not require grad; create its inputs with "
                "Node(value, requires_grad=True)")
        if gradient is None:
            if self.shape != (1, 1):
                raise ValueError(f"backward: a node of shape {self.shape} needs `gradient` "
                                 "of that shape (only a 1x1 node defaults to [[1.0]])")
            seed = np.ones((1, 1), dtype=self.dtype)
        else:
            seed = gradient.value if isinstance(gradient, Node) else as_matrix(gradient, "backward")
            if seed.shape != self.shape:
                raise ValueError(f"backward: gradient has shape {seed.shape}, "
                                 f"but the node has shape {self.shape}")
        def keep(node, g):
            node.grad = np.array(g) if node.grad is None else node.grad + g
        backpropagate(self, seed, keep)

    def zero_grad(self):
        """Clear `.grad` on this node and every node beneath it."""
        for node in topological(self, every=True):
            node.grad = None


_new = Node.__new__


def lift(x, like=None):
    """An operand as a Node: Python numbers take the dtype of the Node they meet,
    so that `x32 * 2.0` stays float32. Returns None for what cannot be a Node."""
    if isinstance(x, Node):
        return x
    if isinstance(x, (int, float)):
        try:
            return constant(np.array([[x]], dtype=np.float64 if like is None else like.value.dtype))
        except OverflowError:  # an int beyond float64: the caller names the operation
            return None
    if isinstance(x, (np.ndarray, np.generic, list, tuple)):
        return Node(x)
    return None


def too_large(op, number):
    return f"{op}: the number, an int of {len(str(abs(number)))} digits, is too large for a float"


def constant(value):
    """A constant Node (no gradient) around a value that is already a valid matrix."""
    node = _new(Node)
    node.value, node.grad, node.requires_grad, node.name = value, None, False, None
    node.op, node.parents, node.attrs = None, (), {}
    return node


def _lift_all(op, operands):
    like = next((x for x in operands if isinstance(x, Node)), None)
    nodes = tuple(lift(x, like) for x in operands)
    for x, n in zip(operands, nodes):
        if n is None and isinstance(x, int):
            raise ValueError(too_large(op.name, x))
        if n is None:
            raise TypeError(f"{op.name}: operands must be Nodes, arrays or numbers; "
                            f"got {type(x).__name__}")
    return nodes


def apply(op, *operands, **attrs):
    """Apply the operation `op` (an Op) to operands, checking shapes first; Python
    numbers and arrays are lifted to constant Nodes. (mflow.apply takes a name too.)

    This is the hot path of every graph the suite builds: keep it lean."""
    if op.arity is not None and len(operands) != op.arity:
        raise TypeError(f"{op.name}: takes {op.arity} operand(s), got {len(operands)}")
    for x in operands:
        if type(x) is not Node:
            operands = _lift_all(op, operands)
            break
    if op.attrs:
        attrs = op.complete(attrs)
    try:
        op.shape(*[x.value.shape for x in operands], **attrs)
    except ShapeError as e:
        raise ShapeError(f"{op.name}: {e}") from None
    except TypeError as e:  # an unknown attribute
        raise TypeError(f"{op.name}: {e}; its attributes are {op.attrs}") from None
    if not op.half and operands[0].value.dtype.itemsize == 2:
        raise TypeError(f"{op.name}: no {operands[0].value.dtype} (linear algebra runs in "
                        "float32 or float64; cast the operands first)")
    if op.compose is not None:
        return op.compose(*operands, **attrs)
    try:
        value = op.forward(*[x.value for x in operands], **attrs)
    except np.linalg.LinAlgError as e:
        shapes = ", ".join(str(x.shape) for x in operands)
        raise np.linalg.LinAlgError(f"{op.name}: {e} (operand shape {shapes})") from None
    if value.dtype != operands[0].value.dtype:  # bfloat16 @ bfloat16 is float32 in numpy:
        widest = max((x.value.dtype for x in operands), key=lambda d: d.itemsize)
        if value.dtype.itemsize > widest.itemsize:  # wider than every operand: cast back
            value = value.astype(widest)
    node = _new(Node)  # skip __init__'s checks: the value is ours
    node.value, node.grad, node.name, node.op, node.parents, node.attrs = (
        value, None, None, op, operands, attrs)
    node.requires_grad = False
    for x in operands:
        if x.requires_grad:
            node.requires_grad = True
            break
    return node


def unbroadcast(g, value, op, F=ARRAYS):
    """Sum a gradient (an array, or a Node under create_graph) over the axes its
    operand was broadcast along, in the operand's dtype: the one place broadcasting
    is undone."""
    shape = value.shape
    if g.shape != shape:
        for axis in (0, 1):
            if g.shape[axis] != shape[axis] and shape[axis] == 1:
                g = F.sum(g, axis)
        if g.shape != shape:
            raise ShapeError(f"{op.name}: its VJP rule returned a gradient of shape {g.shape} "
                             f"for an operand of shape {shape}")
    if g.dtype != value.dtype:
        if type(g) is Node:
            raise TypeError(f"{op.name}: its VJP rule returned {g.dtype} for a {value.dtype} "
                            "operand (mflow keeps one dtype per graph)")
        g = g.astype(value.dtype)
    return g


def backpropagate(root, seed, visit, F=ARRAYS, value=None, rule=None):
    """The one reverse walk (`backward`, `grad`, and the suite's measurement of rounding
    use it): each node's cotangent, complete (every use added), is handed to
    `visit(node, g)` before its rule runs; each rule runs once.

    F: the namespace rules run on (rule_ops.ARRAYS; ops.NODES under create_graph, where
    cotangents, operands and `ans` are Nodes and the result is a graph). value(node):
    what a rule reads for a node (default: its value, or the node itself on Nodes).
    rule(op, g, ans, operands, attrs): how a rule is run (default op.vjp(F, ...))."""
    on_nodes = F is not ARRAYS
    if value is None:
        value = (lambda node: node) if on_nodes else (lambda node: node.value)
    if rule is None:
        def rule(op, g, ans, operands, attrs):
            return op.vjp(F, g, ans, *operands, **attrs)
    grads = {root: seed}
    for node in reversed(topological(root)):
        g = grads.pop(node)
        visit(node, g)
        op = node.op
        if op is None:
            continue
        parents = node.parents
        contributions = rule(op, g, value(node), [value(p) for p in parents], node.attrs)
        for p, gp in zip(parents, contributions):
            if p.requires_grad:
                if on_nodes and type(gp) is not Node:
                    gp = constant(np.asarray(gp, p.dtype))  # a constant part of a rule (zeros)
                v = p.value
                if gp.shape != v.shape or gp.dtype != v.dtype:
                    gp = unbroadcast(gp, v, op, F)
                if p in grads:
                    grads[p] = accumulate(grads[p], gp)  # fan-out: contributions add up
                else:
                    grads[p] = gp


def topological(root, every=False):
    """Nodes beneath root, each after all of its operands (iterative DFS).
    Only nodes that require grad unless `every`."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for p in node.parents:
            if p not in seen and (every or p.requires_grad):
                stack.append((p, False))
    return order
