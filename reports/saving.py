"""The saving policy, without pytest: which checked case becomes a regression report,
and when. The plugin's `mflow_checker` fixture is a SavingChecker; so is any driver
of the suite that wants findings kept.

- A failure of the engine is saved once Hypothesis replays the final, shrunk
  example (not every step of the shrinking), reduced further by reduce.py.
- Every failing case, and every case whose digest says so (one in RECHECK_EVERY,
  chosen by the case, never by what the process checked before), is checked again:
  a different verdict is a NotReproducible finding, saved at once, unreduced.
- A case the references disagree on is saved as a guard (a few per process) and
  warned about; it never fails the test.
- The case being checked is kept in flight (inflight.py), so that an engine that
  kills its process still leaves a finding.
"""

import contextlib
import os
import sys
import warnings
import weakref

from .files import ReportError
from .inflight import InFlight

MAX_GUARDS_SAVED = 3      # guards reduced and saved per process (each costs ~100s of checks)
RECHECK_EVERY = 50        # a passing case checked again, one in this many (history dependence)


class SavingChecker:
    """The checker, saving regression reports, counting every case, and telling the
    campaign (if any) what it saw. `spec`: the engine's spec, for the case in flight."""

    def __init__(self, checker, engine, directory, campaign=None, spec=None):
        from mflow.oracles.engine import spec_of

        from .stats import Stats
        self.checker, self.engine, self.directory = checker, engine, directory
        self.stats, self.campaign = Stats(), campaign
        self.guards_saved = 0
        self.in_search = False  # search.py: a failure found now is shrunk, then saved
        self.inflight = InFlight(directory, spec or spec_of(engine))
        self.inflight_error = None
        _open.add(self)

    def check(self, case):
        from mflow.oracles.checker import modes_for
        from mflow.oracles.verdict import EngineHang, accuses_engine
        saved = None
        modes = modes_for(case, self.checker.modes)
        try:
            self.inflight.write(case, modes)  # if the engine kills this process, it is kept
        except (OSError, ReportError) as e:  # a full disk: check on, without that net; say so
            if self.inflight_error is None:
                print(f"mflow: the case in flight cannot be kept on disk ({e}); a crash of "
                      "the engine's process will not be saved", file=sys.stderr, flush=True)
            self.inflight_error = str(e)
        verdict = self.checker.judge(case, modes)
        checked_twice = False
        if isinstance(verdict.outcome, EngineHang):
            # a hang is a finding only if it happens again: an engine that compiles on
            # first use (tinygrad, on a loaded machine) was over the limit once, then fast
            second = self.checker.judge(case, verdict.modes)
            checked_twice = isinstance(second.outcome, EngineHang)
            if not checked_twice:
                second.slow_once, verdict = True, second
        self.stats.add(verdict)  # every case counts, whatever its outcome
        try:
            failure = verdict.outcome
            if (failure is None or accuses_engine(failure)) and not checked_twice:
                again = self._again(verdict)
                if again is not None:
                    saved = self._save(again, reduce=False)
                    if saved is not None:
                        again.add_note(f"saved as the regression report {saved}")
                    raise again
            if failure is None:
                return verdict
            if not accuses_engine(failure):
                saved = self._guard(failure)
                return verdict
            if final_example() and not self.in_search:
                saved = self._save(failure)
                if saved is not None:
                    failure.add_note(f"saved as the regression report {saved}")
            raise failure
        finally:
            if self.campaign is not None:
                self.campaign.checked(self.stats, saved)

    def prefetch(self, cases):
        """The checker's references for the next `cases`, at once (Checker.prefetch)."""
        self.checker.prefetch(cases)

    @contextlib.contextmanager
    def searching(self):
        """Checks outside Hypothesis whose failure Hypothesis shrinks next (search.py):
        not saved as the final example."""
        self.in_search = True
        try:
            yield
        finally:
            self.in_search = False

    def close(self):
        """Nothing is in flight any more (the process finished)."""
        self.inflight.close()

    def _again(self, verdict):
        """A failing case, and a passing one whose digest says so, checked again: a
        NotReproducible failure if the verdict changed, else None."""
        from mflow.oracles.checker import case_digest
        from mflow.oracles.verdict import NotReproducible, same_failure
        if verdict.outcome is None and case_digest(verdict.case) % RECHECK_EVERY:
            return None
        second = self.checker.judge(verdict.case, verdict.modes)
        first = verdict.outcome
        if (first is None and second.outcome is None) or (
                first is not None and same_failure(first, second.outcome)):
            return None
        name = lambda o: "passed" if o is None else type(o).__name__  # noqa: E731
        failed = second if first is None else verdict
        return NotReproducible(
            f"the same case, checked twice: {name(first)}, then {name(second.outcome)} (the "
            f"engine's answers depend on history)\n{failed.describe()}", failed)

    def _save(self, failure, reduce=True, session=None):
        """`session`: (dtype, calls) of an engine session's failure (sessions.py), saved
        with its calls, unreduced (the machine shrank the sequence)."""
        from mflow.oracles.engine import engine_record

        from .reduce import reduce_and_save
        from .regressions import save
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        line = " ".join(filter(None, [test, reproduce_line()]))
        from mflow.oracles.verdict import EngineHang
        # a hang is saved as found: each try of the reducer would cost the time limit
        # (tinygrad compiling a 2,000-step chain: minutes; 500 tries: days)
        reduce = reduce and session is None and not isinstance(failure, EngineHang)
        try:
            saved = (reduce_and_save(failure, self.checker, self.engine, self.directory, line)
                     if reduce else
                     save(failure, directory=self.directory, reproduction=line,
                          extra=engine_record(self.engine), session=session))
        except (OSError, ReportError) as e:  # a full disk, a folder that is a link: the
            # finding stands, printed; only its report is lost
            failure.add_note(f"the regression report could NOT be saved in {self.directory}: "
                             f"{e}")
            self.stats.failures.append({"test": test, "kind": type(failure).__name__,
                                        "report": f"NOT saved ({e})"})
            return None
        self.stats.failures.append({"test": test, "kind": type(failure).__name__,
                                    "report": str(saved)})
        return saved

    def _guard(self, failure):
        """The references disagree: not the engine's fault, so the test goes on.
        Reduced and saved as a guard (a few per process), and warned."""
        from mflow.oracles.verdict import ReferenceDisagreement
        saved = None
        if self.guards_saved < MAX_GUARDS_SAVED:
            self.guards_saved += 1
            saved = self._save(failure)
        warnings.warn(ReferenceDisagreement(
            f"the references disagree (not your engine){f'; saved as {saved}' if saved else ''}:"
            f" {str(failure).splitlines()[-1].strip()[:300]}"), stacklevel=2)
        return saved


_open = weakref.WeakSet()  # every SavingChecker of this process, for close_all


def close_all():
    """The process is finishing: no checker has a case in flight any more."""
    for saving in list(_open):
        saving.close()


def reproduce_line():
    """The @reproduce_failure decorator that replays the current Hypothesis example
    (Hypothesis internals, pinned in constraints.txt; tests/test_hypothesis_internals.py)."""
    try:
        from hypothesis import __version__
        from hypothesis.control import current_build_context
        from hypothesis.core import encode_failure
        blob = encode_failure(current_build_context().data.choices)
        return f"@reproduce_failure({__version__!r}, {blob!r})"
    except Exception:  # noqa: BLE001 - outside Hypothesis, or its internals moved
        return ""


def final_example():
    """Whether Hypothesis is running the final (shrunk) example; True outside Hypothesis."""
    from hypothesis.control import current_build_context
    from hypothesis.errors import InvalidArgument
    try:
        return current_build_context().is_final
    except InvalidArgument:  # not under Hypothesis: a single check is final
        return True
