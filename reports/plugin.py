"""The pytest plugin: installing the package is enough (entry point `pytest11`).

A user's ordinary `pytest` run is untouched: the plugin only adds options, and
its fixtures and parameters all start with `mflow_`. Asked for, it brings its
own tests:

    pytest --mflow-fuzz  [--mflow-engine my_pkg.adapter:engine] [-n auto]
    pytest --mflow-gate  [--mflow-reports DIR]

--mflow-fuzz collects the shipped fuzz tests (mflow/reports/fuzzing.py),
--mflow-gate the gate (mflow/reports/gate.py: every saved report replayed);
with paths of your own on the command line, both run beside them.

Options (each also an environment variable, for tox and CI):
  --mflow-engine SPEC    the engine under test, module[:attribute] (MFLOW_ENGINE; mflow)
  --mflow-reports DIR    where failures are saved and what the gate replays
                         (MFLOW_REPORTS_DIR; <rootdir>/reports/regressions)
  --mflow-shards N       items the random-graph test is split into (MFLOW_SHARDS; 4)
  --mflow-strict         exit status 6 when the references disagreed (MFLOW_STRICT=1)
  --mflow-skip-ops OPS    leave these operations out (comma-separated; MFLOW_SKIP_OPS)
  --mflow-fail-on-warnings  a right answer the engine warned about is a failure
                         (NumericallyUnsafe; MFLOW_FAIL_ON_WARNINGS=1); else counted, shown
  --mflow-campaign DIR   record the run: stats, progress, the report (MFLOW_CAMPAIGN_DIR)
  --mflow-progress S     with a campaign, print progress every S seconds (10)
  --mflow-db URL         share found examples with other machines: redis://host:port/n,
                         beside the local directory (MFLOW_DB; needs mflow[scale])
  --mflow-machine NAME   this machine's name in campaign records and saved reports
                         (MFLOW_MACHINE; the host name)
Hypothesis profiles "mflow-dev", "mflow-ci" and "mflow-fuzz" are registered; MFLOW_PROFILE
(dev, ci or fuzz) loads one, and --mflow-fuzz / --mflow-gate load mflow-dev otherwise.

Exit status: 0 all passed; 1 a test failed (an engine bug was found, or the gate
replayed one that is still there; -x or --maxfail stopping the run after one
included); 2 interrupted (Ctrl-C); 4 usage error (an --mflow-engine that does not
load, --mflow-shards below 1, --mflow-reports that is not a folder, a malformed
--mflow-db), one line; 5 no tests collected; 6 (strict only) no engine failure, but
the references disagreed on some case, which was saved as a guard.

Light to import: no torch, JAX or Hypothesis strategies until a test needs them.
"""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SHIPPED = {"fuzz": HERE / "fuzzing.py", "gate": HERE / "gate.py"}
REFERENCES_DISAGREED = 6  # the exit status of a strict run whose references disagreed

ENGINE = pytest.StashKey()         # the adapter under test
CAMPAIGN = pytest.StashKey()       # the Campaign recording this run, or None
DISAGREED = pytest.StashKey()      # node ids whose references disagreed


def pytest_addoption(parser):
    group = parser.getgroup("mflow", "gradient checking with mflow's suite")
    env = os.environ.get
    group.addoption("--mflow-fuzz", action="store_true",
                    help="collect the suite's fuzz tests (random graphs on the engine)")
    group.addoption("--mflow-gate", action="store_true",
                    help="collect the regression gate (every saved report replayed)")
    group.addoption("--mflow-engine", default=env("MFLOW_ENGINE", "mflow"), metavar="SPEC",
                    help="the engine under test: module[:attribute] of an adapter "
                         "(mflow.oracles.engine); default mflow, or MFLOW_ENGINE")
    group.addoption("--mflow-reports", default=env("MFLOW_REPORTS_DIR"), metavar="DIR",
                    help="where failures are saved, and what the gate replays (default "
                         "<rootdir>/reports/regressions, or MFLOW_REPORTS_DIR)")
    group.addoption("--mflow-shards", type=int, default=int(env("MFLOW_SHARDS", "4")),
                    metavar="N", help="items the random-graph test is split into, so that "
                                      "-n auto spreads it (default 4, or MFLOW_SHARDS)")
    group.addoption("--mflow-strict", action="store_true",
                    default=env("MFLOW_STRICT", "") not in ("", "0"),
                    help="end with exit status 6 when the references disagreed on some case "
                         "(a finding about the suite, never the engine); or MFLOW_STRICT=1")
    group.addoption("--mflow-skip-ops", default=env("MFLOW_SKIP_OPS", ""), metavar="OPS",
                    help="operations to leave out, comma-separated (a known bug that would "
                         "stop every graph containing it; MFLOW_SKIP_OPS)")
    group.addoption("--mflow-fail-on-warnings", action="store_true",
                    default=env("MFLOW_FAIL_ON_WARNINGS", "") == "1",
                    help="a right answer the engine warned about (overflow, invalid value) is "
                         "a NumericallyUnsafe failure; else it is counted and shown "
                         "(MFLOW_FAIL_ON_WARNINGS=1)")
    group.addoption("--mflow-campaign", default=env("MFLOW_CAMPAIGN_DIR"), metavar="DIR",
                    help="record this run in DIR: stats, progress, the comparison report")
    group.addoption("--mflow-progress", type=float, default=10.0, metavar="SECONDS",
                    help="with --mflow-campaign, print progress every SECONDS (0: never)")
    group.addoption("--mflow-db", default=env("MFLOW_DB"), metavar="URL",
                    help="a Redis example database shared by the machines of a campaign, "
                         "redis://host:port/n, beside the local one (fuzz profile; MFLOW_DB)")
    group.addoption("--mflow-machine", default=env("MFLOW_MACHINE"), metavar="NAME",
                    help="this machine's name in campaign records and saved reports "
                         "(default the host name; MFLOW_MACHINE)")


