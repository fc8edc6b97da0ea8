"""The check of one case: run the references and the engine, compare, conclude.

One path for every mode (oracles/modes.py: reverse mode, forward mode, second
order): the mode's references answer (torch, JAX, finite differences; float64), then
are compared among themselves (a disagreement is a ReferenceProblem, never the
engine's fault); the engine answers through its normalised adapter (engine.py), in the
program's dtype, on fresh copies of every array; its answers are compared with each
reference. While a comparison fails, more of the rounding is measured (float32's
gauge, then Monte Carlo arithmetic: tolerance.py) and the comparisons are made
again; tolerances only grow, so a case that passes against the floor alone is done.
What is concluded, and the kinds of failure, are in verdict.py.

    >>> from mflow.oracles.engine import MflowEngine
    >>> checker = Checker(MflowEngine())
    >>> verdict = checker.judge(case)     # never raises: verdict.outcome is None or a Failure
    >>> checker.check(case)               # raises verdict.outcome, if any
"""

import _signal
import contextlib
import signal
import threading
import warnings
import zlib

import numpy as np

from .engine import Result, capabilities, normalise
from .modes import MODES, PEER, VJP
from .program import HALF
from .tolerance import ad_tolerance, gauge_half, refine
from .verdict import (
    ORACLES,
    Comparison,
    EngineCrash,
    EngineHang,
    EngineMisbehaved,
    NumericallyUnsafe,
    ReferenceProblem,
    ShapeOrDtypeMismatch,
    Verdict,
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
# float16 represents up to 65504: a case whose float64 answers pass
# 2^12 leaves an engine less than 16x for its partial sums and is outside the dtype's
# range, a domain: not compared, counted (verdict.outside). The strategies keep values
# within 2^10 (strategies/domains.py), so few cases reach it (measured in
# benchmarks/results/half_precision.md). bfloat16 has float32's range, 2^128: an
# answer past 2^124 is outside float32's and bfloat16's (a campaign's float32 H t of
# a product of inverses reached 1e57 in float64: mflow's float32 run overflowed to
# inf, as any float32 engine must).
HALF_RANGE = {"float16": 2.0 ** 12, "float32": 2.0 ** 124, "bfloat16": 2.0 ** 124}


class Checker:
    """Checks cases on one engine against the chosen references."""

    def __init__(self, engine, oracles=ORACLES, fail_on_warnings=False, modes=None,
                 lazy_gauge=True):
        # fail_on_warnings: a right answer the engine warned about is a NumericallyUnsafe
        # failure (else only counted). modes: a subset of ("vjp", "jvp", "hvp") with
        # "vjp"; default: forward mode and second order too where the engine offers `jvp`
        # and `hvp`. lazy_gauge=False gauges float32 on every case (the same verdicts,
        # slower: tests/test_lazy_gauge.py compares them)
        unknown = set(oracles) - set(ORACLES)
        if unknown or not oracles:
            raise ValueError(f"oracles must be a non-empty subset of {ORACLES}; got {oracles}")
        self.engine, self.oracles = engine, tuple(oracles)
        self.normalised = normalise(engine)
        if "jax" in self.oracles:
            from .jax_backend import JaxOracle
            self.jax = JaxOracle()
        self.fail_on_warnings, self.lazy_gauge = fail_on_warnings, lazy_gauge
        offers = self.normalised.offers
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

    def prefetch(self, cases):
        """JAX's VJPs of the next `cases`, at once (JaxOracle.prefetch), for the checks
        that follow: the same answers as their own calls, at a quarter of the cost. The
        hunt's (reports/search.py); anything it raises leaves each check its own call."""
        if "jax" not in self.oracles:
            return
        try:
            self.jax.prefetch([VJP.in_float64(c) for c in cases])
        except Exception:  # noqa: BLE001 - then each reference call answers (or raises) alone
            self.jax.prefetch([])

    def judge(self, case, modes=None):
        """The verdict on one case, failed or not (`verdict.outcome`); `modes`: a
        subset of the checker's, for this case only."""
        verdict = Verdict(case, self.engine.name)
        verdict.modes = tuple(m for m in self.modes if (modes is None or m in modes) and (
            set(case.program.ops()) <= self.mode_ops[m])  # ops it has that mode of
            and not (m == "hvp" and case.program.dtype in HALF))  # (tolerance.py: why)
        verdict.outcome = self._conclude(case, verdict)
        if verdict.outcome is not None and verdict.scales and verdict.reference:
            # first order's tolerances, which a later gauge or refine forgot: a saved
            # report's reproduce.py compares by them (regressions._tolerances)
            for i in range(len(case.inputs) + 1):
                ad_tolerance(verdict, i, case.program.dtype)
        return verdict

    def _watch(self, case):
        base = max(TIME_LIMIT["base"], self.first_use)  # an engine that compiles: its own
        return _time_limit(base + TIME_LIMIT["per_step"] * len(case.program))

    def guard(self, case, call):
        """call()'s answer: an engine call outside a check (an engine session making a
        leaf or building a graph, reports/sessions.py) under the same guard as the
        check's own, the case it builds towards its subject: what it raises is raised
        as that case's EngineCrash (EngineHang out of time)."""
        verdict = Verdict(case, self.engine.name)
        answer, crash = self._guarded(verdict, self._watch(case), call)
        if crash is not None:
            raise crash
        return answer

    def _conclude(self, case, verdict):
        watch = self._watch(case)
        for name in verdict.modes:  # reverse mode first: the others read its answers
            outcome = self._check(MODES[name], case, verdict, watch)
            if outcome is not None or verdict.outside:
                return outcome
        if verdict.numeric_warnings and self.fail_on_warnings:
            return NumericallyUnsafe(f"numerically unsafe: the answers are right, but the "
                                     f"engine warned\n{verdict.describe()}", verdict)
        return None

    def _check(self, mode, case, verdict, watch):
        """One mode, the one path: references, their agreement, the engine, its agreement."""
        with self._referencing(case, verdict, f"references {mode.name}".replace(" vjp", "")):
            mode.references(self, case, verdict)
        if not self.lazy_gauge:
            self._gauge(case, verdict, mode)
        if mode.errors(verdict) or "torch" not in mode.answers(verdict) and mode is not VJP:
            return ReferenceProblem(f"a reference raised{mode.label}:\n{verdict.describe()}",
                                    verdict)
        limit = HALF_RANGE.get(case.program.dtype)
        if limit is not None:
            largest = max(float(np.max(np.abs(np.asarray(a, np.float64))))
                          for a in mode.answers(verdict)["torch"])
            if not largest <= limit:
                verdict.outside = (f"outside {case.program.dtype}'s range: an answer reaches "
                                   f"{largest:.3g} > {limit:g}")
                return None
        if _peer_overflows(mode.answers(verdict)):
            verdict.outside = (f"outside {case.program.dtype}'s range: torch's own "
                               f"{case.program.dtype} run{mode.label} is not finite where "
                               "float64's answer is")
            return None
        stages = (lambda v: self._gauge(case, v, mode),
                  lambda v: any([refine(v, mode)] + ([refine(v, VJP)] if mode is not VJP
                                                     else [])))
        if self._compare_again(verdict, mode.compare_references, *stages):
            return ReferenceProblem(f"the references disagree{mode.label}:\n"
                                    f"{verdict.describe()}", verdict)
        answer, crash = self._guarded(verdict, watch, lambda: mode.engine(
            self, case, verdict, engine_call))
        if crash:
            return crash
        wrong = mode.misshapen(case, answer)
        if wrong:
            verdict.comparisons += [_mismatch(what, (mode.who("engine"), "program"), 0.0, why)
                                    for what, why in wrong]
            return ShapeOrDtypeMismatch(f"wrong shape or dtype{mode.label}:\n"
                                        f"{verdict.describe()}", verdict)
        dtype = case.program.np_dtype
        if self._compare_again(verdict, lambda v: mode.compare_engine(v, dtype), *stages):
            return mode.failure(verdict)
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
        """Gauge float32's rounding for `mode`, and reverse mode's, which every mode's
        tolerance reads (torch's float32 runs: tolerance.py, "Lazily"); forget the
        tolerances computed so far. False when already gauged."""
        if mode.name in verdict.gauged:
            return False
        if case.program.dtype in HALF:  # measured at the dtype's own u (tolerance.py)
            for m in {VJP, mode}:
                gauge_half(verdict, m)
                verdict.gauged.add(m.name)
            verdict.tolerances.clear()
            return True
        with np.errstate(all="ignore"), self._referencing(case, verdict, "torch32"):
            if VJP.name not in verdict.gauged:
                VJP.gauge(self, case, verdict)
                verdict.gauged.add(VJP.name)
            if mode is not VJP:
                mode.gauge(self, case, verdict)
        verdict.gauged.add(mode.name)
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


def _peer_overflows(answers):
    """torch's own half run (the peer) overflowed inside where the float64 answer is
    finite: a partial result left the dtype's range (found: float16 JVPs through norm
    and squares), so the case is outside it, as one whose answers pass HALF_RANGE."""
    if PEER not in answers or "torch" not in answers:
        return False
    return any(bool(np.any(~np.isfinite(np.asarray(p, np.float64)) &
                           np.isfinite(np.asarray(t, np.float64))))
               for p, t in zip(answers[PEER], answers["torch"]))


def _same(a, b):
    """Unchanged: the same bytes (the common case, 1 µs), else equal with NaN equal to NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return True
    return np.array_equal(a, b, equal_nan=True)


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
        changed += [names.format(i) for i, (a, b) in enumerate(pairs) if not _same(a, b)]
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
    as it would have been. (Handlers are swapped through `_signal`, the C module under
    `signal`, whose wrappers turn each handler into an enum: 3.4 µs a call against
    0.3, a sixth of the watch's cost, and a check enters a few watches.)"""

    def __init__(self, seconds):
        self.seconds = seconds
        self.armed = hasattr(signal, "setitimer") and \
            threading.current_thread() is threading.main_thread()
        self.interrupted = False

    def __enter__(self):
        if self.armed:
            self.previous = _signal.signal(signal.SIGALRM, self._hung)
            self.previous_int = _signal.getsignal(signal.SIGINT)
            if callable(self.previous_int):
                _signal.signal(signal.SIGINT, self._interrupted)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _signal.signal(signal.SIGALRM, self.previous)
            if callable(self.previous_int):
                _signal.signal(signal.SIGINT, self.previous_int)
        return False

    def _hung(self, signum, frame):
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame else "?"
        raise NoAnswer(f"no answer after {self.seconds:.0f} s (stopped in {where})")

    def _interrupted(self, signum, frame):
        self.interrupted = True
        self.previous_int(signum, frame)


def _mismatch(what, pair, tolerance, reason):
    return Comparison(what, pair, np.inf, np.inf, (), tolerance, reason, False)
