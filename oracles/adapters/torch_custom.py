"""PyTorch with your own gradient rules: torch.autograd.Function classes (or any
function of tensors) in place of some of torch's operations.

    from mflow.oracles.adapters.torch_custom import TorchCustomRules
    engine = TorchCustomRules({"tanh": MyTanh})          # my_rules.py
    # pytest --mflow-fuzz --mflow-engine my_rules:engine

A rule is called as Rule.apply(*operands, *attribute values), the attributes in
the order its catalogue record (mflow.oracles.catalogue) lists them (an
autograd.Function takes no keyword arguments); its graphs are drawn like the
built-in operation's. Every other operation stays torch's own. `only=[...]`
limits the graphs to some operations (yours and those around them). Forward mode is checked by the
double-backward trick (torch_eager.py), so a backward that torch cannot
differentiate with respect to its cotangent (one that leaves torch, through
.numpy()) is found too."""

import torch

from ..catalogue import CATALOGUE as OPS
from ..catalogue import register
from ..torch_backend import TORCH_OPS
from .torch_eager import TorchEager


def as_op(name, rule):
    apply = getattr(rule, "apply", rule)
    order = list(OPS[name].attrs)

    def op(*operands, **attrs):
        return apply(*operands, *(attrs[k] for k in order if k in attrs))
    op.__name__ = f"{name}:{getattr(rule, '__name__', 'rule')}"
    return op


class TorchCustomRules(TorchEager):
    def __init__(self, rules=None, name="torch+custom", only=None, records=()):
        self.records = tuple(records)
        register(*self.records)  # operations of your own: their rules are in `rules`
        unknown = sorted(set(rules or {}) - set(OPS))
        if unknown:
            raise ValueError(f"rules for {unknown}: not operations the suite knows "
                             f"({', '.join(sorted(OPS))})")
        self.name, self.version = name, torch.__version__
        self.rules = dict(rules or {})
        ops = {**TORCH_OPS, **{k: as_op(k, r) for k, r in self.rules.items()}}
        self.ops = {k: v for k, v in ops.items() if only is None or k in only}


class _Tanh(torch.autograd.Function):
    """An example rule: tanh with its derivative 1 - tanh², from the saved output."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


engine = TorchCustomRules({"tanh": _Tanh}, name="torch+custom tanh")
