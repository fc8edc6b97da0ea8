"""The shipped adapters (mflow.oracles.adapters) on the libraries they adapt: each
loads and passes the protocol's checks; every operation it maps agrees with the
references on a fixed case; the defects the suite found in those libraries are
found again (each a real bug, with its minimal program: README, "What the suite
found in real libraries"); custom rules are checked, and a wrong one is caught.

The libraries are installed by the test environment (tox.ini); a library that is
missing skips its adapter's tests with the reason, except under
MFLOW_REQUIRE_ADAPTERS=1 (.ci/run), where it fails."""

import importlib
import os
import warnings

import numpy as np
import pytest
from mflow.oracles.catalogue import CATALOGUE
from mflow.oracles.checker import Checker
from mflow.oracles.engine import capabilities, check_adapter, load_engine, run_engine
from mflow.oracles.kinks import kink_table
from mflow.oracles.program import HALF, Case, Program, Step, np_dtype
from mflow.oracles.verdict import (
    EngineCrash,
    ForwardMismatch,
    GradientMismatch,
    NumericallyUnsafe,
    ShapeOrDtypeMismatch,
)

from mflow.ops import OPS

from .helpers import operands

ADAPTERS = {"torch_eager": "torch", "torch_custom": "torch", "jax_vjp": "jax",
            "jax_custom": "jax", "autograd": "autograd", "mygrad": "mygrad",
            "tinygrad": "tinygrad"}


def adapter(name):
    """The adapter's engine, or a skip (a failure under MFLOW_REQUIRE_ADAPTERS=1)."""
    try:
        importlib.import_module(ADAPTERS[name])
    except ImportError as e:
        if os.environ.get("MFLOW_REQUIRE_ADAPTERS") == "1":
            raise
        pytest.skip(f"{ADAPTERS[name]} is not installed ({e})")
    return load_engine(f"mflow.oracles.adapters.{name}")


def one_step_case(name, attrs, dtype, seed=0):
    """One operation on inputs inside its domain, 3x3 (a 2x2 kernel for conv2d; where 3x3
    does not fit the attributes, the shapes of the operation's first sample)."""
    from mflow.oracles.catalogue import CATALOGUE

    from mflow.shapes import ShapeError
    rng = np.random.default_rng(seed)
    arity = OPS[name].arity or 2
    shapes = [(3, 3)] * arity if name != "conv2d" else [(4, 5), (2, 2)]
    rec = CATALOGUE[name]
    try:
        rec.shape(*shapes, **rec.complete(attrs))
    except ShapeError:
        shapes = list(rec.samples[0][0])
    if rec.fit is not None:  # attributes drawn to fit the operands (where's mask)
        attrs = {**attrs, **rec.fit(lambda lo, hi: lo, *shapes)}
    xs = operands(name, shapes, attrs, rng)
    program = Program(tuple(shapes), (Step(name, tuple(range(arity)), attrs),), dtype)
    return Case(program, tuple(x.astype(np_dtype(dtype)) for x in xs),
                rng.uniform(-1, 1, program.output_shape).astype(np_dtype(dtype)))


