"""The regression gate the plugin ships (`pytest --mflow-gate`): every saved report
in --mflow-reports replayed against the engine under test. It fails while a saved
bug is still there and passes once it is fixed. A guard (a case the references
once disagreed on) never fails the engine: if the references disagree on it
again, it is an expected failure, or a failure under --mflow-strict. A session's
report replays its calls in order (reports/sequence.py)."""

import pytest
from mflow.oracles.verdict import accuses_engine
from mflow.reports import regressions
from mflow.reports.sequence import replayed


def test_saved_failure_stays_fixed(mflow_report, mflow_checker, request):
    case, report = regressions.load(mflow_report)
    # the plain checker: a replay saves nothing; a session's report: its calls, in order
    outcome = replayed(mflow_checker.checker, mflow_report, case, report)
    if outcome is None:
        return
    if regressions.is_guard(report) and not accuses_engine(outcome):
        if request.config.getoption("--mflow-strict"):
            raise outcome
        pytest.xfail(f"the references disagree (not your engine): {mflow_report.name}")
    raise outcome
