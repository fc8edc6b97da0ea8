"""`grad`: gradients as Nodes, the way torch.autograd.grad gives them, and, with
create_graph=True, gradients that are graphs themselves (the rules run on Nodes,
ops.NODES), so that they can be differentiated again."""

import numpy as np

from .node import Node, as_matrix, backpropagate, constant
from .ops import NODES
from .rule_ops import ARRAYS


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
            seed = constant(seed)
    wanted = {x: None for x in inputs}

    def collect(node, g):
        if node in wanted:
            wanted[node] = g
    if output.requires_grad:
        backpropagate(output, seed, collect, NODES if create_graph else ARRAYS)
    out = []
    for x in inputs:
        g = wanted[x]
        if g is None:
            g = np.zeros(x.shape, x.dtype)
        out.append(g if type(g) is Node else constant(np.array(g)))
    return out


def hvp(output, inputs, cotangent, tangents):
    """The Hessian-vector product ∂/∂x ⟨Jᵀ cotangent, ṫ⟩ for each input, as arrays:
    the gradient built as a graph (create_graph), then differentiated once more along
    the tangents (one per input). Zeros where the output does not depend on an input.

    >>> x = Node([[1.0, 2.0]], requires_grad=True)
    >>> hvp((x * x * x).sum(), [x], [[1.0]], [[[1.0, 0.0]]])[0]   # 6 x ⊙ ṫ
    array([[6., 0.]])
    """
    inputs = list(inputs)
    if not output.requires_grad:
        return [np.zeros_like(x.value) for x in inputs]
    grads = grad(output, inputs, cotangent, create_graph=True)
    inner = grads[0] * tangents[0]
    inner = sum(((g * t).sum() for g, t in zip(grads[1:], tangents[1:])), inner.sum())
    return [h.value for h in grad(inner, inputs)]