# What each library gets wrong on these one-step cases: (op, dtype) -> failure kind.
# Each is a real defect, triaged in the README and reproduced standalone below.
KNOWN = {
    "autograd": {("conv2d", "float64"): EngineCrash,   # pad_vjp() needs `mode` ('same')
                 ("conv2d", "float32"): EngineCrash,
                 ("pad", "float64"): EngineCrash, ("pad", "float32"): EngineCrash,
                 # the JVPs of np.maximum, np.minimum, max, min and where are float64
                 **{(op, "float32"): ShapeOrDtypeMismatch
                    for op in ("relu", "maximum", "minimum", "max", "min", "where")}},
    "mygrad": {("pow", "float32"): ShapeOrDtypeMismatch,  # float32 ** 2 -> float64
               ("clip", "float32"): ShapeOrDtypeMismatch},  # clip(float32, -1.0, 1.0): float64
    "tinygrad": {("erf", "float64"): ForwardMismatch},  # erf a 1e-7 approximation, in float64
}
VARIANTS = {"getitem": {"rows": (2, 0, 2), "cols": slice(0, 3, 2)}, "conv2d": {"padding": "same"},
            "sum": {"axis": 0}, "pow": {"p": 2}, "softmax": {"axis": 0}}


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_adapter_loads_and_declares(name):
    engine = adapter(name)
    check_adapter(engine, name)
    caps = capabilities(engine)
    assert caps.version, f"{name}: the library's version is recorded in reports"
    assert set(engine.ops) <= set(OPS) and len(engine.ops) >= 20, sorted(engine.ops)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_every_mapped_operation_agrees(name, dtype):
    """Each operation the adapter maps, once, checked in full (references, finite
    differences); a library's known defect must still be found, as its kind. Half
    precision where the adapter declares it (not linear algebra)."""
    engine = adapter(name)
    checker = Checker(engine)
    caps = capabilities(engine)
    if dtype not in caps.dtypes:
        pytest.skip(f"{name} declares {caps.dtypes}")
    wrong = {}
    for op in sorted(engine.ops):
        if dtype in HALF and not CATALOGUE[op].half:
            continue
        attrs = dict(VARIANTS.get(op, {}))
        for k, allowed in caps.attrs.get(op, {}).items():
            if attrs.get(k, OPS[op].attrs[k]) not in allowed:
                attrs[k] = allowed[0]
        outcome = checker.judge(one_step_case(op, attrs, dtype)).outcome
        expected = KNOWN.get(name, {}).get((op, dtype))
        if (expected is None) != (outcome is None) or (
                expected is not None and not isinstance(outcome, expected)):
            wrong[op] = f"expected {expected and expected.__name__}, got {outcome!r}"[:400]
    assert not wrong, wrong


# --- the defects found in real libraries, found again ------------------------------

def _case(inputs, steps, dtype="float64", cotangent=None):
    dt = np_dtype(dtype)
    inputs = [np.asarray(x, dt) for x in inputs]
    program = Program(tuple(x.shape for x in inputs), tuple(steps), dtype)
    cot = np.ones(program.output_shape, dt) if cotangent is None else cotangent
    return Case(program, tuple(inputs), np.asarray(cot, dt))


def test_tinygrad_sum_of_a_concatenation_with_itself_is_wrong():
    """tinygrad 0.14.0: a.cat(a).sum() is 24 for [[0, 1], [2, 3]] (12 is right)."""
    engine = adapter("tinygrad")
    case = _case([[[0.0, 1.0], [2.0, 3.0]]], [Step("concat", (0, 0), {"axis": 0}),
                                               Step("sum", (1,), {"axis": None})])
    assert isinstance(Checker(engine).judge(case).outcome, (GradientMismatch, Exception))
    assert run_engine(engine, case.program, case.inputs, case.cotangent).forward[0, 0] != 12.0
    # blamed on sum, over the value concat made (a fresh (4, 2) input sums right)
    from mflow.oracles.local import local_disagreement
    blamed = local_disagreement(engine, case)
    assert blamed["op"] == "sum" and blamed["variant"]["operands made by"] == ["concat"]


def test_tinygrad_sum_of_a_tensor_repeated_is_wrong():
    """tinygrad 0.14.0, found again by an engine-session campaign through tile (repeat):
    `Tensor([[0., 1], [2, 3]]).repeat(1, 2).sum()` is 24 (12 is right; sum(0) and
    `.contiguous().sum()` are right), the self-concatenation bug above."""
    engine = adapter("tinygrad")
    case = _case([[[0.0, 1.0], [2.0, 3.0]]], [Step("tile", (0,), {"reps": (1, 2)}),
                                               Step("sum", (1,), {"axis": None})])
    assert isinstance(Checker(engine).judge(case).outcome, (ForwardMismatch, Exception))
    assert run_engine(engine, case.program, case.inputs, case.cotangent).forward[0, 0] != 12.0


