"""False alarms found on the correct engine, kept as property tests of their
whole class: each failed before its fix (oracles/finite_differences.py's
convergence rule; oracles/tolerance.py's `refine`)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from mflow.oracles.checker import Checker
from mflow.oracles.engine import MflowEngine
from mflow.oracles.finite_differences import STEPS, converges
from mflow.oracles.program import Case, Program, Step

CHECKER = Checker(MflowEngine())
CORNER = {"rows": slice(0, 1), "cols": slice(4, 5)}

# A computed value near a pole: cos(x) at x ≈ π/2, then an operation that blows
# up at 0 (the first one a campaign found: cos → [0:1, 4:5] → inv → sin, 4e-4 away)
POLES = {
    "inv": lambda: [Step("inv", (2,))],
    "div": lambda: [Step("div", (1, 2))],
    "log": lambda: [Step("log", (2,))],
    "pow -1": lambda: [Step("pow", (2,), {"p": -1})],
    "pow -2.5": lambda: [Step("pow", (2,), {"p": -2.5})],
}
OUTER = ("sin", "cos", "tanh", "neg")


def pole_case(pole, outer, distance, dtype="float64"):
    """x0 (1x5) → cos → its corner → the pole → outer, the corner `distance` from
    the pole (positive: cos x > 0, inside log's and a fractional power's domain)."""
    steps = [Step("cos", (0,)), Step("getitem", (1,), CORNER)]
    if pole == "div":  # x1 / cos(x0)[corner]: operands renumbered for the second input
        steps = [Step("cos", (0,)), Step("getitem", (2,), CORNER), Step("div", (1, 3))]
    else:
        steps += POLES[pole]()
    steps.append(Step(outer, (len(steps) + (2 if pole == "div" else 1) - 1,)))
    inputs = [(1, 5)] + ([(1, 1)] if pole == "div" else [])
    x0 = np.array([[0.3, -0.2, 1.1, 0.5, np.pi / 2 - distance]])
    values = [x0] + ([np.array([[0.7]])] if pole == "div" else [])
    return Case(Program(tuple(inputs), tuple(steps), dtype), tuple(values), np.array([[1.3]]))


@settings(max_examples=60)
@given(st.sampled_from(sorted(POLES)), st.sampled_from(OUTER), st.floats(-7, -2.5))
def test_a_computed_value_near_a_pole_is_no_false_alarm(pole, outer, log_distance):
    case = pole_case(pole, outer, 10.0 ** log_distance)
    verdict = CHECKER.judge(case)
    assert verdict.outcome is None, verdict.describe()


def test_the_campaigns_pole_case_leaves_its_probe_out_and_counts_it():
    verdict = CHECKER.judge(pole_case("inv", "sin", np.pi / 2 - 1.5704))
    assert verdict.outcome is None, verdict.describe()
    # the corner (the other four are exact zeros); forward mode's probe along ṫ; and
    # second order's difference of the gradient along ṫ
    assert verdict.unresolved_probes == 1 + ("jvp" in verdict.modes) + ("hvp" in verdict.modes)


@settings(max_examples=40)
@given(st.integers(0, 2**32 - 1), st.floats(0.03, 0.08))
def test_a_saturated_tanh_behind_inv_trace_is_no_false_alarm(seed, trace):
    """tanh(inv(tr X)), tr X = -trace: torch's float64 VJP is an exact 0, JAX's a
    rounding residue times 1/tr², which torch's float32 run cannot gauge."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (4, 4))
    x[3, 3] -= np.trace(x) + trace
    program = Program(((4, 4),), (Step("trace", (0,)), Step("inv", (1,)), Step("tanh", (2,))))
    verdict = CHECKER.judge(Case(program, (x,), rng.uniform(-2, 2, (1, 1))))
    assert verdict.outcome is None, verdict.describe()


