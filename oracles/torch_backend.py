"""PyTorch's counterpart of every mflow operation, by name: the reference table.

Each entry takes torch tensors (2-D) and mflow's attributes and returns a 2-D
tensor, so that any mflow graph can be replayed in torch op by op.
"""

import warnings

import torch

from mflow.ops import OPS

F = torch.nn.functional
# torch notes that 'same' padding with an even kernel copies the input; the result is right
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")


def _index(rows, cols):
    as_list = [i if isinstance(i, slice) else list(i) for i in (rows, cols)]
    return as_list


def _getitem(x, rows, cols):
    r, c = _index(rows, cols)
    return x[r][:, c]  # one axis at a time: torch's x[list, list] would pair the indices


def _reduce(f):
    def reduced(x, axis):
        return f(x).reshape(1, 1) if axis is None else f(x, dim=axis, keepdim=True)
    return reduced


TORCH_OPS = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "neg": torch.neg,
    "pow": lambda x, p: x ** p,
    "relu": torch.relu,
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "sin": torch.sin,
    "cos": torch.cos,
    "matmul": torch.matmul,
    "transpose": lambda x: x.T,
    "sum": _reduce(torch.sum),
    "mean": _reduce(torch.mean),
    "concat": lambda *xs, axis: torch.cat(xs, dim=axis),
    "getitem": _getitem,
    "softmax": lambda x, axis: torch.softmax(x, dim=axis),
    "log_softmax": lambda x, axis: torch.log_softmax(x, dim=axis),
    "trace": lambda x: torch.trace(x).reshape(1, 1),
    "inv": torch.linalg.inv,
    "det": lambda x: torch.linalg.det(x).reshape(1, 1),
    "conv2d": lambda image, kernel, stride, padding: F.conv2d(
        image[None, None], kernel[None, None], stride=stride, padding=padding)[0, 0],
}


def vjp(name, values, attrs, cotangent):
    """Forward value and the VJP of `cotangent` for each operand, as numpy arrays."""
    xs = [torch.tensor(v, requires_grad=True) for v in values]
    out = TORCH_OPS[name](*xs, **OPS[name].complete(attrs))
    grads = torch.autograd.grad(out, xs, torch.tensor(cotangent), allow_unused=True)
    return out.detach().numpy(), [
        torch.zeros_like(x).numpy() if g is None else g.numpy() for x, g in zip(xs, grads)]


class TorchEngine:
    """PyTorch autograd as a reference, through the adapter protocol."""

    name = "torch"
    ops = TORCH_OPS

    def leaf(self, array):
        return torch.tensor(array, requires_grad=True)

    def constant(self, array):
        return torch.tensor(array)

    def gradients(self, output, leaves, cotangent):
        if not output.requires_grad:  # the output uses no input
            return [torch.zeros_like(x) for x in leaves]
        grads = torch.autograd.grad(output, leaves, torch.tensor(cotangent), allow_unused=True)
        return [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]

    def to_numpy(self, value):
        return value.detach().numpy()
