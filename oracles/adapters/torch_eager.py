"""PyTorch autograd, eager (the suite's own torch reference, as an engine under test)."""

import torch

from ..torch_backend import TorchEngine, double_backward, tensor


class TorchEager(TorchEngine):
    name = "torch"
    version = torch.__version__

    def jvp(self, output, leaves, tangents):
        """J ṫ on the graph already built, by the double-backward trick (as
        torch.autograd.functional.jvp): J ṫ = d/du ⟨Jᵀ u, ṫ⟩, so this also checks
        that torch's backward is itself differentiable."""
        if not output.requires_grad:
            return torch.zeros_like(output)
        u = torch.zeros_like(output, requires_grad=True)
        grads = torch.autograd.grad(output, leaves, u, create_graph=True, allow_unused=True)
        inner = sum((g * tensor(t)).sum() for g, t in zip(grads, tangents)
                    if g is not None)
        if not isinstance(inner, torch.Tensor) or not inner.requires_grad:
            return torch.zeros_like(output)
        (jt,) = torch.autograd.grad(inner, u, allow_unused=True, retain_graph=True)  # (as hvp)
        return torch.zeros_like(output) if jt is None else jt

    def hvp(self, output, leaves, cotangent, tangents):
        """Double backward: the gradient of ⟨Jᵀ cotangent, ṫ⟩ built with create_graph."""
        return double_backward(output, leaves, cotangent, tangents)


engine = TorchEager()
