"""A fuzzing campaign's bookkeeping, for the pytest plugin (plugin.py):

    pytest -n auto --mflow-fuzz --mflow-campaign DIR [--mflow-progress SECONDS]

Every process that checks graphs (each xdist worker, or the one process) writes
what its checker saw to DIR/stats-<worker>.json every few seconds and at once
when it saves a failure, atomically: a run stopped at any moment keeps what it
found. The controlling process prints a progress line (graphs checked,
failures, rate) every --mflow-progress seconds and, at the end, after Ctrl-C as well,
merges the files and writes the comparison report (DIR/index.html and
DIR/summary.md, see reports/comparison.py) and prints the summary.
"""

import datetime
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from mflow.reports import atomic_write, files, records

# each flush writes the whole record (~20 ms): every 2 s cost a campaign 1 % of its time
# (benchmarks/results/campaign_profile.md); a saved failure is flushed at once anyway
FLUSH_SECONDS = 5.0


def start_campaign(config, engine):
    """The Campaign of this run (registered as a plugin), or None without --mflow-campaign.
    `engine()`: the engine under test, for the kink table recorded at the end."""
    directory = config.getoption("--mflow-campaign")
    if not directory:
        return None
    worker = getattr(config, "workerinput", {}).get("workerid")
    campaign = Campaign(Path(directory), worker, config)
    campaign.engine = engine
    config.pluginmanager.register(campaign, "mflow-campaign")
    return campaign