def test_tinygrad_sum_of_a_concatenation_with_its_negation_is_wrong():
    """tinygrad 0.14.0: once a gradient of it was taken, (-x).cat(x, dim=1).sum() is 1
    for x = ones(6, 1) (0 is right), and stays 1 for fresh tensors of that graph in the
    same process. In tinygrad alone, in a fresh process:"""
    import subprocess
    import sys
    adapter("tinygrad")
    alone = subprocess.run([sys.executable, "-c", (
        "import numpy as np\n"
        "from tinygrad import Tensor\n"
        "x = Tensor(np.ones((6, 1)))\n"
        "y = (-x).cat(x, dim=1).sum(keepdim=True)\n"
        "y.gradient(x, gradient=Tensor(np.ones((1, 1))))[0].numpy()\n"
        "print(y.numpy().item())\n")], capture_output=True, text=True, check=True,
        env={**os.environ, "DEV": os.environ.get("DEV", "CPU")})
    assert float(alone.stdout.split()[-1]) == 1.0
    engine = adapter("tinygrad")  # and through the suite: found by fan-out-heavy graphs
    case = _case([np.ones((6, 1))], [Step("neg", (0,)), Step("concat", (1, 0), {"axis": 1}),
                                     Step("sum", (2,), {"axis": None})])
    assert isinstance(Checker(engine).judge(case).outcome, ForwardMismatch)


def test_tinygrad_float64_sin_loses_accuracy():
    """tinygrad 0.14.0 computes sin itself (a polynomial after argument reduction): in
    float64, sin(250.2) is off by 5.7e-9 relative (numpy, torch and JAX agree to the
    last bit; sin(100) and sin(1000) are right to 2e-16)."""
    adapter("tinygrad")
    from tinygrad import Tensor, dtypes
    got = Tensor([250.2], dtype=dtypes.float64).sin().numpy()[0]
    assert abs(got - np.sin(250.2)) / abs(np.sin(250.2)) > 1e-9
    right = Tensor([100.0, 1000.0], dtype=dtypes.float64).sin().numpy()
    np.testing.assert_allclose(right, np.sin([100.0, 1000.0]), rtol=1e-15)


def test_mygrad_float32_with_a_python_number_becomes_float64():
    """MyGrad 2.5.0 on numpy 2: float32 * 2.0 and power(float32, 2) are float64 (numpy
    keeps float32, NEP 50; MyGrad's x ** 2 alone, special-cased, stays float32)."""
    import mygrad as mg
    adapter("mygrad")
    x = np.ones(2, np.float32)
    assert (mg.Tensor(x) * 2.0).dtype == np.float64 and (x * 2.0).dtype == np.float32
    assert mg.power(mg.Tensor(x), 2).dtype == np.float64 and np.power(x, 2).dtype == np.float32


def test_autograd_pad_without_mode_has_no_gradient():
    """autograd 1.9.1: np.pad's default mode is 'constant', but the VJP requires `mode`."""
    import autograd.numpy as anp
    from autograd import grad
    adapter("autograd")
    with pytest.raises(TypeError, match="mode"):
        grad(lambda x: anp.sum(anp.pad(x, 1)))(np.ones((2, 2)))
    assert grad(lambda x: anp.sum(anp.pad(x, 1, mode="constant")))(np.ones((2, 2))).sum() == 4


def test_autograd_maximum_derivative_is_float64_for_float32():
    """autograd 1.9.1: np.maximum's derivative (balanced_eq) is float64 whatever the
    operands: the forward-mode tangent of relu on float32 is float64 (and so is the
    gradient of a bare float32 array; through a tuple of inputs it is cast back)."""
    import autograd.numpy as anp
    from autograd import grad, make_jvp
    adapter("autograd")
    x = np.array([0.5, -1.0], np.float32)
    assert make_jvp(lambda x: anp.maximum(x, 0.0))(x)(np.ones(2, np.float32))[1].dtype == \
        np.float64
    assert grad(lambda x: anp.sum(anp.maximum(x, 0.0)))(x).dtype == np.float64
    assert make_jvp(anp.tanh)(x)(np.ones(2, np.float32))[1].dtype == np.float32