def test_noise_and_aliased_oscillations_rarely_pass_for_converging_estimates():
    """Where every estimate is noise of size 1/h, or an oscillation of many turns
    per step (D(s) ∝ sin(sθ/h) / s), the rule leaves the probe out nearly always
    (finite_differences.py: 0.03 % and 0.02 %); a smooth one it keeps."""
    rng = np.random.default_rng(7)
    for draw in (rng.standard_normal, lambda n: rng.uniform(-1, 1, n)):
        assert converges([draw(200_000) for _ in STEPS], 1e-15).mean() < 0.001
    fast = np.exp(rng.uniform(0, np.log(1e4), 200_000))      # θ radians per step h
    assert converges([np.sin(k * fast) / (k * fast) for k in STEPS], 1e-15).mean() < 0.001
    slow = np.exp(rng.uniform(np.log(1e-4), 0, 200_000))
    assert converges([np.sin(k * slow) / (k * slow) for k in STEPS], 1e-15).mean() > 0.9


def test_a_smooth_function_converges():
    """D(s) = f' + a s² (+ b s⁴) converges; so does pure rounding noise."""
    h, f1 = 1e-5, 0.7
    for a, b in ((3.0, 0.0), (-2.0, 1e6), (0.0, 1e9), (1e-12, 0.0)):
        d = [f1 + a * (k * h) ** 2 + b * (k * h) ** 4 for k in STEPS]
        assert converges([np.array([x]) for x in d], 1e-9)[0]


def test_a_tiny_well_conditioned_det_operand_is_out_of_the_domain():
    """A campaign drew det of the corner of a saturated softmax, [[4.3e-192]]: condition
    1, but JAX's second derivative of det (through LU) overflowed to NaN while torch and
    mflow answered (a ReferenceProblem: the references disagreed). Such an operand tests
    underflow, not gradients: the domain now asks for σ_min ≥ 1e-3 too. Checked anyway,
    the verdict never blames the engine."""
    from mflow.oracles.verdict import accuses_engine
    from mflow.strategies.domains import accepts
    assert not accepts("invertible", np.array([[4.3e-192]]))
    assert accepts("invertible", np.array([[1e-2]]))
    x = np.array([[408.28766, 427.44662, 458.24075, 698.0964, 257.45593]])
    program = Program(((1, 5),), (Step("softmax", (0,), {"axis": 1}),
                                   Step("getitem", (1,), CORNER), Step("det", (2,))))
    verdict = CHECKER.judge(Case(program, (x,), np.array([[1.3]])))
    assert verdict.outcome is None or not accuses_engine(verdict.outcome), verdict.describe()


def test_softplus_far_below_zero_is_out_of_the_domain():
    """The first campaign with softplus drew softplus(prod(x)) of an 8x5 float32 matrix,
    the product reduced to -1024: torch's second derivative of logaddexp there is NaN
    (e^-1024 underflows), JAX's 0 (a ReferenceProblem: the references disagreed). Such
    an operand tests underflow, not gradients: softplus's domain is |x| ≤ 50. Checked
    anyway, the verdict never blames the engine."""
    from mflow.oracles.verdict import accuses_engine
    from mflow.strategies.domains import accepts
    assert not accepts("moderate", np.array([[-1024.0]]))
    assert accepts("moderate", np.array([[-50.0, 50.0]]))
    x = np.array([[-1.0, 1.0, -1.0, 1.0, -1.0], [1.0, -1.0, -1.0, -1.0, 1.0],
                  [1.0, -1.0, 1.0, 1.0, -1.0], [-1.0, -2.0, -2.0, 1.0, -1.0],
                  [1.0, 1.0, 2.0, -2.0, -1.0], [2.0, -1.0, 2.0, -1.0, -1.0],
                  [1.0, 2.0, 2.0, 2.0, -1.0], [1.0, 1.0, -1.0, -2.0, -1.0]], np.float32)
    program = Program(((8, 5),), (Step("prod", (0,), {"axis": None}), Step("softplus", (1,))),
                      "float32")
    verdict = CHECKER.judge(Case(program, (x,), np.array([[0.7]], np.float32)))
    assert verdict.outcome is None or not accuses_engine(verdict.outcome), verdict.describe()


