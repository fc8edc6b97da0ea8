"""Ready adapters for other libraries, each through the protocol of ../engine.py:

    mflow.oracles.adapters.torch_eager     PyTorch autograd (graph form)
    mflow.oracles.adapters.torch_custom    PyTorch with your own torch.autograd.Function rules
    mflow.oracles.adapters.jax_vjp         JAX's jax.vjp (functional form)
    mflow.oracles.adapters.jax_custom      JAX with your own jax.custom_vjp / custom_jvp rules
    mflow.oracles.adapters.autograd        HIPS autograd's make_vjp (functional form)
    mflow.oracles.adapters.mygrad          MyGrad (graph form)
    mflow.oracles.adapters.tinygrad        tinygrad (graph form, CPU device)

Each maps every operation the library has natively, with the library's own
functions (a composition of its own functions where it has no single one, said
where it is done), and declares what it lacks by leaving it out of `ops` or
`attrs`. Name one with --mflow-engine mflow.oracles.adapters.NAME.
"""


def index(i):
    """getitem's attribute as an index: a slice stays, a tuple of ints becomes a list."""
    return i if isinstance(i, slice) else list(i)


def same_padding(kernel_shape):
    """((top, bottom), (left, right)) of mflow's 'same' padding: the extra row or
    column of an even kernel goes after, as in torch and JAX."""
    (kh, kw) = kernel_shape
    return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)


def reduced(f):
    """sum / mean as mflow has them: keepdims, and (1, 1) for the full reduction."""
    def reduce(x, axis):
        return f(x, axis=axis, keepdims=True).reshape(1, 1) if axis is None else \
            f(x, axis=axis, keepdims=True)
    return reduce
