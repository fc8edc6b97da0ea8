"""PyTorch as a reference: all the suite's torch code is here.

TORCH_OPS is every operation's counterpart by name, built from the catalogue's
records (oracles/catalogue.py): each takes 2-D tensors and the operation's
attributes and returns a 2-D tensor, so that any program replays in torch op by
op. On it: the three modes' references, on a whole program, in float64 (or float32,
the rounding gauge): `vjp` (autograd), `jvp` (forward-mode AD, dual tensors) and
`hvp` (double backward), and `TorchEngine`, torch through the adapter protocol.
"""

import warnings

import numpy as np
import torch

from .catalogue import CATALOGUE, Derived
from .engine import Result
from .program import interpret, np_dtype

# torch notes that 'same' padding with an even kernel copies the input; the result is right
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")

TORCH_OPS = Derived(lambda: {name: rec.reference("torch", torch)
                             for name, rec in CATALOGUE.items()})


def _array(t):
    """A tensor as numpy: a ZeroTensor (what some of torch's double-backward formulas,
    linalg.solve's among them, return for a zero derivative) as zeros; bfloat16 as
    ml_dtypes' (numpy has none of its own: through float32, exactly)."""
    t = t.detach()
    if t._is_zerotensor():
        return np.zeros(tuple(t.shape), torch_dtype(t))
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(torch_dtype(t))
    return t.numpy()


def tensor(x, requires_grad=False):
    """A numpy array as a tensor of its dtype (ml_dtypes' bfloat16 as torch's)."""
    x = np.asarray(x)
    if x.dtype.kind == "V":  # ml_dtypes' bfloat16 (of the dtypes a program has)
        return torch.tensor(x.astype(np.float32)).bfloat16().requires_grad_(requires_grad)
    # a copy of its own, as torch.tensor makes, at a fifth of its cost (~10 a check);
    # native byte order (from_numpy takes no other), as torch.tensor's copy has
    t = torch.from_numpy(np.array(x, x.dtype.newbyteorder("="), order="C"))
    return t.requires_grad_(True) if requires_grad else t


def vjp(program, inputs, cotangent):
    """Result (output, the VJP of `cotangent` per input) of a program, by autograd."""
    xs = [tensor(x, True) for x in inputs]
    out = interpret(program, TORCH_OPS, lambda x: x, tensor, xs)[-1]
    if not out.requires_grad:  # the output uses no input
        grads = [None] * len(xs)
    else:
        grads = torch.autograd.grad(out, xs, tensor(cotangent), allow_unused=True)
    return Result(_array(out), [np.zeros(np.shape(x), np.asarray(x).dtype)
                                if g is None else _array(g)
                                         for x, g in zip(inputs, grads)])


def jvp(program, inputs, tangents):
    """(output, J ṫ) by dual tensors (torch.autograd.forward_ad): the same answers as
    torch.func.jvp, bit for bit on 150 drawn graphs, at 0.6 of its cost per call."""
    from torch.autograd import forward_ad
    with forward_ad.dual_level():
        xs = [forward_ad.make_dual(tensor(x), tensor(t)) for x, t in zip(inputs, tangents)]
        out, t = forward_ad.unpack_dual(interpret(program, TORCH_OPS, lambda x: x, tensor,
                                                  xs)[-1])
        out = _array(out)
        return out, np.zeros_like(out) if t is None else _array(t)


def hvp(program, inputs, cotangent, tangents):
    """H ṫ per input: the gradient of ⟨Jᵀȳ, ṫ⟩, by double backward (create_graph=True)."""
    xs = [tensor(x, True) for x in inputs]
    out = interpret(program, TORCH_OPS, lambda x: x, tensor, xs)[-1]
    return double_backward(out, xs, cotangent, tangents)


def double_backward(out, leaves, cotangent, tangents):
    """∂/∂x ⟨Jᵀ cotangent, ṫ⟩ for every leaf, on a graph already built (numpy out)."""
    zero = [np.zeros(tuple(x.shape), torch_dtype(x)) for x in leaves]
    if not out.requires_grad:
        return zero
    grads = torch.autograd.grad(out, leaves, tensor(cotangent),
                                create_graph=True, allow_unused=True)
    inner = sum((g * tensor(t)).sum() for g, t in zip(grads, tangents)
                if g is not None and g.requires_grad)
    if not isinstance(inner, torch.Tensor):
        return zero
    # (retain_graph: this walks the output's graph again, whose saved values a session's
    # later backward of the same output still needs)
    hs = torch.autograd.grad(inner, leaves, allow_unused=True, retain_graph=True)
    return [z if h is None else _array(h) for h, z in zip(hs, zero)]


def intermediates(case):
    """Every value of the case in torch (float64) and the cotangent reaching it."""
    p = case.program
    values = interpret(p if p.dtype == "float64" else p.with_dtype("float64"), TORCH_OPS,
                       lambda x: torch.tensor(np.asarray(x, np.float64), requires_grad=True),
                       lambda a: torch.tensor(np.asarray(a, np.float64)), case.inputs)
    for v in values:
        if v.requires_grad:
            v.retain_grad()
    if values[-1].requires_grad:
        values[-1].backward(torch.tensor(np.asarray(case.cotangent, np.float64)))
    return ([v.detach().numpy() for v in values],
            [None if v.grad is None else v.grad.numpy() for v in values])


def torch_dtype(x):
    """numpy's dtype for a tensor's."""
    return np_dtype(str(x.dtype).removeprefix("torch."))


def op_vjp(name, values, attrs, cotangent):
    """One operation's forward value and the VJP of `cotangent` per operand (the unit
    tests' reference)."""
    xs = [tensor(v, True) for v in values]
    out = TORCH_OPS[name](*xs, **CATALOGUE[name].complete(attrs))
    grads = torch.autograd.grad(out, xs, tensor(cotangent), allow_unused=True)
    return out.detach().numpy(), [
        torch.zeros_like(x).numpy() if g is None else g.numpy() for x, g in zip(xs, grads)]


class TorchEngine:
    """PyTorch autograd through the adapter protocol (graph form)."""

    name = "torch"
    ops = TORCH_OPS

    dtypes = ("float64", "float32", "float16", "bfloat16")
    session = {"read_early": True, "second_gradient": True,  # (gradients: retain_graph)
               "assign": True, "accumulate": True}

    def leaf(self, array):
        return tensor(array, True)

    def assign(self, leaf, array):
        with torch.no_grad():  # as an optimiser's step: the graphs built before are stale
            leaf.copy_(tensor(array))

    def constant(self, array):
        return tensor(array)

    def backward(self, output, cotangent):
        if output.requires_grad:  # (retain_graph: a session differentiates it again)
            output.backward(tensor(cotangent), retain_graph=True)

    def grad(self, leaf):
        return leaf.grad

    def zero_grad(self, leaf):
        leaf.grad = None

    def gradients(self, output, leaves, cotangent):
        if not output.requires_grad:  # the output uses no input
            return [torch.zeros_like(x) for x in leaves]
        grads = torch.autograd.grad(output, leaves, tensor(cotangent), allow_unused=True,
                                    retain_graph=True)  # a session takes it again
        return [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]

    def to_numpy(self, value):
        return _array(value)
