"""PyTorch autograd, eager (the suite's own torch reference, as an engine under test)."""

import torch

from ..torch_backend import TorchEngine


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
        inner = sum((g * torch.as_tensor(t)).sum() for g, t in zip(grads, tangents)
                    if g is not None)
        if not isinstance(inner, torch.Tensor) or not inner.requires_grad:
            return torch.zeros_like(output)
        (jt,) = torch.autograd.grad(inner, u, allow_unused=True)
        return torch.zeros_like(output) if jt is None else jt

    def hvp(self, output, leaves, cotangent, tangents):
        """Double backward: the gradient of ⟨Jᵀ cotangent, ṫ⟩ built with create_graph."""
        zero = [torch.zeros_like(x) for x in leaves]
        if not output.requires_grad:
            return zero
        grads = torch.autograd.grad(output, leaves, torch.as_tensor(cotangent),
                                    create_graph=True, allow_unused=True)
        inner = sum((g * torch.as_tensor(t)).sum() for g, t in zip(grads, tangents)
                    if g is not None and g.requires_grad)
        if not isinstance(inner, torch.Tensor):
            return zero
        hs = torch.autograd.grad(inner, leaves, allow_unused=True)
        return [z if h is None else h for h, z in zip(hs, zero)]


engine = TorchEager()
