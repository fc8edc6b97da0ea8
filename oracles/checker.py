"""The check of one case: run the engine and every reference, compare, conclude.

References: PyTorch autograd (float64), JAX `jax.vjp` (float64) and central
finite differences (float64, `finite_differences.py`). The engine runs in the
program's dtype. Tolerances come from `tolerance.py`; what is concluded, and
the kinds of failure, from `verdict.py`.

    >>> from mflow.oracles.engine import MflowEngine
    >>> checker = Checker(MflowEngine())
    >>> verdict = checker.judge(case)     # never raises: verdict.outcome is None or a Failure
    >>> checker.check(case)               # raises verdict.outcome, if any
"""

import contextlib
import signal
import threading
import warnings
import zlib

import numpy as np

from . import forward_mode, second_order
from .engine import Result, capabilities, run_engine
from .finite_differences import directional, finite_differences, forward_values
from .forward_mode import has_jvp, tangents_of
from .second_order import has_hvp
from .tolerance import ad_tolerance, as_dtype, gauge, measure, refine
from .verdict import (
    ORACLES,
    Comparison,
    EngineCrash,
    EngineHang,
    EngineMisbehaved,
    ForwardMismatch,
    GradientMismatch,
    HessianMismatch,
    NumericallyUnsafe,
    ReferenceProblem,
    ShapeOrDtypeMismatch,
    TangentMismatch,
    Verdict,
    array_names,
    arrays,
    compare_arrays,
    relative,
)

# The engine's time limit per case: generous (mflow takes ~0.2 ms on a graph of 20
# steps), growing with the graph, so that a backward pass that re-walks shared
# sub-graphs (exponential in the depth) is a finding, not a hung worker.
TIME_LIMIT = dict(base=10.0, per_step=0.05)
# The references' time limit per phase (torch, JAX, finite differences; a first JAX
# compile of a large bucket on a loaded machine takes tens of seconds): a saved report
# cannot make the gate run for hours (an 80,000-step program ran for over 200 s). A
# reference out of time is a ReferenceProblem, never the engine's fault.
REFERENCE_LIMIT = dict(base=120.0, per_step=0.05)