def test_autograd_chooser_and_where_tangents_are_float64_for_float32():
    """autograd 1.9.1: the forward-mode tangents of np.minimum, np.max, np.min and np.where
    on float32 are float64 too (np.maximum's above; np.tanh's stays float32)."""
    import autograd.numpy as anp
    from autograd import make_jvp
    adapter("autograd")
    x, t = np.array([0.5, -1.0, 2.0], np.float32), np.ones(3, np.float32)
    mask = np.array([True, False, True])
    for f in (lambda x: anp.minimum(x, 0.0), anp.max, anp.min,
              lambda x: anp.where(mask, x, 2 * x)):
        assert make_jvp(f)(x)(t)[1].dtype == np.float64


def test_autograd_has_no_gradient_of_cumprod_or_flip():
    """autograd 1.9.1 defines no VJP of np.cumprod or np.flip (its adapter leaves them out)."""
    import autograd.numpy as anp
    from autograd import grad
    adapter("autograd")
    for f in (anp.cumprod, anp.flip):
        with pytest.raises(NotImplementedError):
            grad(lambda x, f=f: anp.sum(f(x)))(np.ones(3))


def test_mygrad_maximum_at_a_tie_loses_the_gradient():
    """MyGrad 2.5.0: maximum and minimum give neither operand any gradient where they
    are equal, so maximum(x, x), which is x, has gradient 0 (torch and JAX give 1/2 to
    each). Found by the fuzzer once it drew ties on purpose (maximum(x0, x0), 1 step)."""
    import mygrad as mg
    adapter("mygrad")
    for f in (mg.maximum, mg.minimum):
        x = mg.Tensor([1.0, 2.0])
        f(x, x).sum().backward()
        assert np.array_equal(x.grad, [0.0, 0.0])
    engine = adapter("mygrad")
    case = _case([[[1.0, -2.0]]], [Step("maximum", (0, 0))])
    assert isinstance(Checker(engine).judge(case).outcome, GradientMismatch)


def test_mygrad_max_at_a_tie_gives_the_first_all():
    """MyGrad 2.5.0: max and min over tied elements give the whole gradient to the
    first of them (torch's amax and JAX's max share it evenly): a convention, a valid
    subgradient, and a disagreement the suite reports at every tie."""
    import mygrad as mg
    adapter("mygrad")
    x = mg.Tensor([1.0, 1.0])
    mg.max(x).backward()
    assert np.array_equal(x.grad, [1.0, 0.0])


def test_autograd_prod_at_an_exact_zero_is_nan():
    """autograd 1.9.1: prod's VJP divides the product by each operand, so an exact zero
    makes its own derivative NaN (for [0, 2] it is 2). Found once zeros were drawn on
    purpose (prod(x0) with x0 = [[-0.]], 1 step)."""
    import autograd.numpy as anp
    from autograd import grad
    adapter("autograd")
    with np.errstate(all="ignore"):
        g = grad(lambda x: anp.prod(x))(np.array([0.0, 2.0]))
    assert np.isnan(g[0]) and g[1] == 0.0


def test_autograd_norm_with_keepdims_has_a_gradient_of_the_wrong_shape():
    """autograd 1.9.1: the gradient of np.linalg.norm(x, axis=0, keepdims=True) has an
    extra axis: (1, 2, 2) for a (2, 2) x (without keepdims it is right)."""
    import autograd.numpy as anp
    from autograd import grad
    adapter("autograd")
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert grad(lambda x: anp.sum(anp.linalg.norm(x, axis=0, keepdims=True)))(x).shape == \
        (1, 2, 2)
    assert grad(lambda x: anp.sum(anp.linalg.norm(x, axis=0)))(x).shape == (2, 2)


