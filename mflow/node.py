"""The graph: `Node`, `apply` (build a node from the table) and the backward walk."""

import operator

import numpy as np

from . import rule_ops
from .ops import OPS, Op
from .shapes import ShapeError, normalise_index

accumulate = operator.add  # how contributions from several uses combine (a name tests can patch)


def as_matrix(value, who="Node"):
    """A user's value as a 2-D float matrix (numbers and 0-D arrays become 1x1)."""
    try:
        arr = np.array(value)  # a copy: later changes to the caller's array don't reach the graph
    except ValueError as e:  # a ragged nested list
        raise ShapeError(f"{who}: value is not a rectangular matrix ({e})") from None
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind != "f" or arr.dtype.itemsize > 8:
        raise TypeError(f"{who}: value must be real numbers (float64, float32 or ints); "
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

    # --- operators ---------------------------------------------------------------

    def __neg__(self):
        return apply("neg", self)

    def __pow__(self, p):
        if isinstance(p, Node) or isinstance(p, bool) or not isinstance(p, (int, float)):
            raise TypeError(f"pow: the exponent must be a Python number; got {type(p).__name__}")
        return apply("pow", self, p=p)

    @property
    def T(self):
        return apply("transpose", self)

    def __getitem__(self, key):
        try:
            rows, cols = normalise_index(key, self.shape)
        except ShapeError as e:
            raise ShapeError(f"getitem: {e}") from None
        return apply("getitem", self, rows=rows, cols=cols)

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
        _backpropagate(self, seed, keep)

    def zero_grad(self):
        """Clear `.grad` on this node and every node beneath it."""
        for node in _topological(self, every=True):
            node.grad = None


def _binary(op, reflected=False):
    # the op by name, looked up per call, so that a patched table entry is seen everywhere
    def method(self, other):
        if type(other) is not Node:
            given, other = other, lift(other, self)
            if other is None:
                if isinstance(given, int):
                    raise ValueError(_too_large(op, given))
                return NotImplemented
        return apply(op, other, self) if reflected else apply(op, self, other)
    return method


for _name, _dunder in [("add", "add"), ("sub", "sub"), ("mul", "mul"),
                       ("div", "truediv"), ("matmul", "matmul")]:
    setattr(Node, f"__{_dunder}__", _binary(_name))
    setattr(Node, f"__r{_dunder}__", _binary(_name, reflected=True))

_new = Node.__new__


def lift(x, like=None):
    """An operand as a Node: Python numbers take the dtype of the Node they meet,
    so that `x32 * 2.0` stays float32. Returns None for what cannot be a Node."""
    if isinstance(x, Node):
        return x
    if isinstance(x, (int, float)):
        try:
            return _leaf(np.array([[x]], dtype=np.float64 if like is None else like.value.dtype))
        except OverflowError:  # an int beyond float64: the caller names the operation
            return None
    if isinstance(x, (np.ndarray, np.generic, list, tuple)):
        return Node(x)
    return None


def _too_large(op, number):
    return f"{op}: the number, an int of {len(str(abs(number)))} digits, is too large for a float"


def _leaf(value):
    """A constant leaf around a value that is already a valid matrix."""
    node = _new(Node)
    node.value, node.grad, node.requires_grad, node.name = value, None, False, None
    node.op, node.parents, node.attrs = None, (), {}
    return node


def _lift_all(op, operands):
    like = next((x for x in operands if isinstance(x, Node)), None)
    nodes = tuple(lift(x, like) for x in operands)
    for x, n in zip(operands, nodes):
        if n is None and isinstance(x, int):
            raise ValueError(_too_large(op.name, x))
        if n is None:
            raise TypeError(f"{op.name}: operands must be Nodes, arrays or numbers; "
                            f"got {type(x).__name__}")
    return nodes


def apply(op, *operands, **attrs):
    """Apply a table entry (an Op or its name) to operands, checking shapes first.

    This is the hot path of every graph the suite builds: keep it lean."""
    if type(op) is not Op:
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}; mflow has {', '.join(sorted(OPS))}")
        op = OPS[op]
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
    if op.compose is not None:
        return op.compose(*operands, **attrs)
    try:
        value = op.forward(*[x.value for x in operands], **attrs)
    except np.linalg.LinAlgError as e:
        shapes = ", ".join(str(x.shape) for x in operands)
        raise np.linalg.LinAlgError(f"{op.name}: {e} (operand shape {shapes})") from None
    node = _new(Node)  # skip __init__'s checks: the value is ours
    node.value, node.grad, node.name, node.op, node.parents, node.attrs = (
        value, None, None, op, operands, attrs)
    node.requires_grad = False
    for x in operands:
        if x.requires_grad:
            node.requires_grad = True
            break
    return node


