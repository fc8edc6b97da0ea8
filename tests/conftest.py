"""Test configuration: one thread per worker, Hypothesis profiles, the engine under test.

Profiles (choose with --hypothesis-profile NAME or MFLOW_PROFILE=NAME; default dev):
  dev   quick, random: for working on the code
  ci    derandomised, a fixed budget: what `tox` and CI run
  fuzz  long, random, with the example database: the campaign `tox -e fuzz` runs
Each is registered from Hypothesis's own default profile, so none inherits
another's settings by accident.

The engine: --engine module[:attribute] or MFLOW_ENGINE (default: mflow).
"""

import os
from pathlib import Path

# One thread per process, set before anything imports torch or numpy's BLAS: the
# graphs are small (8x8), so threads only fight `pytest -n auto`'s workers for the
# cores. torch is imported by the test modules, in the workers only: the xdist
# controller, which checks nothing, starts without it (seconds sooner).
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "1"
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402
from mflow.oracles.engine import EngineError, load_engine, supported  # noqa: E402
from mflow.oracles.verdict import ReferenceDisagreement, accuses_engine  # noqa: E402

# --campaign DIR: stats, progress, the report at the end
pytest_plugins = ["mflow.reports.campaign"]

ROOT = Path(__file__).resolve().parents[1]
_default = settings.get_profile("default")
_slow_is_fine = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
PROFILES = {
    "dev": dict(max_examples=25, deadline=None, suppress_health_check=_slow_is_fine),
    "ci": dict(max_examples=60, derandomize=True, deadline=None, database=None,
               print_blob=True, suppress_health_check=_slow_is_fine),
    "fuzz": dict(max_examples=int(os.environ.get("MFLOW_FUZZ_EXAMPLES", "1000")), deadline=None,
                 database=DirectoryBasedExampleDatabase(str(ROOT / ".hypothesis" / "examples")),
                 print_blob=True, suppress_health_check=_slow_is_fine),
}
for _name, _kw in PROFILES.items():
    settings.register_profile(_name, parent=_default, **_kw)

_profile = os.environ.get("MFLOW_PROFILE", "dev")
if _profile not in PROFILES:
    raise pytest.UsageError(f"MFLOW_PROFILE={_profile!r} is not a profile; "
                            f"choose one of {', '.join(PROFILES)}")
settings.load_profile(_profile)


def pytest_addoption(parser):
    parser.addoption("--engine", default=os.environ.get("MFLOW_ENGINE", "mflow"),
                     help="the engine under test: module[:attribute] of an adapter "
                          "(see oracles/engine.py); default mflow, or MFLOW_ENGINE")
    parser.addoption("--reports", default=os.environ.get("MFLOW_REPORTS_DIR",
                                                         str(ROOT / "reports" / "regressions")),
                     help="where a failing fuzz test saves its regression report "
                          "(default reports/regressions, or MFLOW_REPORTS_DIR)")
    parser.addoption("--strict-references", action="store_true",
                     default=os.environ.get("MFLOW_STRICT", "") not in ("", "0"),
                     help="end with exit status 6 when the references disagreed on some case "
                          "(a finding about the suite, not the engine; this project's own CI "
                          "sets it); default off, or MFLOW_STRICT=1")
    parser.addoption("--shards", type=int, default=int(os.environ.get("MFLOW_SHARDS", "4")),
                     help="how many items the random-graph fuzz test is split into, so that "
                          "pytest -n auto spreads it over the cores (default 4, or MFLOW_SHARDS)")


def pytest_configure(config):
    try:
        config.engine = load_engine(config.getoption("--engine"))
    except EngineError as e:
        raise pytest.UsageError(str(e)) from None


REFERENCES_DISAGREED = 6  # the exit status of a strict run whose references disagreed


def pytest_warning_recorded(warning_message, when, nodeid, location):
    if issubclass(warning_message.category, ReferenceDisagreement):
        _disagreements.append(nodeid)


_disagreements = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if _disagreements and exitstatus == 0 and session.config.getoption("--strict-references"):
        session.exitstatus = REFERENCES_DISAGREED