def test_autograd_where_does_not_sum_a_broadcast_operands_gradient():
    """autograd 1.9.1: np.where's VJP returns a broadcast operand's gradient in the
    broadcast shape, (1, 2) for a (1, 1) operand, instead of summing it back."""
    import autograd.numpy as anp
    from autograd import grad
    adapter("autograd")
    mask = np.array([[False, True]])
    g = grad(lambda a: anp.sum(anp.where(mask, a, np.ones((1, 2)))))(np.array([[1.0]]))
    assert g.shape == (1, 2)


def test_tinygrad_max_pool_shares_a_tie_evenly():
    """tinygrad 0.14.0: max_pool2d shares a window's gradient evenly among tied maxima
    (torch and JAX give it all to the first): a convention, a valid subgradient. Found
    once ties were drawn on purpose (maxpool2d of a 3x3 with three zeros tied, 1 step)."""
    adapter("tinygrad")
    from tinygrad import Tensor
    x = Tensor(np.array([[0.0, 0.0], [-1.0, 0.0]]))
    (g,) = x[None, None].max_pool2d(2, 2).sum().gradient(x)
    np.testing.assert_allclose(g.numpy(), [[1 / 3, 1 / 3], [0.0, 1 / 3]])


def test_mygrad_clip_of_float32_is_float64():
    """MyGrad 2.5.0: clip(float32, -1.0, 1.0) is float64 (numpy's np.clip keeps float32)."""
    import mygrad as mg
    adapter("mygrad")
    x = np.array([0.5, 2.0, -3.0], np.float32)
    assert mg.clip(mg.Tensor(x), -1.0, 1.0).dtype == np.float64
    assert np.clip(x, -1.0, 1.0).dtype == np.float32


def test_tinygrad_float64_erf_is_a_float32_approximation():
    """tinygrad 0.14.0's erf is a polynomial approximation good to about 1e-7, in float64
    too: erf(0.5) is off by more than 1e-8 (scipy, torch and JAX agree to 1e-16)."""
    adapter("tinygrad")
    from scipy.special import erf
    from tinygrad import Tensor, dtypes
    got = Tensor([0.5, 1.3], dtype=dtypes.float64).erf().numpy()
    assert np.max(np.abs(got - erf([0.5, 1.3]))) > 1e-8


def test_tinygrad_erf_derivative_at_zero_is_zero():
    """tinygrad 0.14.0: erf'(0) is 0 in float64, float32 and float16 (2/√π = 1.128 is
    right, and tinygrad gives 1.128 at 1e-3): found by the float16 campaign, at an exact
    zero drawn on purpose; the checker finds it in float64 too."""
    engine = adapter("tinygrad")
    from tinygrad import Tensor, dtypes
    for dtype in (dtypes.float64, dtypes.float32, dtypes.float16):
        x = Tensor([0.0, 1e-3], dtype=dtype)
        (g,) = x.erf().sum().gradient(x)
        assert g.numpy()[0] == 0.0 and abs(float(g.numpy()[1]) - 1.128) < 0.01
    case = _case([[[0.0, 0.5]]], [Step("erf", (0,))], dtype="float32")  # (float64's erf
    assert isinstance(Checker(engine).judge(case).outcome, GradientMismatch)  # is 1e-7 off)


def test_tinygrad_float16_erf_of_small_values_is_wrong():
    """tinygrad 0.14.0's float16 erf: erf(1e-3) = -7.3e-4 (1.128e-3 is right: the sign
    is wrong) and erf(1e-2) = 0.0093 (0.01128), 18 % off; float32 is right to 1e-7."""
    engine = adapter("tinygrad")
    from tinygrad import Tensor, dtypes
    got = Tensor([1e-3, 1e-2], dtype=dtypes.float16).erf().numpy().astype(np.float64)
    assert got[0] < 0 and abs(got[1] - 0.01128) > 1e-3
    case = _case([[[1e-3, 1e-2]]], [Step("erf", (0,))], dtype="float16")  # (norm-wise: a
    # small element beside a large one is within the tolerance of the whole array)
    assert isinstance(Checker(engine).judge(case).outcome, ForwardMismatch)


