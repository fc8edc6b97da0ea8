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
replayed one that is still there); 2 interrupted; 4 usage error (a bad
--mflow-engine); 5 no tests collected; 6 (strict only) no engine failure, but
the references disagreed on some case, which was saved as a guard.

Light to import: no torch, JAX or Hypothesis strategies until a test needs them.
"""

import os
import sys
import warnings
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SHIPPED = {"fuzz": HERE / "fuzzing.py", "gate": HERE / "gate.py"}
REFERENCES_DISAGREED = 6  # the exit status of a strict run whose references disagreed
MAX_GUARDS_SAVED = 3      # guards reduced and saved per process (each costs ~100s of checks)
RECHECK_EVERY = 50        # a passing case is checked again now and then (history dependence)

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
        wanted_ops(config)  # a mistyped name: a usage error before any record is touched
    from .campaign import start_campaign
    config.stash[CAMPAIGN] = start_campaign(config, lambda: engine_of(config))


def _register_profiles(config):
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # mflow installed without its test extras: fine until asked for
        if _active(config):
            raise pytest.UsageError("the suite needs its test extras: pip install "
                                    "'mflow[test]'") from None
        return
    default = settings.get_profile("default")
    slow_is_fine = [HealthCheck.too_slow, HealthCheck.filter_too_much,
                    HealthCheck.data_too_large]
    profiles = {
        "dev": dict(max_examples=25, deadline=None, suppress_health_check=slow_is_fine),
        "ci": dict(max_examples=60, derandomize=True, deadline=None, database=None,
                   print_blob=True, suppress_health_check=slow_is_fine),
        "fuzz": dict(max_examples=int(os.environ.get("MFLOW_FUZZ_EXAMPLES", "1000")),
                     deadline=None, print_blob=True, suppress_health_check=slow_is_fine,
                     # one database per engine: one engine's found examples are not
                     # replayed first on another
                     database=example_database(config)),
    }
    for name, kw in profiles.items():  # each from Hypothesis's default: none inherits another's
        settings.register_profile(f"mflow-{name}", parent=default, **kw)
    chosen = os.environ.get("MFLOW_PROFILE")
    if chosen is not None and chosen not in profiles:
        raise pytest.UsageError(f"MFLOW_PROFILE={chosen!r} is not a profile; "
                                f"choose one of {', '.join(profiles)}")
    if chosen or _active(config):
        settings.load_profile(f"mflow-{chosen or 'dev'}")


def example_database(config):
    """The fuzz profile's example database: a local directory per engine, and with
    --mflow-db redis://host:port/n also a Redis database shared by every machine of
    the campaign (keys prefixed by the engine), so that what one machine finds the
    others replay first. Hypothesis's own databases: each machine writes what it
    finds to both, and reads both."""
    from hypothesis.database import DirectoryBasedExampleDatabase, MultiplexedDatabase
    engine = _safe(config.getoption("--mflow-engine"))
    local = DirectoryBasedExampleDatabase(str(config.rootpath / ".hypothesis" /
                                              "mflow-examples" / engine))
    url = config.getoption("--mflow-db")
    if not url or not _active(config):
        return local
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise pytest.UsageError(f"--mflow-db {url!r}: give redis://host:port/n (the database "
                                "shared by the machines of a campaign)")
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError:
        raise pytest.UsageError("--mflow-db needs the redis package: pip install "
                                "'mflow[scale]'") from None
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as e:
        raise pytest.UsageError(f"--mflow-db {url!r}: no Redis answers there ({e})") from None
    shared = RedisExampleDatabase(client, key_prefix=f"mflow:{engine}:".encode())
    return MultiplexedDatabase(local, shared)


def _safe(spec):
    """A folder name for an engine spec."""
    import re
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec or "mflow")[:100]


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
    import json

    from .regressions import recorded_engine, reports, same_engine
    spec, mine, others = config.getoption("--mflow-engine"), [], {}
    for folder in reports(reports_dir(config)):
        try:
            recorded = recorded_engine(json.loads((folder / "report.json").read_text()))
        except Exception:  # noqa: BLE001 - unreadable: the gate's load names the damage
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


@pytest.fixture(autouse=True)
def _mflow_seed_per_shard(request):
    """A derandomised profile (ci) seeds a test by its code alone, so every shard drew
    the same graphs (240 checks, 59 distinct): each shard gets its own fixed seed."""
    from hypothesis import settings
    if "mflow_shard" not in request.fixturenames or not settings.default.derandomize:
        yield
        return
    test = request.function
    test._hypothesis_internal_use_seed = 0x5EED0000 + request.getfixturevalue("mflow_shard")
    try:
        yield
    finally:
        test._hypothesis_internal_use_seed = None


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
    from mflow.ops import OPS
    skip = [o for o in (config.getoption("--mflow-skip-ops") or "").split(",") if o.strip()]
    unknown = sorted(set(o.strip() for o in skip) - set(OPS))
    if unknown:
        raise pytest.UsageError(f"--mflow-skip-ops: {', '.join(unknown)} are not operations; "
                                f"names are those of mflow.ops.OPS: {', '.join(sorted(OPS))}")
    return [o for o in OPS if o not in {o.strip() for o in skip}]


@pytest.fixture(scope="session")
def mflow_checker(request, mflow_engine):
    """Checks a case, saves its failure, counts it; `.checker` is the plain Checker."""
    from mflow.oracles.checker import Checker
    fail = request.config.getoption("--mflow-fail-on-warnings")
    return SavingChecker(Checker(mflow_engine, fail_on_warnings=fail), mflow_engine,
                         reports_dir(request.config),
                         request.config.stash[CAMPAIGN])


def pytest_warning_recorded(warning_message, when, nodeid, location):
    from mflow.oracles.verdict import ReferenceDisagreement
    if issubclass(warning_message.category, ReferenceDisagreement):
        _disagreements.append(nodeid)


_disagreements = []  # the hook has no config; one session per process


def pytest_sessionstart(session):
    """A case left in flight by a run that died (one process: a segfault took pytest
    down) is saved before anything else."""
    config = session.config
    if _active(config) and not hasattr(config, "workerinput"):
        for path in sorted((reports_dir(config) / ".inflight").glob("*.case")):
            folder = save_inflight(reports_dir(config), path.stem, "a previous run died")
            if folder is not None:
                print(f"mflow: a previous run died while checking a case: saved as {folder}",
                      flush=True)  # the engine may kill this run too, before pytest flushes


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if _active(session.config):  # a finished process leaves nothing in flight
        paths = {_inflight_path(reports_dir(session.config)), *_inflight_files}
        for path in paths:  # this session's, and those of checkers that tests made
            f = _inflight_files.pop(path, None)
            if f is not None:
                try:
                    f.close()
                except OSError:  # a full disk: what is buffered cannot go out, nor is needed
                    pass
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # the last process to finish removes the folder
            except OSError:
                pass
    if _disagreements and exitstatus == 0 and session.config.getoption("--mflow-strict"):
        session.exitstatus = REFERENCES_DISAGREED


class SavingChecker:
    """The checker, saving a regression report when Hypothesis replays the final,
    shrunk failing example (and only then: not every step of the shrinking),
    counting every case, and telling the campaign (if any) what it saw."""

    def __init__(self, checker, engine, directory, campaign=None):
        from .stats import Stats
        self.checker, self.engine, self.directory = checker, engine, directory
        self.stats, self.campaign = Stats(), campaign
        self.guards_saved = 0

    def check(self, case):
        from mflow.oracles.verdict import accuses_engine
        saved = None
        try:
            _write_inflight(self.directory, case)  # if the engine kills this process, it is saved
        except OSError as e:  # a full disk: check on, without that safety net; say so once
            if not getattr(self, "inflight_error", None):
                print(f"mflow: the case in flight cannot be kept on disk ({e}); a crash of "
                      "the engine's process will not be saved", file=sys.stderr, flush=True)
            self.inflight_error = str(e)
        from mflow.oracles.checker import modes_for
        from mflow.oracles.verdict import EngineHang
        verdict = self.checker.judge(case, modes_for(case, self.checker.modes))
        if isinstance(verdict.outcome, EngineHang):
            # a hang is a finding only if it happens again: an engine that compiles on
            # first use (tinygrad, on a loaded machine) was over the limit once, then fast
            second = self.checker.judge(case, verdict.modes)
            if not isinstance(second.outcome, EngineHang):
                second.slow_once, verdict = True, second
        self.stats.add(verdict)  # every case counts, whatever its outcome
        try:
            failure = verdict.outcome
            if failure is None or accuses_engine(failure):
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
            if _final_example():
                saved = self._save(failure)
                if saved is not None:
                    failure.add_note(f"saved as the regression report {saved}")
            raise failure
        finally:
            if self.campaign is not None:
                self.campaign.checked(self.stats, saved)

    def _again(self, verdict):
        """Every failing case, and every RECHECK_EVERY-th passing one, checked again:
        a NotReproducible failure if the verdict changed, else None."""
        from mflow.oracles.verdict import NotReproducible, same_failure
        if verdict.outcome is None:
            self.passed = getattr(self, "passed", 0) + 1
            if self.passed % RECHECK_EVERY:
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

    def _save(self, failure, reduce=True):
        from mflow.oracles.engine import engine_record

        from .reduce import reduce_and_save
        from .regressions import save
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        line = " ".join(filter(None, [test, _reproduce_line()]))
        try:
            saved = (reduce_and_save(failure, self.checker, self.engine, self.directory, line)
                     if reduce else save(failure, self.engine, self.directory, line,
                                         extra=engine_record(self.engine)))
        except OSError as e:  # a full disk: the finding stands, printed, only its report is lost
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


# --- a case in flight: an engine that kills its process still leaves a finding ------

def _inflight_path(directory, worker=None):
    worker = worker or os.environ.get("PYTEST_XDIST_WORKER", "main")
    return Path(directory) / ".inflight" / f"{worker}.case"


_inflight_files = {}  # path -> the file kept open, overwritten in place per case


def _write_inflight(directory, case):
    """The case about to be checked, on disk: one line of JSON (the program, each
    array's shape and dtype), then the arrays' bytes; overwritten in place and flushed
    to the kernel (which keeps it when the process dies), ~20 µs, where a new .npz per
    case cost 800 µs. It is whole before the engine runs: only a write cut in the middle
    is unreadable, and the engine does not run then."""
    import json

    import numpy as np
    path = _inflight_path(directory)
    f = _inflight_files.get(path)
    if f is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = _inflight_files[path] = open(path, "wb")  # noqa: SIM115 - kept for the session
    arrays = [np.ascontiguousarray(a) for a in (*case.inputs, case.cotangent)]
    head = json.dumps({"program": case.program.to_json(),
                       "arrays": [[list(a.shape), a.dtype.str] for a in arrays]})
    f.seek(0)
    f.write(head.encode() + b"\n" + b"".join(a.tobytes() for a in arrays))
    f.truncate()
    f.flush()


def _read_inflight(path):
    import json

    import numpy as np
    from mflow.oracles.program import Case, Program
    data = path.read_bytes()
    head, _, body = data.partition(b"\n")
    meta = json.loads(head)
    program = Program.from_json(meta["program"])
    arrays, offset = [], 0
    for shape, dtype in meta["arrays"]:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        arrays.append(np.frombuffer(body[offset:offset + n], dtype).reshape(shape).copy())
        offset += n
    if len(arrays) != len(program.inputs) + 1 or offset != len(body):
        raise ValueError("a half-written case")
    return Case(program, tuple(arrays[:-1]), arrays[-1])


def save_inflight(directory, worker, how):
    """Save the case a dead process was checking as an EngineCrash report; the folder,
    or None if there was none (or it cannot be read)."""
    from mflow.oracles.verdict import EngineCrash, Verdict

    from .regressions import save
    path = _inflight_path(directory, worker)
    try:
        case = _read_inflight(path)
    except Exception:  # noqa: BLE001 - nothing in flight, or a half-written file
        return None
    try:  # the report names the engine that died, whatever it is
        name = engine_of(_session_config[0]).name
    except Exception:  # noqa: BLE001 - no config, or an adapter that does not load
        name = "the engine under test"
    verdict = Verdict(case, name)
    verdict.errors["engine"] = f"ProcessDied: {how}"
    try:
        from mflow.oracles.engine import engine_record
        engine = engine_of(_session_config[0])
        extra = engine_record(engine)
    except Exception:  # noqa: BLE001 - the spec is recorded all the same
        engine = None
        extra = {"engine_spec": _session_config[0].getoption("--mflow-engine")
                 if _session_config else None}
    folder = save(EngineCrash(f"the engine's process died ({how}) while checking this case\n"
                              f"{verdict.describe()}", verdict), engine, directory, extra=extra)
    path.unlink(missing_ok=True)
    return folder


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    """pytest-xdist: a worker died (a segfault, os._exit): save what it was checking."""
    worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", None)
    config = _session_config[0] if _session_config else None
    if worker and config is not None and _active(config):
        folder = save_inflight(reports_dir(config), worker, f"worker {worker} crashed")
        if folder is not None:
            report.longrepr = f"{report.longrepr}\nthe case it was checking: saved as {folder}"


def _reproduce_line():
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


def _final_example():
    from hypothesis.control import current_build_context
    from hypothesis.errors import InvalidArgument
    try:
        return current_build_context().is_final
    except InvalidArgument:  # not under Hypothesis: a single check is final
        return True