class Checker:
    """Checks cases on one engine against the chosen references."""

    def __init__(self, engine, oracles=ORACLES, seed=0, fail_on_warnings=False, modes=None,
                 lazy_gauge=True):
        # seed: kept for callers; probes are seeded by each case (case_rng), so that a
        # replay is the same check. fail_on_warnings: a right answer the engine warned
        # about is a NumericallyUnsafe failure (else only counted). modes: a subset of
        # ("vjp", "jvp", "hvp") with "vjp"; default: forward mode and second order too
        # where the engine offers `jvp` and `hvp`. lazy_gauge=False gauges float32 on
        # every case (the same verdicts, slower: tests/test_lazy_gauge.py compares them)
        unknown = set(oracles) - set(ORACLES)
        if unknown or not oracles:
            raise ValueError(f"oracles must be a non-empty subset of {ORACLES}; got {oracles}")
        from .torch_backend import TorchEngine  # the float32 rounding gauge needs torch always
        self.engine, self.oracles = engine, tuple(oracles)
        self.torch64, self.torch32 = TorchEngine(), TorchEngine()
        if "jax" in self.oracles:
            from .jax_backend import JaxOracle
            self.jax = JaxOracle()
        self.seed, self.fail_on_warnings, self.lazy_gauge = seed, fail_on_warnings, lazy_gauge
        offers = {"vjp": True, "jvp": has_jvp(engine), "hvp": has_hvp(engine)}
        self.modes = tuple(modes) if modes is not None else tuple(m for m, ok in offers.items()
                                                                  if ok)
        for m in self.modes:
            if not offers.get(m):
                raise ValueError(f"modes {self.modes}: engine {engine.name!r} offers no {m}")
        caps = capabilities(engine)
        self.mode_ops = {"vjp": set(engine.ops), "jvp": caps.jvp_ops, "hvp": caps.hvp_ops}
        self.first_use, self.float64 = caps.first_use, "float64" in caps.dtypes

    def check(self, case):
        """The verdict on one case; raises its Failure when it fails."""
        verdict = self.judge(case)
        if verdict.outcome is not None:
            raise verdict.outcome
        return verdict

    def judge(self, case, modes=None):
        """The verdict on one case, failed or not (`verdict.outcome`); `modes`: a
        subset of the checker's, for this case only."""
        verdict = Verdict(case, self.engine.name)
        verdict.modes = tuple(m for m in self.modes if (modes is None or m in modes) and (
            set(case.program.ops()) <= self.mode_ops[m]))  # ops it has that mode of
        verdict.outcome = self._conclude(case, verdict)
        if verdict.outcome is not None and verdict.scales and verdict.reference:
            # first order's tolerances, which a later gauge or refine forgot: a saved
            # report's reproduce.py compares by them (regressions._tolerances)
            for i in range(len(case.inputs) + 1):
                ad_tolerance(verdict, i, case.program.dtype)
        return verdict

    def _conclude(self, case, verdict):
        program, dtype = case.program, case.program.np_dtype
        self._references(case, verdict)
        errors = {k: v for k, v in verdict.errors.items() if k != "torch32"}
        if errors:
            return ReferenceProblem(f"a reference raised:\n{verdict.describe()}", verdict)
        inputs = [np.asarray(x, dtype) for x in case.inputs]
        cotangent = np.asarray(case.cotangent, dtype)
        base = max(TIME_LIMIT["base"], self.first_use)  # an engine that compiles: its own
        watch = _time_limit(base + TIME_LIMIT["per_step"] * len(program))
        result, crash = self._guarded(verdict, watch, lambda: engine_call(
            run_engine, self.engine, program, inputs=inputs, cotangent=cotangent))
        if crash:
            return crash
        verdict.results["engine"] = result
        # an engine's answer may hold inf or NaN: the comparisons handle them explicitly
        with np.errstate(all="ignore"):
            measure(verdict)
            if not self.lazy_gauge:
                self._gauge(case, verdict, "vjp")
            outcome = self._compare_all(case, verdict)
            # a comparison failed: gauge float32's rounding (tolerance.py, "Lazily"), then
            # measure the backward's too (tolerance.refine), looking again after each
            for measure_more in (lambda: self._gauge(case, verdict, "vjp"),
                                 lambda: refine(verdict)):
                if isinstance(outcome, (ReferenceProblem, ForwardMismatch, GradientMismatch)) \
                        and measure_more():
                    verdict.comparisons.clear()
                    verdict.skipped_probes = verdict.unresolved_probes = 0
                    outcome = self._compare_all(case, verdict)
        if outcome is None and "jvp" in verdict.modes:
            outcome = self._forward_mode(case, verdict, watch)
        if outcome is None and "hvp" in verdict.modes:
            outcome = self._second_order(case, verdict, watch)
        if outcome is None and verdict.numeric_warnings and self.fail_on_warnings:
            return NumericallyUnsafe(f"numerically unsafe: the answers are right, but the "
                                     f"engine warned\n{verdict.describe()}", verdict)
        return outcome

    def _compare_all(self, case, verdict):
        program, dtype = case.program, case.program.np_dtype
        names = array_names(case)
        engine = verdict.results["engine"]
        if len(engine.grads) != len(case.inputs):  # before anything reads them by index
            verdict.comparisons.append(_mismatch("gradients", ("engine", "program"), 0.0,
                f"expected one gradient per input, {len(case.inputs)}, got "
                f"{len(engine.grads)}"))
            return ShapeOrDtypeMismatch(f"wrong number of gradients:\n{verdict.describe()}",
                                        verdict)

        # 1. the references among themselves
        if "torch" in verdict.results and "jax" in verdict.results:
            for i, name in enumerate(names):
                self._compare(verdict, name, ("jax", "torch"), arrays(verdict.results["jax"])[i],
                              arrays(verdict.results["torch"])[i], i, np.float64)
        if verdict.probes and verdict.reference is not None:
            self._compare_fd(verdict, ("fd", verdict.reference),
                             verdict.results[verdict.reference], np.float64)
        if verdict.failures:
            return ReferenceProblem(f"the references disagree:\n{verdict.describe()}", verdict)

        # 2. the engine against each reference
        for i, (name, a) in enumerate(zip(names, arrays(engine))):
            expected = program.output_shape if i == 0 else program.inputs[i - 1]
            if a.shape != tuple(expected) or a.dtype != dtype:
                verdict.comparisons.append(_mismatch(name, ("engine", "program"), 0.0,
                    f"expected shape {tuple(expected)} and dtype {dtype}, got {a.shape} "
                    f"and {a.dtype}"))
        if verdict.failures:
            return ShapeOrDtypeMismatch(f"wrong shape or dtype:\n{verdict.describe()}", verdict)
        for who in ("torch", "jax"):
            if who in verdict.results:
                for i, name in enumerate(names):
                    self._compare(verdict, name, ("engine", who), arrays(engine)[i],
                                  arrays(verdict.results[who])[i], i, dtype)
        if verdict.probes:
            self._compare_fd(verdict, ("engine", "fd"), engine, dtype)
        if any(c.what == "forward" for c in verdict.failures):
            return ForwardMismatch(f"forward values differ:\n{verdict.describe()}", verdict)
        if verdict.failures:
            return GradientMismatch(f"gradients differ:\n{verdict.describe()}", verdict)
        return None

    def _forward_mode(self, case, verdict, watch):
        """The engine's J ṫ along a tangent drawn from the case (oracles/forward_mode.py)."""
        program, dtype = case.program, case.program.np_dtype
        verdict.tangents = tangents_of(case, case_rng(case, seed=1))
        with self._referencing(case, verdict, "torch jvp"):
            forward_mode.references(self, case, verdict, verdict.tangents)
        if not self.lazy_gauge:
            self._gauge(case, verdict, "jvp")
        raised = {k: v for k, v in verdict.errors.items() if k in ("torch jvp", "jax jvp")}
        if raised or "torch" not in verdict.jvps:
            return ReferenceProblem(f"a reference raised (forward mode):\n"
                                    f"{verdict.describe()}", verdict)
        if "fd" in self.oracles and verdict.values:
            with np.errstate(all="ignore"):
                verdict.fd_tangent = directional(as_dtype(program, "float64"), case.inputs,
                                                 verdict.tangents, case.cotangent,
                                                 base=verdict.values)
            if not verdict.fd_tangent[2] or not verdict.fd_tangent[3]:
                verdict.unresolved_probes += 1
        stages = (lambda v: self._gauge(case, v, "jvp"),
                  lambda v: any([forward_mode.refine(v), refine(v)]))
        if self._compare_again(verdict, forward_mode.compare_references, *stages):
            return ReferenceProblem(f"the references disagree (forward mode):\n"
                                    f"{verdict.describe()}", verdict)
        inputs = [np.asarray(x, dtype) for x in case.inputs]
        tangents = [np.asarray(t, dtype) for t in verdict.tangents]
        answer, crash = self._guarded(verdict, watch, lambda: engine_call(
            forward_mode.run_engine_jvp, self.engine, program, inputs=inputs,
            tangents=tangents))
        if crash:
            return crash
        jt = answer[1]
        verdict.jvps["engine"] = jt
        if jt.shape != program.output_shape or jt.dtype != dtype:
            verdict.comparisons.append(_mismatch("tangent", ("engine jvp", "program"), 0.0,
                f"expected shape {program.output_shape} and dtype {dtype}, got {jt.shape} "
                f"and {jt.dtype}"))
            return ShapeOrDtypeMismatch(f"wrong shape or dtype (forward mode):\n"
                                        f"{verdict.describe()}", verdict)
        grads = verdict.results["engine"].grads
        if self._compare_again(verdict, lambda v: forward_mode.compare_engine(
                v, jt, grads, dtype), *stages):
            return TangentMismatch(f"forward mode differs:\n{verdict.describe()}", verdict)
        return None

    def _second_order(self, case, verdict, watch):
        """The engine's H ṫ along the case's tangent (oracles/second_order.py)."""
        program, dtype = case.program, case.program.np_dtype
        if not verdict.tangents:  # the same tangent forward mode draws
            verdict.tangents = tangents_of(case, case_rng(case, seed=1))
        with self._referencing(case, verdict, "torch hvp"):
            second_order.references(self, case, verdict)
        if not self.lazy_gauge:
            self._gauge(case, verdict, "hvp")
        if any(k in verdict.errors for k in ("torch hvp", "jax hvp")) or \
                "torch" not in verdict.hvps:
            return ReferenceProblem(f"a reference raised (second order):\n"
                                    f"{verdict.describe()}", verdict)
        stages = (lambda v: self._gauge(case, v, "hvp"),
                  lambda v: any([second_order.refine(v), refine(v)]))
        if self._compare_again(verdict, second_order.compare_references, *stages):
            return ReferenceProblem(f"the references disagree (second order):\n"
                                    f"{verdict.describe()}", verdict)
        inputs = [np.asarray(x, dtype) for x in case.inputs]
        cotangent = np.asarray(case.cotangent, dtype)
        tangents = [np.asarray(t, dtype) for t in verdict.tangents]
        p64 = as_dtype(program, "float64")
        c64 = np.asarray(case.cotangent, np.float64)

        def run():  # every engine call on fresh copies (engine_call)
            hs = engine_call(second_order.run_engine_hvp, self.engine, program, inputs=inputs,
                             cotangent=cotangent, tangents=tangents)
            if "fd" in self.oracles and self.float64:  # its own gradient, differenced
                verdict.hvp_directions = tangents_of(case, case_rng(case, seed=2))
                verdict.fd_hvp = second_order.engine_difference(
                    lambda xs: engine_call(run_engine, self.engine, p64, inputs=xs,
                                           cotangent=c64).grads,
                    p64, case.inputs, verdict.tangents, verdict.hvp_directions,
                    verdict.scales[1:], verdict.values)
            return hs
        hs, crash = self._guarded(verdict, watch, run)
        if crash:
            return crash
        if verdict.fd_hvp is not None and not (verdict.fd_hvp[2] and verdict.fd_hvp[3]):
            verdict.unresolved_probes += 1
        verdict.hvps["engine"] = hs
        wrong = [f"x{i}: {h.shape} {h.dtype}" for i, (h, x) in enumerate(zip(hs, inputs))
                 if h.shape != x.shape or h.dtype != dtype]
        if wrong or len(hs) != len(inputs):
            verdict.comparisons.append(_mismatch("hvp", ("engine hvp", "program"), 0.0,
                f"expected one {dtype} array per input of its shape, got {len(hs)}: "
                f"{', '.join(wrong)}"))
            return ShapeOrDtypeMismatch(f"wrong shape or dtype (second order):\n"
                                        f"{verdict.describe()}", verdict)
        if self._compare_again(verdict, lambda v: second_order.compare_engine(v, hs, dtype),
                               *stages):
            return HessianMismatch(f"second order differs:\n{verdict.describe()}", verdict)
        return None

    @staticmethod
    def _compare_again(verdict, compare, *stages):
        """Run `compare`; while a comparison fails, measure more of the rounding (each
        stage, as float32's gauge or Monte Carlo arithmetic on a pass, only raises
        tolerances; False if it had nothing more to measure) and compare again. True
        if one still fails."""
        before = len(verdict.comparisons)
        with np.errstate(all="ignore"):
            compare(verdict)
            for stage in stages:
                if not verdict.failures:
                    return False
                if stage(verdict):
                    del verdict.comparisons[before:]
                    compare(verdict)
        return bool(verdict.failures)

    def _gauge(self, case, verdict, mode):
        """Gauge float32's rounding for `mode`, and first order's, which every mode's
        tolerance reads (torch's float32 runs: tolerance.py, "Lazily"); forget the
        tolerances computed so far. False when already gauged."""
        if mode in verdict.gauged:
            return False
        with np.errstate(all="ignore"), self._referencing(case, verdict, "torch32"):
            if "vjp" not in verdict.gauged:
                try:
                    verdict.results["torch32"] = run_engine(
                        self.torch32, as_dtype(case.program, "float32"),
                        [np.asarray(x, np.float32) for x in case.inputs],
                        np.asarray(case.cotangent, np.float32))
                except Exception as e:  # noqa: BLE001 - then only the floor x 1e4 stands
                    verdict.errors["torch32"] = f"{type(e).__name__}: {e}"
                gauge(verdict)
                verdict.gauged.add("vjp")
            if mode == "jvp":
                forward_mode.gauge(self, case, verdict)
            elif mode == "hvp":
                second_order.gauge(self, case, verdict)
        verdict.gauged.add(mode)
        verdict.tolerances.clear()
        return True

    def _guarded(self, verdict, watch, call):
        """call() runs the engine: under the time limit, its warnings recorded, what it
        raises a finding. (answer, None), or (None, the failure)."""
        try:
            with watch, warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")
                answer = call()
            verdict.warnings += [f"{w.category.__name__}: {w.message}" for w in warned]
        except KeyboardInterrupt as e:
            if watch.interrupted or not watch.armed:  # a Ctrl-C: the user stops the run
                raise
            return None, self._crashed(verdict, e)  # the engine raised it with no Ctrl-C
        except (Exception, SystemExit) as e:  # noqa: BLE001 - an engine that exits is a finding
            return None, self._crashed(verdict, e)
        return answer, None

    @staticmethod
    def _crashed(verdict, e):
        verdict.errors["engine"] = f"{type(e).__name__}: {e}"
        if isinstance(e, ChangedInPlace):
            return EngineMisbehaved(f"the engine {e}\n{verdict.describe()}", verdict)
        kind = EngineHang if isinstance(e, NoAnswer) else EngineCrash
        crash = kind(f"the engine raised {type(e).__name__}: {e}\n{verdict.describe()}",
                     verdict)
        crash.__cause__ = e
        return crash

    @contextlib.contextmanager
    def _referencing(self, case, verdict, who):
        """The references' time limit around one phase of their work (REFERENCE_LIMIT):
        out of time, the phase stops and `who` is recorded as having raised NoAnswer,
        which makes the case a ReferenceProblem, never the engine's fault."""
        limit = REFERENCE_LIMIT["base"] + REFERENCE_LIMIT["per_step"] * len(case.program)
        try:
            with _time_limit(limit):
                yield
        except NoAnswer as e:
            verdict.errors[who] = f"NoAnswer: {e}"

    def _references(self, case, verdict):
        with self._referencing(case, verdict, "references"):
            self._run_references(case, verdict)

    def _run_references(self, case, verdict):
        program = case.program
        p64 = as_dtype(program, "float64")
        x64 = [np.asarray(x, np.float64) for x in case.inputs]
        c64 = np.asarray(case.cotangent, np.float64)
        runs = {"torch": lambda: run_engine(self.torch64, p64, x64, c64),
                "jax": lambda: self.jax.run(p64, x64, c64)}
        for who in self.oracles:
            if who in runs:
                try:
                    verdict.results[who] = runs[who]()
                except Exception as e:  # noqa: BLE001 - a reference that raises is reported
                    verdict.errors[who] = f"{type(e).__name__}: {e}"
        try:  # numpy's forward pass: the values every tolerance is scaled by
            verdict.values = forward_values(p64, x64)
        except Exception as e:  # noqa: BLE001 - a singular inv operand, say
            verdict.errors["numpy"] = f"{type(e).__name__}: {e}"
            return
        if "fd" in self.oracles:
            try:
                verdict.probes = finite_differences(p64, x64, c64, case_rng(case),
                                                    base=verdict.values)
            except Exception as e:  # noqa: BLE001
                verdict.errors["fd"] = f"{type(e).__name__}: {e}"

    def _compare(self, verdict, name, pair, a, b, i, dtype):
        verdict.comparisons.append(compare_arrays(name, pair, a, b,
                                                  *ad_tolerance(verdict, i, dtype)))

    def _compare_fd(self, verdict, pair, result, dtype):
        for k, probes in enumerate(verdict.probes):
            g = np.asarray(result.grads[k], np.float64)
            tol_ad, _ = ad_tolerance(verdict, k + 1, dtype)
            projected = np.tensordot(probes.directions, g, axes=2)
            scale = np.sqrt((probes.directions ** 2).sum(axis=(1, 2)))
            bound = probes.error + tol_ad * scale
            use = probes.valid & probes.resolved
            diff = np.where(use, np.abs(projected - probes.estimate), 0.0)
            if pair[0] == "engine":  # counted once per case, not once per pair
                verdict.skipped_probes += int((~probes.valid).sum())
                verdict.unresolved_probes += int((probes.valid & ~probes.resolved).sum())
            ratio = np.where(use, diff / np.maximum(bound, 1e-300), 0.0)
            j = int(np.argmax(ratio))
            worst = (np.unravel_index(j, g.shape) if probes.full else ("direction", j))
            ok = bool(np.all((diff <= bound) | ~use))
            verdict.comparisons.append(Comparison(
                f"gradient of x{k}", pair, float(diff[j]),
                relative(float(diff[j]), abs(float(probes.estimate[j]))),
                tuple(int(w) if not isinstance(w, str) else w for w in worst), float(bound[j]),
                "finite-difference bound (Richardson + rounding) + the AD tolerance"
                + ("" if probes.full else ", along signed random directions"), ok))