def _active(config):
    return config.getoption("--mflow-fuzz") or config.getoption("--mflow-gate")


_session_config = []  # the config, for hooks that get none (one session per process)


def pytest_configure(config):
    _session_config[:] = [config]
    config.stash[DISAGREED] = []
    if config.getoption("--mflow-machine"):  # read by saved reports and records, workers too
        os.environ["MFLOW_MACHINE"] = config.getoption("--mflow-machine")
    _register_profiles(config)
    if _active(config):
        # one thread per worker, before torch or XLA start: the graphs are small, and
        # threads would only fight -n auto's workers for the cores
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                              "intra_op_parallelism_threads=1")
        shipped = [str(SHIPPED[k]) for k in ("fuzz", "gate") if config.getoption(f"--mflow-{k}")]
        explicit = config.args_source == pytest.Config.ArgsSource.ARGS and any(
            Path(a.split("::")[0]).exists() for a in config.args)
        config.args[:] = (list(config.args) if explicit else []) + shipped
        # usage errors before any record is touched: one line, exit status 4
        wanted_ops(config)
        if config.getoption("--mflow-shards") < 1:
            raise pytest.UsageError(f"--mflow-shards {config.getoption('--mflow-shards')}: "
                                    "give 1 or more (items the random-graph test is split into)")
        where = reports_dir(config)
        if os.path.lexists(where) and not os.path.isdir(where):
            raise pytest.UsageError(f"--mflow-reports {where}: not a folder")
        engine_of(config)
    from .campaign import start_campaign
    config.stash[CAMPAIGN] = start_campaign(config, lambda: engine_of(config))


def _register_profiles(config):
    from .profiles import register
    try:
        register(config.getoption("--mflow-engine"), config.getoption("--mflow-db"),
                 config.rootpath, _active(config))
    except ImportError:  # mflow installed without its test extras: fine until asked for
        if _active(config):
            raise pytest.UsageError("the suite needs its test extras: pip install "
                                    "'mflow[test]'") from None
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def reports_dir(config):
    return Path(config.getoption("--mflow-reports")
                or config.rootpath / "reports" / "regressions")


def engine_of(config):
    """The adapter under test, loaded once per process (a bad spec: a usage error)."""
    if ENGINE not in config.stash:
        from mflow.oracles.engine import EngineError, load_engine
        try:
            config.stash[ENGINE] = load_engine(config.getoption("--mflow-engine"))
        except EngineError as e:
            raise pytest.UsageError(str(e)) from None
    return config.stash[ENGINE]


def pytest_collection_modifyitems(config, items):
    """The fuzz items longest first, in the order fuzzing.py's LONGEST_FIRST gives."""
    if config.getoption("--mflow-fuzz"):
        def rank(item):
            order = getattr(getattr(item, "module", None), "LONGEST_FIRST", ())
            name = getattr(item, "originalname", "")
            return order.index(name) if name in order else len(order)
        items.sort(key=rank)


def pytest_generate_tests(metafunc):
    """`mflow_op` runs over the engine's operations, `mflow_shard` over the shards,
    `mflow_report` over the saved reports."""
    config, names = metafunc.config, metafunc.fixturenames
    if "mflow_op" in names:
        from mflow.oracles.engine import supported
        metafunc.parametrize("mflow_op", supported(engine_of(config), wanted_ops(config)))
    if "mflow_shard" in names:
        metafunc.parametrize("mflow_shard", range(config.getoption("--mflow-shards")))
    if "mflow_report" in names:
        folders = engine_reports(config)
        metafunc.parametrize("mflow_report", folders, ids=[f.name for f in folders])


OTHERS = pytest.StashKey()  # {engine spec: reports} the gate leaves to their own engines


def engine_reports(config):
    """The saved reports made on the engine under test (and those that cannot be read,
    so that the gate names them); another engine's reports are its gate's, not this
    one's: counted in OTHERS and said in the header."""
    from .files import ReportError, read_json
    from .regressions import recorded_engine, reports, same_engine
    spec, mine, others = config.getoption("--mflow-engine"), [], {}
    for folder in reports(reports_dir(config)):
        try:  # the one bounded reader: a FIFO or a link to /dev/zero is a named error
            recorded = recorded_engine(read_json(folder / "report.json"))
        except ReportError:  # unreadable: the gate's load names the damage
            recorded = spec
        if recorded is None or same_engine(recorded, spec):
            mine.append(folder)
        else:
            others[recorded] = others.get(recorded, 0) + 1
    config.stash[OTHERS] = others
    return mine