def residue_case(seed, dtype="float32"):
    """log_softmax of a row spread over ±1000, then its product: the row's largest
    entry has log_softmax ≈ -e^-35, computed as a residue of x - logsumexp(x) (-2e-16),
    and the product of the others (1e16) multiplies whatever that residue is."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1000, 1000, (3, 7)).astype(dtype)
    steps = (Step("log_softmax", (0,), {"axis": 1}), Step("prod", (1,), {"axis": 1}))
    return Case(Program(((3, 7),), steps, dtype), (x,), np.ones((3, 1), dtype))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_a_log_softmax_residue_in_a_product_is_no_false_alarm(seed):
    """A campaign found torch's and JAX's float64 J t 9 % apart here (ReferenceProblem):
    the Monte Carlo model moved log_softmax's operands, which the subtraction inside it
    cancels, not its result by u max|x| (tolerance._shifted)."""
    verdict = CHECKER.judge(residue_case(seed))
    assert verdict.outcome is None, verdict.describe()


def test_a_cancellation_residue_is_no_factor_of_a_product():
    """torch's second order of prod divides by each factor: a residue of 7e-18 among
    values of 1 lost all of its H t (strategies/domains.py, "factors"); exact zeros
    stay, as torch takes its exact path there."""
    from mflow.strategies.domains import accepts, from_seed
    assert not accepts("factors", np.array([[7.4e-18, 1.0, -2.0]]))
    assert accepts("factors", np.array([[0.0, -0.0, 1.0, 2e-3]]))
    for seed in range(200):
        assert accepts("factors", from_seed("factors", (3, 4), seed, (), False))


def test_a_float32_constant_is_the_same_number_in_the_float64_references():
    """A constant drawn equal to an input (sub(x, c): an exact zero in the engine's
    float32) was float64's 1.683005 in the references, 4e-8 from float32's: torch's
    second order of cumprod divided by that factor (ReferenceProblem, jax hvp vs torch
    hvp, a float32 campaign). Program.with_dtype keeps the program's own constants."""
    x = np.array([[1.683005, 1.329793, 1.690568, -0.351929],
                  [1.583315, 1.385493, 0.734835, -1.946089]], np.float32)
    program = Program(((2, 4),), (Step("const", (), {"value": ((1.683005,),)}),
                                  Step("sub", (0, 1)), Step("cumprod", (2,), {"axis": 0}),
                                  Step("sin", (3,)), Step("sum", (4,), {"axis": None})),
                      "float32")
    wide = program.with_dtype("float64").steps[0].attrs["value"][0][0]
    assert wide == float(np.float32(1.683005)) != 1.683005
    verdict = CHECKER.judge(Case(program, (x,), np.array([[-1.530661]], np.float32)))
    assert verdict.outcome is None, verdict.describe()


def test_finite_differences_at_steps_beyond_where_the_function_curves_are_left_out():
    """prod of cumulative sums with an exact zero row: log_softmax's operand is about
    1e3 t along a probe, linear beyond |t| ~ 1e-3 with another slope on each side, so
    five steps from h = 6e-3 agreed on the mean of the two slopes, 2.2e4 from the true
    derivative (ReferenceProblem, fd vs torch, a float32 campaign). The differences at
    far smaller steps (finite_differences.FAR) must agree too; here they do not, and
    the probe is left out, never compared."""
    x = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 613, 956, -0.0],
                  [0, -0.0, -0.0, 0, 0]], np.float32)
    program = Program(((4, 5),), (Step("cumsum", (0,), {"axis": 1}),
                                  Step("prod", (1,), {"axis": 0}),
                                  Step("log_softmax", (2,), {"axis": 1})), "float32")
    verdict = CHECKER.judge(Case(program, (x,), np.ones((1, 5), np.float32)))
    assert verdict.outcome is None, verdict.describe()


def test_torchs_second_order_of_prod_dividing_by_its_factor_is_no_false_alarm():
    """torch's H t of prod(x) = x is c t (1/x - x/x²): at x = -0.046 terms of 43 cancel
    to 7e-15 where JAX gives 0, three times the floor of terms Σ|ȳ| max(1, |v|)² Σ|ṫ|
    (ReferenceProblem, a float32 campaign). The record says the reference divides
    (catalogue `divides`), and HVP.terms counts |prod| / x²."""
    program = Program(((1, 1),), (Step("prod", (0,), {"axis": None}),), "float32")
    case = Case(program, (np.array([[-0.046143]], np.float32),),
                np.array([[1.975989]], np.float32))
    verdict = CHECKER.judge(case)
    assert verdict.outcome is None, verdict.describe()