def test_autograd_tanh_vjp_overflows_numerically_unsafe():
    """autograd 1.9.1's tanh VJP is g / cosh(x)**2: right (0) at x = 400, with an overflow
    warning: NumericallyUnsafe, counted; a failure only when asked for."""
    engine = adapter("autograd")
    case = _case([[[400.0, 0.5]]], [Step("tanh", (0,))])
    verdict = Checker(engine).judge(case)
    assert verdict.outcome is None and any("overflow" in w for w in verdict.warnings)
    assert isinstance(Checker(engine, fail_on_warnings=True).judge(case).outcome,
                      NumericallyUnsafe)
    # mflow's own tanh rule (g * (1 - y²)) does not warn
    assert Checker(load_engine("mflow"), fail_on_warnings=True).judge(case).outcome is None


def test_autograd_relu_at_zero_is_its_declared_convention():
    """np.maximum(x, 0) splits the tie: relu'(0) = 1/2, declared by the adapter, so the
    kink table reports it as that convention, not as a failure."""
    rows = [r for r in kink_table(adapter("autograd")) if r["op"] == "relu"]
    assert rows and all(r["agrees"] and r["as_declared"] and r["engine"] == 0.5 for r in rows)


# --- custom rules ------------------------------------------------------------------

def test_a_wrong_torch_custom_function_is_caught():
    import torch
    from mflow.oracles.adapters.torch_custom import TorchCustomRules
    adapter("torch_custom")

    class WrongTanh(torch.autograd.Function):  # derivative 1 - y, not 1 - y²
        @staticmethod
        def forward(ctx, x):
            y = torch.tanh(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y)

    case = one_step_case("tanh", {}, "float64")
    assert Checker(load_engine("mflow.oracles.adapters.torch_custom")).judge(case).outcome is None
    outcome = Checker(TorchCustomRules({"tanh": WrongTanh})).judge(case).outcome
    assert isinstance(outcome, GradientMismatch), outcome


def test_a_wrong_jax_custom_vjp_is_caught():
    import jax
    from mflow.oracles.adapters.jax_custom import JaxCustomRules
    adapter("jax_custom")

    @jax.custom_vjp
    def power(x, p):
        return x ** p

    power.defvjp(lambda x, p: (x ** p, (x, p)),
                 lambda res, g: (g * res[1] * res[0] ** res[1], None))  # p x^p, not p x^(p-1)
    case = one_step_case("pow", {"p": 3}, "float64")
    assert Checker(load_engine("mflow.oracles.adapters.jax_custom")).judge(case).outcome is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = Checker(JaxCustomRules({"pow": power})).judge(case).outcome
    assert isinstance(outcome, GradientMismatch), outcome