class Campaign:
    def __init__(self, directory, worker, config):
        self.directory, self.worker, self.config = directory, worker, config
        self.stats, self.last_flush = None, 0.0
        self.failed_tests, self.started = [], time.time()
        self.progress_every, self.last_progress = config.getoption("--mflow-progress"), time.time()
        self._thread, self._stop = None, threading.Event()
        self.write_error = None  # the last failed write of a record (a full disk), if any
        if worker is None:  # the controller (or the one process): a new campaign
            import pytest
            try:
                files.folder(self.directory)
                self._lock = _lock(self.directory)  # before the records move
                records.claim(self.directory)
            except files.ReportError as e:
                raise pytest.UsageError(f"--mflow-campaign {e}") from None

    # -- in every process that checks graphs
    def checked(self, stats, saved=None):
        """After each check: flush now and then, and at once when a failure was saved."""
        self.stats = stats
        now = time.time()
        if saved is not None or now - self.last_flush > FLUSH_SECONDS:
            self.flush()
        if self.worker is None and self.progress_every and \
                now - self.last_progress > self.progress_every:
            self.show_progress()

    def flush(self):
        if self.stats is None:
            return
        self.last_flush = time.time()
        name = f"stats-{self.worker or 'main'}.json"
        try:
            atomic_write(self.directory / name, json.dumps(self.stats.to_dict()))
        except OSError as e:  # a full disk must not stop the checking: say so, once
            if self.write_error is None:
                print(f"mflow: campaign records NOT written to {self.directory}: {e}",
                      file=sys.stderr, flush=True)
            self.write_error = str(e)

    # -- in the controller
    def merged(self):
        from .records import load
        return load(self.directory)[0]  # a damaged file is left out (only a foreign one is)

    def show_progress(self):
        self.last_progress = time.time()
        s = self.merged()
        elapsed = max(time.time() - self.started, 1e-9)
        failures = max(len(s.failures), len(self.failed_tests))
        line = (f"[campaign {_clock(elapsed)}] {s.checked:,} graphs checked, "
                f"{failures} failure{'s' * (failures != 1)}, {s.checked / elapsed:.1f} graphs/s")
        capman = self.config.pluginmanager.getplugin("capturemanager")
        terminal = self.config.pluginmanager.getplugin("terminalreporter")
        if terminal is None:
            return
        with capman.global_and_fixture_disabled():
            if getattr(getattr(terminal, "_tw", None), "width_of_current_line", 0):
                terminal.write("\n")  # after xdist's progress dots
            terminal.write_line(line)

    def start_progress(self):
        if not self.progress_every:
            return

        def loop():
            while not self._stop.wait(min(1.0, self.progress_every)):
                if time.time() - self.last_progress >= self.progress_every:
                    self.show_progress()
        self._thread = threading.Thread(target=loop, name="campaign progress", daemon=True)
        self._thread.start()

    def finish(self, terminal, exitstatus):
        """Merge, write the report, print the summary; Ctrl-C is held off meanwhile
        so that a second press does not leave half a report."""
        from .comparison import write_report
        from .summary import summary_lines
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            for name, record in (("failures.json", self.failed_tests),
                                 ("run.json", self._run(exitstatus))):
                try:
                    atomic_write(self.directory / name, json.dumps(record))
                except OSError as e:
                    self.write_error = f"{name}: {e}"
            stats = self.merged()
            if self.stats is not None and stats.checked < self.stats.checked:
                stats = self.stats  # this process's own count, when its file could not be written
            try:
                engine = self.engine()
                named = f"{engine.name} {_engine_version(engine)}".strip()
            except Exception:  # noqa: BLE001 - a bad adapter was a usage error already
                named = None
            for line in summary_lines(stats, self.failed_tests, interrupted=exitstatus == 2,
                                      engine=named):
                terminal.write_line(line)
            if self.write_error:
                terminal.write_line(f"campaign records NOT all written to {self.directory} "
                                    f"(the summary above is complete): {self.write_error}",
                                    red=True, bold=True)
            try:
                html, markdown = write_report(self.directory)
            except Exception as e:  # noqa: BLE001 - the summary above stands; say what broke
                terminal.write_line(f"comparison report NOT written: {type(e).__name__}: {e}",
                                    red=True, bold=True)
            else:
                terminal.write_line(f"comparison report: {html}")
                terminal.write_line(f"                   {markdown}")
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, previous_term)

    def _run(self, exitstatus):
        from .regressions import _versions, machine
        now = time.time()
        try:
            engine = self.engine()
        except Exception:  # noqa: BLE001 - a bad adapter was a usage error already
            engine = None
        return {"started": _iso(self.started), "finished": _iso(now),
                "seconds": now - self.started, "interrupted": exitstatus == 2,
                "exitstatus": int(exitstatus), "command": self.portable(" ".join(sys.argv)),
                "engine": self.config.getoption("--mflow-engine", default="mflow"),
                "engine_name": getattr(engine, "name", None),
                "engine_version": _engine_version(engine),
                "machine": machine(),
                "versions": _versions(),
                # the engine's derivative at each kink, so the report can be rebuilt anywhere
                "kinks": _kinks(engine)}

    def portable(self, text):
        """Text for a record that may be published: the machine's own paths (the project,
        the Python environment, the home folder) replaced by names that say what they were."""
        for path, name in ((str(self.config.rootpath), "."), (sys.prefix, "<python>"),
                           (os.path.expanduser("~"), "~")):
            if len(path) > 1:
                text = text.replace(path + os.sep, name + os.sep if name != "." else "")
        return text

    # -- pytest hooks (the instance is registered as a plugin)
    def pytest_sessionstart(self, session):
        if self.worker is None and _distributed(self.config):
            self.start_progress()  # the workers check graphs; the controller only watches
        if self.worker is None and threading.current_thread() is threading.main_thread():
            self._presses = 0
            self._default_int = signal.signal(signal.SIGINT, self._ctrl_c)
            # a stop asked for by another program (timeout, a CI's cancel, kill) ends the run
            # as a Ctrl-C does: with its summary and report, marked stopped early
            self._default_term = signal.signal(signal.SIGTERM, self._ctrl_c)

    def _ctrl_c(self, signum, frame):
        """The first Ctrl-C stops the run; the second, while it winds down, does not cut
        the summary and the report short (a third gives up on them)."""
        self._presses += 1
        if self._presses == 2:
            print("\nmflow: stopping; the summary and the report are being written "
                  "(Ctrl-C once more abandons them)", file=sys.stderr, flush=True)
            return
        raise KeyboardInterrupt

    def pytest_unconfigure(self, config):
        if getattr(self, "_default_int", None) is not None:
            signal.signal(signal.SIGINT, self._default_int)
            signal.signal(signal.SIGTERM, self._default_term)

    def pytest_runtest_logreport(self, report):
        if self.worker is None and report.failed:
            crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
            message = getattr(crash, "message", None) or str(report.longrepr)
            self.failed_tests.append({"test": report.nodeid, "when": report.when,
                                      "message": self.portable(message.strip()[:2000])})

    def pytest_sessionfinish(self, session):
        self.flush()

    def pytest_terminal_summary(self, terminalreporter, exitstatus):
        if self.worker is None:
            self.finish(terminalreporter, exitstatus)


def _kinks(engine):
    """The kink table of the engine, or None (the report then computes it) if it fails."""
    from mflow.oracles.kinks import kink_table
    try:
        return kink_table(engine) if engine is not None else None
    except Exception:  # noqa: BLE001 - the report recomputes it and shows the error there
        return None


def _lock(directory):
    """Hold DIR/.lock for this run: two campaigns recording into one folder would mix
    their records. The lock goes with the process, however it ends."""
    import fcntl
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    f = os.fdopen(fd, "r+b")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        import pytest
        raise pytest.UsageError(f"another campaign is recording into {directory}; "
                                "wait for it, or choose another --mflow-campaign") from None
    return f


def _distributed(config):
    return getattr(config.option, "numprocesses", None) not in (None, 0) \
        and getattr(config.option, "dist", "no") != "no"


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _engine_version(engine):
    from mflow.oracles.engine import capabilities
    try:
        return capabilities(engine).version if engine is not None else ""
    except Exception:  # noqa: BLE001 - a version is only recorded
        return ""


def _iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")