def test_a_float32_answer_past_float32s_range_leaves_the_case_outside():
    """A float32 case whose float64 H t reaches 1e57 (a campaign: products of inverses)
    cannot be answered in float32: mflow's run overflowed to inf; outside the range, not
    a HessianMismatch."""
    program = Program(((1, 1),), (Step("pow", (0,), {"p": 3}),), "float32")
    case = Case(program, (np.array([[1e13]], np.float32),), np.ones((1, 1), np.float32))
    verdict = CHECKER.judge(case)
    assert verdict.outcome is None and verdict.outside, verdict.describe()


def test_torch_half_overflowing_where_float64_is_finite_leaves_the_case_outside():
    from mflow.oracles.checker import _peer_overflows
    from mflow.oracles.modes import PEER
    finite = [np.ones((2, 2))]
    assert _peer_overflows({PEER: [np.full((2, 2), np.inf)], "torch": finite})
    assert not _peer_overflows({PEER: [np.full((2, 2), np.inf)],
                                "torch": [np.full((2, 2), np.inf)]})
    assert not _peer_overflows({"torch": finite})


def test_prods_second_order_at_three_exact_zeros_is_exactly_zero_in_float32():
    """Not a false alarm, mflow's own defect, found by the 300,000-graph campaign of
    327538e (7 cases): prod over saturated log_softmax values (5 exact zeros among 56,
    the rest ~ -1e3) in float32; the second order formed the running products of the
    others, past float32 before they met a zero, inf · 0 = NaN where torch and both
    float64 references give 0."""
    x = -np.arange(100, 156, dtype=np.float32).reshape(7, 8) * 10
    x[[0, 2, 3, 5, 6], [1, 7, 3, 0, 5]] = 0
    for axis, shape in ((None, (1, 1)), (0, (1, 8)), (1, (7, 1))):
        program = Program(((7, 8),), (Step("prod", (0,), {"axis": axis}),), "float32")
        verdict = CHECKER.judge(Case(program, (x,), np.ones(shape, np.float32)))
        assert verdict.outcome is None, verdict.describe()


def test_a_factor_whose_square_underflows_is_no_suite_crash():
    """softmax of a float32 column spread over ±1000, triu, then prod (a 300,000-graph
    campaign of b7c746f, a ZeroDivisionError in the suite itself): the float32 values
    are exact zeros, the float64 ones down to 1e-261, whose square underflows to 0 when
    HVP.terms divides |prod| by min |x|²; it divides twice by min |x| instead."""
    x = np.array([[260.29868], [-963.56464], [208.7911], [848.52155], [-284.53955],
                  [183.44258], [314.6621], [83.8109]], np.float32)
    program = Program(((1, 1), (8, 1)), (Step("softmax", (1,), {"axis": 0}),
                                         Step("triu", (2,), {"k": 0}),
                                         Step("prod", (3,), {"axis": None})), "float32")
    case = Case(program, (np.array([[0.547847]], np.float32), x),
                np.array([[0.547847]], np.float32))
    verdict = CHECKER.judge(case)
    assert verdict.outcome is None, verdict.describe()


def test_torchs_float16_var_jvp_is_a_reference_problem_never_the_engines():
    """The 300,000-graph campaign of 28b3dcf: var of x + conv2d(x, x) (a mean of 844)
    in float16; torch's own half J t is -4.05 for 5.82 (its JVP does not centre the
    tangent: tests/test_adapters.py reproduces it in torch alone). The peer outside the
    tolerance is a reference problem; mflow's half J t (centred) passes every pair."""
    from mflow.oracles.verdict import ReferenceProblem
    steps = (Step("conv2d", (0, 0), {"stride": 2, "padding": "valid"}), Step("add", (0, 2)),
             Step("var", (3,), {"axis": 0}), Step("reshape", (1,), {"shape": (1, -1)}),
             Step("softplus", (5,)), Step("sum", (4,), {"axis": None}), Step("add", (6, 7)))
    case = Case(Program(((3, 1), (1, 4)), steps, "float16"),
                (np.array([[-24.16], [-15.484], [-6.03]], np.float16),
                 np.array([[-22.88, 19.5, 15.695, 24.47]], np.float16)),
                np.array([[-1.51, -0.968, -0.377, 1.877]], np.float16))
    verdict = CHECKER.judge(case)
    assert isinstance(verdict.outcome, ReferenceProblem), verdict.describe()
    assert all(c.ok for c in verdict.comparisons if "engine" in " ".join(c.pair))
    assert [c.pair for c in verdict.failures] == [("torch_half jvp", "torch jvp")]
