"""Gradients against the closed forms of matrix calculus (the seeds' derivations)."""

import numpy as np
import pytest

from mflow import Node, det, exp, inv
from tests.helpers import assert_close, sample

SHAPES = [(1, 1), (3, 2), (2, 5), (4, 4)]


@pytest.mark.parametrize("m,n", SHAPES)
@pytest.mark.parametrize("seed", range(3))
def test_bilinear_form(m, n, seed):
    """f = aᵀ X b  =>  ∂f/∂X = a bᵀ, ∂f/∂a = X b, ∂f/∂b = Xᵀ a."""
    rng = np.random.default_rng(seed)
    a, x, b = rng.normal(size=(m, 1)), rng.normal(size=(m, n)), rng.normal(size=(n, 1))
    A, X, B = (Node(v, requires_grad=True) for v in (a, x, b))
    (A.T @ X @ B).backward()
    assert_close(X.grad, a @ b.T)
    assert_close(A.grad, x @ b)
    assert_close(B.grad, x.T @ a)


@pytest.mark.parametrize("m,n", SHAPES)
@pytest.mark.parametrize("seed", range(3))
def test_exp_of_linear_map(m, n, seed):
    """f = aᵀ exp(X b)  =>  ∂f/∂X = (a ⊙ exp(X b)) bᵀ."""
    rng = np.random.default_rng(seed)
    a, x, b = rng.normal(size=(m, 1)), rng.normal(size=(m, n)), rng.normal(size=(n, 1)) / n
    X = Node(x, requires_grad=True)
    (Node(a).T @ exp(X @ Node(b))).backward()
    assert_close(X.grad, (a * np.exp(x @ b)) @ b.T)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(3))
def test_determinant(n, seed):
    """d det X = det X tr(X⁻¹ dX)  =>  ∂ det X/∂X = det X X⁻ᵀ."""
    x = sample("invertible", (n, n), np.random.default_rng(seed))
    X = Node(x, requires_grad=True)
    det(X).backward()
    assert_close(X.grad, np.linalg.det(x) * np.linalg.inv(x).T)


@pytest.mark.parametrize("x,adjugate", [
    ([[1.0, 2.0], [2.0, 4.0]], [[4.0, -2.0], [-2.0, 1.0]]),  # [[d, -b], [-c, a]]
    ([[0.0]], [[1.0]]),                                        # det x = x
    (np.outer([1.0, 2, 3], [4.0, 5, 6]), np.zeros((3, 3))),    # rank n - 2: no (n-1)-minor
    ([[1.0, 2, 0], [2, 4, 0], [0, 0, 1]], [[4.0, -2, 0], [-2, 1, 0], [0, 0, 0]]),
], ids=["rank-1 2x2", "zero 1x1", "rank-1 3x3", "rank-2 3x3"])
def test_determinant_gradient_at_singular_matrices(x, adjugate):
    """d det X = tr(adj X dX): the gradient is adj(X)ᵀ, singular X included (det X X⁻ᵀ
    raised numpy's LinAlgError on these). JAX agrees; torch 2.13 returns 0 on the
    rank n - 1 ones (pytorch#104675), which is why the fuzzer keeps det's operands
    invertible."""
    X = Node(np.array(x), requires_grad=True)
    det(X).backward()
    assert_close(X.grad, np.array(adjugate).T)


def test_determinant_gradient_at_a_singular_matrix_equals_jax():
    """Rank 3, and LU meets an exact zero pivot (det X X⁻ᵀ raised; a matrix that is
    singular only up to rounding does not tell the two rules apart)."""
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    x = np.array([[1.0, 2, 3, 4], [2, 4, 6, 8], [0, 1, -1, 2], [3, 0, 1, 1]])
    X = Node(x, requires_grad=True)
    det(X).backward()
    expected = np.asarray(jax.grad(jnp.linalg.det)(x))
    assert np.abs(expected).max() > 1
    assert_close(X.grad, expected)


def test_determinant_gradient_of_non_finite_input_is_nan():
    """The SVD raises on NaN; the gradient is NaN, as det X X⁻ᵀ gave before."""
    X = Node(np.array([[1.0, np.nan], [0.0, 1.0]]), requires_grad=True)
    with np.errstate(invalid="ignore"):
        det(X).backward()
    assert np.isnan(X.grad).all()


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(3))
def test_inverse(n, seed):
    """d X⁻¹ = -X⁻¹ dX X⁻¹  =>  the VJP of a cotangent G is -X⁻ᵀ G X⁻ᵀ; and along
    a direction V, ⟨G, d X⁻¹⟩ = ⟨VJP, V⟩."""
    rng = np.random.default_rng(seed)
    x = sample("invertible", (n, n), rng)
    g, v = rng.normal(size=(n, n)), rng.normal(size=(n, n))
    X = Node(x, requires_grad=True)
    inv(X).backward(g)
    xi = np.linalg.inv(x)
    assert_close(X.grad, -xi.T @ g @ xi.T)
    assert_close(np.sum(X.grad * v), np.sum(g * (-xi @ v @ xi)))


@pytest.mark.parametrize("seed", range(3))
def test_trace_of_product(seed):
    """f = tr(A X B)  =>  ∂f/∂X = Aᵀ Bᵀ."""
    rng = np.random.default_rng(seed)
    a, x, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 5)), rng.normal(size=(5, 3))
    X = Node(x, requires_grad=True)
    (Node(a) @ X @ Node(b)).trace().backward()
    assert_close(X.grad, a.T @ b.T)


@pytest.mark.parametrize("seed", range(3))
def test_least_squares(seed):
    """L = mean((X w - y)²) over n samples  =>  ∂L/∂w = 2/n Xᵀ (X w - y)."""
    rng = np.random.default_rng(seed)
    x, w, y = rng.normal(size=(20, 3)), rng.normal(size=(3, 1)), rng.normal(size=(20, 1))
    W = Node(w, requires_grad=True)
    r = Node(x) @ W - Node(y)
    (r * r).mean().backward()
    assert_close(W.grad, 2 / 20 * x.T @ (x @ w - y))
