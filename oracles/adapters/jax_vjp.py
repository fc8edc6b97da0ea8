"""JAX: jax.vjp of the program written with jax.numpy, eagerly (functional form)."""

import jax
import jax.numpy as jnp
import numpy as np

from ..jax_backend import JAX_OPS  # also enables float64 (jax_enable_x64)


class JaxVjp:
    name = "jax"
    version = jax.__version__
    dtypes = ("float64", "float32", "float16", "bfloat16")
    session = {"read_early": True, "second_gradient": True}  # functional: each call afresh

    def __init__(self, ops=None, name=None):
        self.ops = dict(JAX_OPS if ops is None else ops)
        self.name = name or self.name

    def constant(self, array):
        return jnp.asarray(array)

    def vjp(self, fn, inputs, cotangent):
        out, pullback = jax.vjp(fn, *[jnp.asarray(x) for x in inputs])
        return out, list(pullback(jnp.asarray(cotangent, out.dtype)))

    def jvp(self, fn, inputs, tangents):
        return jax.jvp(fn, tuple(jnp.asarray(x) for x in inputs),
                       tuple(jnp.asarray(t) for t in tangents))

    def hvp(self, fn, inputs, cotangent, tangents):
        """Reverse over reverse: the gradient of ⟨Jᵀ cotangent, ṫ⟩ (a custom_vjp rule
        is differentiated through its bwd, which has no forward mode)."""
        def inner(*xs):
            out, pullback = jax.vjp(fn, *xs)
            grads = pullback(jnp.asarray(cotangent, out.dtype))
            return sum(jnp.vdot(g, jnp.asarray(t)) for g, t in zip(grads, tangents))
        xs = tuple(jnp.asarray(x) for x in inputs)
        return list(jax.grad(inner, argnums=tuple(range(len(xs))))(*xs))

    def to_numpy(self, value):
        return np.asarray(value)


engine = JaxVjp()