def test_a_custom_backward_that_is_not_differentiable_is_caught():
    """Right in value, so every first-order check passes; but the saved output is
    detached, so torch's double backward loses a term: second order sees it."""
    import torch
    from mflow.oracles.adapters.torch_custom import TorchCustomRules
    from mflow.oracles.verdict import HessianMismatch
    adapter("torch_custom")

    class DetachedTanh(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = torch.tanh(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y.detach() ** 2)

    case = one_step_case("tanh", {}, "float64")
    engine = TorchCustomRules({"tanh": DetachedTanh})
    assert Checker(engine, modes=("vjp", "jvp")).judge(case).outcome is None
    outcome = Checker(engine).judge(case).outcome
    assert isinstance(outcome, HessianMismatch), outcome


def test_a_jax_custom_vjp_whose_bwd_is_not_differentiable_is_caught():
    import jax
    import jax.numpy as jnp
    from mflow.oracles.adapters.jax_custom import JaxCustomRules
    from mflow.oracles.verdict import HessianMismatch
    adapter("jax_custom")

    @jax.custom_vjp
    def exp(x):
        return jnp.exp(x)

    exp.defvjp(lambda x: (jnp.exp(x), jnp.exp(x)),
               lambda y, g: (g * jax.lax.stop_gradient(y),))  # right value, no 2nd order
    case = one_step_case("exp", {}, "float64")
    engine = JaxCustomRules({"exp": exp})
    assert Checker(engine, modes=("vjp",)).judge(case).outcome is None
    outcome = Checker(engine).judge(case).outcome
    assert isinstance(outcome, HessianMismatch), outcome


def test_rules_for_unknown_operations_are_refused():
    from mflow.oracles.adapters.torch_custom import TorchCustomRules
    adapter("torch_custom")
    with pytest.raises(ValueError, match="nope"):
        TorchCustomRules({"nope": abs})


def test_mygrad_conv_on_a_transposed_row_vector_is_wrong_and_blamed_on_conv2d():
    """MyGrad 2.5.0's conv_nd reads the wrong memory when an operand is a transposed
    row vector (a size-1 axis whose stride is not the item size): forward and gradient
    wrong, right on a fresh copy. Blame re-checks conv2d with its operand made as the
    graph made it (by transpose) and names conv2d, not "how contributions combine"."""
    from mflow.oracles.local import local_disagreement
    engine = adapter("mygrad")
    case = _case([[[0.5, -1.0]]], [Step("transpose", (0,)),
                                   Step("conv2d", (1, 1), {"stride": 1, "padding": "valid"})])
    assert Checker(engine).judge(case).outcome is not None
    fresh = _case([[[0.5], [-1.0]]], [Step("conv2d", (0, 0))])
    assert Checker(engine).judge(fresh).outcome is None
    blamed = local_disagreement(engine, case)
    assert blamed["op"] == "conv2d" and blamed["variant"]["operands made by"] == ["transpose"]


def test_torch_second_order_of_prod_at_a_tiny_factor_is_wrong():
    """torch 2.13.0: H t of prod at a factor of 7.4e-18 among values of 1 is -16 where
    1.597 is right (JAX, finite differences): its double backward divides by the
    factor. Found as a disagreement of the references (a ReferenceProblem, never the
    engine's), hence prod's "factors" domain (strategies/domains.py)."""
    import jax.numpy as jnp
    import torch
    from mflow.oracles.jax_backend import jax  # float64 on (as the references run it)
    x, t = np.array([[7.4e-18, 1.3, -0.8, 2.1]]), np.array([[0.3, -0.2, 0.5, 0.1]])
    X = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(X.prod(dim=1).sum(), X, create_graph=True)
    (h,) = torch.autograd.grad((g * torch.tensor(t)).sum(), X)
    right = np.asarray(jax.jvp(jax.grad(lambda a: jnp.prod(a, axis=1).sum()),
                               (jnp.array(x),), (jnp.array(t),))[1])
    # (H t)_0 = Σ_j t_j Π_{k≠0,j} x_k: the exact answer, x_0 dropping out
    exact = sum(t[0, j] * np.prod(np.delete(x[0], [0, j])) for j in (1, 2, 3))
    assert abs(right[0, 0] - exact) < 1e-12
    assert abs(h.numpy()[0, 0] - exact) > 10


def test_torch_float16_forward_mode_var_does_not_centre_the_tangent():
    """torch 2.13.0: the float16 J t of var over [835.5, 844, 853.5] along a tangent of
    about 29.5 in every entry is -4.05 where 5.81 is right (float32: 5.818): its JVP
    sums t (x - x̄) without centring t, and x̄ rounded in float16 (844.5 for 844.33)
    leaves Σ (x - x̄) = -0.5, times the tangent's common part. mflow's centres the
    tangent and is right to float16's rounding. Found as torch's own half run outside
    the tolerance (a ReferenceProblem of the 300,000-graph campaign, never the
    engine's)."""
    import torch
    from torch.func import jvp
    x = torch.tensor([[835.5], [844.0], [853.5]], dtype=torch.float16)
    t = torch.tensor([[28.890625], [29.796875], [29.875]], dtype=torch.float16)
    var = lambda y: torch.var(y, dim=0, unbiased=False)  # noqa: E731
    right = jvp(var, (x.double(),), (t.double(),))[1].item()
    half = jvp(var, (x,), (t,))[1].item()
    assert abs(right - 5.8142) < 1e-3 and abs(half - right) > 5