def modes_for(case, modes, jvp_every=3, hvp_every=3):
    """The modes a fuzzing run checks on `case`: forward mode on one case in
    `jvp_every`, second order on one in `hvp_every` (independently), chosen by the
    case itself, so that a replay checks the same; the reducer and blame check all.
    Forward mode costs 0.82 of the reverse-mode check
    (benchmarks/results/suite_forward_mode.md): one in three keeps a campaign within
    1.3x of its reverse-mode throughput (one in two measured 1.53x). Second order costs
    1.9x the reverse-mode check (benchmarks/results/suite_second_order.md): one in three
    costs a campaign 1.48x its check before second order."""
    crc = case.program.digest
    skip = {"jvp"} if crc % jvp_every else set()
    if (crc // jvp_every) % hvp_every:
        skip.add("hvp")
    return tuple(m for m in modes if m not in skip)


def case_digest(case):
    """crc32 of the case, its program and every array: what the check draws for a case
    (probes, tangents, whether it is checked twice) depends on the case alone, never on
    what the process checked before."""
    digest = case.program.digest
    for a in (*case.inputs, case.cotangent):
        digest = zlib.crc32(np.ascontiguousarray(a).tobytes(), digest)
    return digest


def case_rng(case, seed=0):
    """A generator seeded by the case itself: a replay draws the same probes."""
    return np.random.default_rng([case_digest(case), seed])


class NoAnswer(Exception):
    """Raised by the time limit: no answer in time."""


class ChangedInPlace(Exception):
    """The engine changed an array it was handed (an EngineMisbehaved finding)."""


def engine_call(run, *args, **arrays):
    """run(*args, **copies): every array the engine receives is a fresh copy (each keyword
    an array or a list of arrays), so that nothing it does to them reaches the case,
    and a copy it changed raises ChangedInPlace naming it; every array of the answer is
    copied on receipt, so that an engine that keeps what it returned and changes it
    later (a gradient buffer) cannot change an answer already recorded."""
    copies = {k: [np.array(x) for x in v] if isinstance(v, (list, tuple)) else np.array(v)
              for k, v in arrays.items()}
    answer = run(*args, **copies)
    changed = []
    for k, given in arrays.items():
        names = {"inputs": "x{}", "tangents": "the tangent of x{}"}.get(k, f"the {k}")
        pairs = zip(given, copies[k]) if isinstance(given, (list, tuple)) else [(given, copies[k])]
        changed += [names.format(i) for i, (a, b) in enumerate(pairs)
                    if not np.array_equal(a, b, equal_nan=True)]
    if changed:
        raise ChangedInPlace(f"changed {', '.join(changed)} in place")
    return _owned(answer)


def _owned(answer):
    """The answer with every numpy array in it copied (Result, tuple, list, array)."""
    if isinstance(answer, np.ndarray):
        return answer.copy()
    if isinstance(answer, Result):
        return Result(_owned(answer.forward), [_owned(g) for g in answer.grads])
    if isinstance(answer, (list, tuple)):
        return type(answer)(_owned(a) for a in answer)
    return answer


class _time_limit:
    """SIGALRM after `seconds` (main thread of a POSIX process only; elsewhere no
    limit). It also tells a real Ctrl-C from a KeyboardInterrupt the engine raised
    itself: SIGINT, while watched, is noted (`interrupted`) before it is handled
    as it would have been."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.armed = hasattr(signal, "setitimer") and \
            threading.current_thread() is threading.main_thread()
        self.interrupted = False

    def __enter__(self):
        if self.armed:
            def hung(signum, frame):
                where = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame else "?"
                raise NoAnswer(f"no answer after {self.seconds:.0f} s (stopped in {where})")
            self.previous = signal.signal(signal.SIGALRM, hung)
            self.previous_int = signal.getsignal(signal.SIGINT)
            if callable(self.previous_int):
                def interrupted(signum, frame):
                    self.interrupted = True
                    self.previous_int(signum, frame)
                signal.signal(signal.SIGINT, interrupted)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
            if callable(self.previous_int):
                signal.signal(signal.SIGINT, self.previous_int)
        return False


def _mismatch(what, pair, tolerance, reason):
    return Comparison(what, pair, np.inf, np.inf, (), tolerance, reason, False)
