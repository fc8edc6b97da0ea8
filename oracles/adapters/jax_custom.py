"""JAX with your own rules: jax.custom_vjp or jax.custom_jvp functions in place of
some of jax.numpy's operations.

    from mflow.oracles.adapters.jax_custom import JaxCustomRules
    engine = JaxCustomRules({"tanh": my_tanh})           # my_rules.py

A rule is called as rule(*operands, *attribute values), the attributes in the
order its catalogue record (mflow.oracles.catalogue) lists them (mark them
nondiff_argnums). Every other operation stays jax.numpy's own; `only=[...]` limits the graphs."""

import jax
import jax.numpy as jnp

from ..catalogue import CATALOGUE as OPS
from ..catalogue import register
from ..jax_backend import JAX_OPS
from .jax_vjp import JaxVjp
from .torch_custom import as_op


class JaxCustomRules(JaxVjp):
    def __init__(self, rules=None, name="jax+custom", only=None, records=()):
        self.records = tuple(records)
        register(*self.records)  # operations of your own: their rules are in `rules`
        unknown = sorted(set(rules or {}) - set(OPS))
        if unknown:
            raise ValueError(f"rules for {unknown}: not operations the suite knows")
        self.rules = dict(rules or {})
        ops = {**JAX_OPS, **{k: as_op(k, r) for k, r in self.rules.items()}}
        super().__init__({k: v for k, v in ops.items() if only is None or k in only}, name)
        # JAX has no forward mode through a custom_vjp rule (a custom_jvp one has both)
        self.jvp_ops = sorted(k for k in self.ops
                              if not isinstance(self.rules.get(k), jax.custom_vjp))


@jax.custom_vjp
def _sigmoid(x):
    """An example rule: sigmoid, its derivative s (1 - s) from the saved output."""
    return 1 / (1 + jnp.exp(-x))


def _sigmoid_fwd(x):
    s = jax.nn.sigmoid(x)
    return s, s


def _sigmoid_bwd(s, g):
    return (g * s * (1 - s),)


_sigmoid.defvjp(_sigmoid_fwd, _sigmoid_bwd)

engine = JaxCustomRules({"sigmoid": _sigmoid}, name="jax+custom sigmoid")