def pytest_generate_tests(metafunc):
    """`op` runs over the operations the engine supports; `shard` over --shards."""
    if "op" in metafunc.fixturenames:
        metafunc.parametrize("op", supported(metafunc.config.engine))
    if "saved_report" in metafunc.fixturenames:  # the gate replays the folder it is given
        from mflow.reports.regressions import reports
        folders = reports(metafunc.config.getoption("--reports"))
        metafunc.parametrize("saved_report", folders, ids=[f.name for f in folders])
    if "shard" in metafunc.fixturenames:
        metafunc.parametrize("shard", range(metafunc.config.getoption("--shards")))


@pytest.fixture(autouse=True)
def _a_seed_per_shard(request):
    """A derandomised profile (ci) seeds a test by its code alone, so every shard of a
    sharded test drew the same graphs (240 checks, 57 distinct graphs): give each
    shard its own fixed seed. Random profiles draw afresh anyway."""
    if "shard" not in request.fixturenames or not settings.default.derandomize:
        yield
        return
    test = request.function
    test._hypothesis_internal_use_seed = 0x5EED0000 + request.getfixturevalue("shard")
    try:
        yield
    finally:
        test._hypothesis_internal_use_seed = None


@pytest.fixture(scope="session")
def engine(request):
    return request.config.engine


class SavingChecker:
    """The checker, saving a regression report when Hypothesis replays the final,
    shrunk failing example (and only then: not every step of the shrinking), and
    telling the campaign (if any) what it saw."""

    def __init__(self, checker, engine, directory, campaign=None):
        from mflow.reports.stats import Stats
        self.checker, self.engine, self.directory = checker, engine, directory
        self.stats, self.campaign = Stats(), campaign
        self.guards_saved = 0

    def check(self, case):
        saved = None
        verdict = self.checker.judge(case)
        self.stats.add(verdict)  # every case counts, whatever its outcome
        try:
            if verdict.outcome is None:
                return verdict
            failure = verdict.outcome
            if not accuses_engine(failure):
                saved = self._guard(failure)
                return verdict
            if _final_example():
                from mflow.reports.regressions import reduce_and_save
                test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
                saved = reduce_and_save(failure, self.checker, self.engine, self.directory,
                                        " ".join(filter(None, [test, _reproduce_line()])))
                self.stats.failures.append({"test": test, "kind": type(failure).__name__,
                                            "report": str(saved)})
                failure.add_note(f"saved as the regression report {saved}")
            raise failure
        finally:
            if self.campaign is not None:
                self.campaign.checked(self.stats, saved)


    def _guard(self, failure):
        """The references disagree: not the engine's fault, so the test goes on.
        Reduced and saved as a guard (a few per process: each reduction costs
        hundreds of checks), warned (a strict run ends with status 6)."""
        import warnings

        from mflow.reports.regressions import reduce_and_save
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        saved = None
        if self.guards_saved < MAX_GUARDS_SAVED:
            self.guards_saved += 1
            saved = reduce_and_save(failure, self.checker, self.engine, self.directory,
                                    " ".join(filter(None, [test, _reproduce_line()])))
            self.stats.failures.append({"test": test, "kind": type(failure).__name__,
                                        "report": str(saved)})
        warnings.warn(ReferenceDisagreement(
            f"the references disagree (not your engine){f'; saved as {saved}' if saved else ''}:"
            f" {str(failure).splitlines()[-1].strip()[:300]}"), stacklevel=2)
        return saved


MAX_GUARDS_SAVED = 3


def _reproduce_line():
    """The @reproduce_failure decorator that replays the current Hypothesis example."""
    try:
        from hypothesis import __version__
        from hypothesis.control import current_build_context
        from hypothesis.core import encode_failure
        blob = encode_failure(current_build_context().data.choices)
        return f"@reproduce_failure({__version__!r}, {blob!r})"
    except Exception:  # noqa: BLE001 - outside Hypothesis, or its internals moved
        return ""


def _final_example():
    from hypothesis.control import current_build_context
    from hypothesis.errors import InvalidArgument
    try:
        return current_build_context().is_final
    except InvalidArgument:  # not under Hypothesis: a single check is final
        return True


@pytest.fixture(scope="session")
def checker(request, engine):
    from mflow.oracles.checker import Checker
    plain = Checker(engine)
    request.config.mflow_checker = plain
    return SavingChecker(plain, engine, request.config.getoption("--reports"),
                         request.config.mflow_campaign)


@pytest.fixture(scope="session")
def engine_ops(engine):
    return supported(engine)