def _unbroadcast(g, value, op):
    """Sum a gradient (an array, or a Node under create_graph) over the axes its
    operand was broadcast along, in the operand's dtype."""
    shape = value.shape
    if g.shape != shape:
        for axis in (0, 1):
            if g.shape[axis] != shape[axis] and shape[axis] == 1:
                g = rule_ops.sum(g, axis)
        if g.shape != shape:
            raise ShapeError(f"{op.name}: its VJP rule returned a gradient of shape {g.shape} "
                             f"for an operand of shape {shape}")
    if g.dtype != value.dtype:
        if type(g) is Node:
            raise TypeError(f"{op.name}: its VJP rule returned {g.dtype} for a {value.dtype} "
                            "operand (mflow keeps one dtype per graph)")
        g = g.astype(value.dtype)
    return g


def _backpropagate(root, seed, visit, create_graph=False):
    """The reverse walk shared by `backward` and `grad`: each node's cotangent,
    complete (every use added), is handed to `visit(node, g)` before its rule
    runs; each rule runs once. With create_graph, cotangents are Nodes and rules
    run on Nodes (operands, and the node itself as `ans`): the result is a graph."""
    grads = {root: seed}
    for node in reversed(_topological(root)):
        g = grads.pop(node)
        visit(node, g)
        op = node.op
        if op is None:
            continue
        parents = node.parents
        if create_graph:
            contributions = op.vjp(g, node, *parents, **node.attrs)
        else:
            contributions = op.vjp(g, node.value, *[p.value for p in parents], **node.attrs)
        for p, gp in zip(parents, contributions):
            if p.requires_grad:
                if create_graph and type(gp) is not Node:
                    gp = _leaf(np.asarray(gp, p.dtype))  # a constant part of a rule (zeros)
                v = p.value
                if gp.shape != v.shape or gp.dtype != v.dtype:
                    gp = _unbroadcast(gp, v, op)
                if p in grads:
                    grads[p] = accumulate(grads[p], gp)  # fan-out: contributions add up
                else:
                    grads[p] = gp


def grad(output, inputs, gradient=None, create_graph=False):
    """d⟨gradient, output⟩ / d input for each of `inputs` (Nodes that require grad),
    as Nodes, the way torch.autograd.grad does; `.grad` attributes are left alone.
    `gradient` defaults to [[1.0]] for a 1x1 output. An input the output does not
    depend on gets zeros. With create_graph=True each gradient is a graph of mflow
    operations over the inputs, so it can be differentiated again (at a singular
    matrix det's then raises: its differentiable form is det X · X⁻¹):

    >>> x = Node([[1.0, 2.0]], requires_grad=True)
    >>> (g,) = grad((x * x * x).sum(), [x], create_graph=True)   # 3 x²
    >>> (h,) = grad(g, [x], gradient=[[1.0, 1.0]])               # 6 x
    >>> h.value
    array([[ 6., 12.]])
    """
    if type(output) is not Node:
        raise TypeError(f"grad: the output is a {type(output).__name__}, not a Node")
    inputs = [inputs] if isinstance(inputs, Node) else list(inputs)
    for k, x in enumerate(inputs):
        if type(x) is not Node:
            raise TypeError(f"grad: input {k} is a {type(x).__name__}, not a Node")
        if not x.requires_grad:  # its gradient is not zero, only not tracked (as torch)
            raise ValueError(f"grad: input {k} does not require grad; create it with "
                             "Node(value, requires_grad=True)")
    if gradient is None:
        if output.shape != (1, 1):
            raise ValueError(f"grad: an output of shape {output.shape} needs `gradient` of "
                             "that shape (only a 1x1 output defaults to [[1.0]])")
        gradient = np.ones((1, 1), output.dtype)
    seed = gradient if isinstance(gradient, Node) else as_matrix(gradient, "grad")
    if seed.shape != output.shape:
        raise ValueError(f"grad: gradient has shape {seed.shape}, but the output has shape "
                         f"{output.shape}")
    if type(seed) is Node and (not create_graph or not seed.requires_grad):
        seed = seed.value  # a constant: its value is all that matters
    if type(seed) is Node and seed.dtype != output.dtype:
        raise TypeError(f"grad: gradient is {seed.dtype}, the output {output.dtype}; mflow "
                        "keeps one dtype per graph")
    if type(seed) is not Node:
        seed = seed.astype(output.dtype, copy=False)
        if create_graph:
            seed = _leaf(seed)
    wanted = {x: None for x in inputs}

    def collect(node, g):
        if node in wanted:
            wanted[node] = g
    if output.requires_grad:
        _backpropagate(output, seed, collect, create_graph)
    out = []
    for x in inputs:
        g = wanted[x]
        if g is None:
            g = np.zeros(x.shape, x.dtype)
        out.append(g if type(g) is Node else _leaf(np.array(g)))
    return out


def _topological(root, every=False):
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