def pytest_report_header(config):
    if not config.getoption("--mflow-gate"):
        return None
    engine_reports(config)
    others = config.stash[OTHERS]
    if others:
        return ["mflow gate: not replayed here, made on other engines: " + ", ".join(
            f"{n} of {spec}" for spec, n in sorted(others.items()))]


@pytest.fixture(scope="session")
def mflow_engine(request):
    return engine_of(request.config)


@pytest.fixture(scope="session")
def mflow_engine_ops(request, mflow_engine):
    from mflow.oracles.engine import supported
    return supported(mflow_engine, wanted_ops(request.config))


def wanted_ops(config):
    """Every operation but those --mflow-skip-ops leaves out (a known bug not fixed yet,
    so that it does not stop every graph that contains it); unknown names: a usage error."""
    from mflow.oracles.catalogue import CATALOGUE as OPS
    skip = [o for o in (config.getoption("--mflow-skip-ops") or "").split(",") if o.strip()]
    unknown = sorted(set(o.strip() for o in skip) - set(OPS))
    if unknown:
        raise pytest.UsageError(f"--mflow-skip-ops: {', '.join(unknown)} are not operations; "
                                f"names are those of the catalogue: {', '.join(sorted(OPS))}")
    return [o for o in OPS if o not in {o.strip() for o in skip}]


@pytest.fixture(scope="session")
def mflow_checker(request, mflow_engine):
    """Checks a case, saves its failure, counts it; `.checker` is the plain Checker."""
    from mflow.oracles.checker import Checker

    from .saving import SavingChecker
    fail = request.config.getoption("--mflow-fail-on-warnings")
    saving = SavingChecker(Checker(mflow_engine, fail_on_warnings=fail), mflow_engine,
                           reports_dir(request.config), request.config.stash[CAMPAIGN],
                           spec=request.config.getoption("--mflow-engine"))
    yield saving
    saving.close()


def pytest_warning_recorded(warning_message, when, nodeid, location):
    from mflow.oracles.verdict import ReferenceDisagreement
    if issubclass(warning_message.category, ReferenceDisagreement):
        _disagreements.append(nodeid)


_disagreements = []  # the hook has no config; one session per process


def pytest_sessionstart(session):
    """A case left in flight by a dead run of this engine (one process: a segfault took
    pytest down) is replayed in a fresh process, and saved if it kills that one too,
    before anything else (reports/inflight.py)."""
    config = session.config
    if _active(config) and not hasattr(config, "workerinput"):
        _recover(config)


def _recover(config, worker=None):
    from mflow.oracles.engine import engine_record

    from .inflight import recover
    engine = engine_of(config)
    lines = recover(reports_dir(config), config.getoption("--mflow-engine"),
                    {**engine_record(engine), "engine_name": engine.name}, worker=worker)
    for line in lines:  # printed at once: the engine may kill this run too
        print(f"mflow: {line}", flush=True)
    return lines


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    """pytest-xdist: a worker died (a segfault, os._exit): what it was checking is
    replayed in a fresh process, and saved if that dies too."""
    worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", None)
    config = _session_config[0] if _session_config else None
    if worker and config is not None and _active(config):
        lines = _recover(config, worker)
        if lines:
            report.longrepr = f"{report.longrepr}\n" + "\n".join(lines)


def pytest_keyboard_interrupt(excinfo):
    """pytest-xdist ends a run stopped by -x or --maxfail with its Interrupted, which
    pytest counts as a Ctrl-C (status 2): told apart here, so that a failure found
    keeps its status 1."""
    if type(excinfo.value).__name__ == "Interrupted" and \
            str(excinfo.value).startswith("stopping after"):
        _stopped_by_maxfail.append(True)


_stopped_by_maxfail = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if _active(session.config):  # a finished process leaves nothing in flight
        from .saving import close_all
        close_all()
        if os.environ.get("PYTEST_XDIST_WORKER") and "jax" in sys.modules:
            # JAX's exit hook empties every cache one by one: 6 s in a worker that
            # checked 25,000 graphs, while the other worker and the controller wait
            # (benchmarks/results/campaign_profile.md); the process ends anyway
            import atexit
            try:  # (a private hook: absent in another JAX, the exit just stays slower)
                from jax._src.api import clean_up
            except ImportError:
                clean_up = None
            if clean_up is not None:
                atexit.unregister(clean_up)
    if exitstatus == pytest.ExitCode.INTERRUPTED and _stopped_by_maxfail and \
            session.testsfailed:
        session.exitstatus = exitstatus = pytest.ExitCode.TESTS_FAILED
    if _disagreements and exitstatus == 0 and session.config.getoption("--mflow-strict"):
        session.exitstatus = REFERENCES_DISAGREED
