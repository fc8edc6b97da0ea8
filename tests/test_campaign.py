"""A long fuzzing run shows its progress and can be stopped with Ctrl-C (twice):
what it found is kept and the comparison report is still written; on a full disk
it checks on and says what it could not write."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"\[campaign [\d:]+\] ([\d,]+) graphs checked, (\d+) failures?, "
                      r"([\d.]+) graphs/s")


def test_ctrl_c_keeps_everything_and_writes_the_report(tmp_path):
    """Pressed twice, as an impatient user does: the second press does not cut the
    summary or the report short."""
    campaign = tmp_path / "campaign"
    env = dict(os.environ, MFLOW_PROFILE="fuzz", MFLOW_FUZZ_EXAMPLES="1000000")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
               "--mflow-fuzz", "-k", "test_random_graphs", "--mflow-shards", "2",
               "--mflow-campaign", str(campaign), "--mflow-progress", "1",
               "--mflow-reports", str(tmp_path / "regressions")]
    # its own session, like a terminal's foreground job: Ctrl-C reaches every process
    run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, seen = [], 0
    try:
        deadline = time.time() + 240
        for line in run.stdout:
            lines.append(line)
            match = PROGRESS.search(line)
            if match:
                seen = int(match.group(1).replace(",", ""))
                if seen >= 30:
                    break
            assert time.time() < deadline, "no progress line with 30 graphs in 240 s:\n" + \
                "".join(lines)
        os.killpg(run.pid, signal.SIGINT)
        time.sleep(0.5)
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
        rest, _ = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    output = "".join(lines) + rest
    assert seen >= 30, output
    assert run.returncode == 2, output  # pytest's "interrupted"
    assert "stopped early: interrupted" in output, output
    record = json.loads((campaign / "run.json").read_text())
    assert record["interrupted"] is True
    checked = sum(json.loads(f.read_text())["checked"] for f in campaign.glob("stats-*.json"))
    assert checked >= seen, (checked, seen)  # nothing counted before Ctrl-C was lost
    page = (campaign / "index.html").read_text()
    assert "stopped early (interrupted)" in page
    assert f"{checked:,} graphs checked" in page
    assert "Stopped early" in (campaign / "summary.md").read_text()


def test_stats_merge_adds_counts_and_keeps_the_largest():
    from mflow.reports.stats import HIST_BINS, Stats, hist_bin
    assert hist_bin(0.0) == 0 and hist_bin(1e-300) == 0          # exact agreement: first bin
    assert hist_bin(float("inf")) == hist_bin(1e9) == HIST_BINS - 1
    assert hist_bin(0.99) < hist_bin(1.01)                        # the tolerance is a bin edge
    a, b = Stats(), Stats()
    for s, ratio, n in ((a, 0.5, 3), (b, 2.0, 4)):
        s.checked, s.ops = n, {"tanh": n}
        cell = {"hist": [0] * HIST_BINS, "ratio": ratio, "rel": ratio / 10}
        cell["hist"][hist_bin(ratio)] = n
        s.pairs = {"engine vs torch": {"tanh": cell}}
    merged = Stats.from_dict(json.loads(json.dumps(a.to_dict()))).merge(b)
    assert merged.checked == 7 and merged.ops == {"tanh": 7}
    assert sum(merged.pairs["engine vs torch"]["tanh"]["hist"]) == 7
    assert merged.worst == {"engine vs torch": {"ratio": 2.0, "rel": 0.2}}


def test_sigkill_at_random_moments_leaves_only_complete_records(tmp_path):
    """Ten real fuzz runs on a planted bug (so that they save reports all the
    time), each killed with SIGKILL at a random moment once it is checking:
    every report left loads, every stats file parses, and the comparison report
    can still be written from what a killed run left."""
    import random

    from mflow.reports import regressions
    from mflow.reports.comparison import write_report
    rng = random.Random(0)
    reports = tmp_path / "regressions"
    env = dict(os.environ, MFLOW_PROFILE="fuzz", MFLOW_FUZZ_EXAMPLES="1000000",
               MFLOW_PLANTED_BUG="fanout_overwrites")
    for k in range(10):
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
                   "--mflow-fuzz", "-k", "test_operation",
                   "--mflow-engine", "tests.planted_bugs:PlantedEngine",
                   "--mflow-campaign", str(tmp_path / f"run{k}"), "--mflow-progress", "0.2",
                   "--mflow-reports", str(reports)]
        run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        try:
            # checking has begun, and (every other run) the first failure is being shrunk
            # and saved: the moments a kill could leave a record half written. Waiting
            # for the failure, not for a fixed time, keeps the test's meaning on a slow
            # or loaded machine (the interpreter's compilation alone takes seconds)
            for line in run.stdout:
                seen = PROGRESS.search(line)
                if seen and (k % 2 == 0 or int(seen.group(2)) > 0):
                    break
            time.sleep(rng.uniform(0.0, 3.0))
        finally:
            run.kill()
            run.wait()
    folders = regressions.reports(reports)
    assert folders, "no run lived long enough to save a report"
    for folder in folders:
        regressions.load(folder)
    for k in range(10):
        for stats in (tmp_path / f"run{k}").glob("stats-*.json"):
            json.loads(stats.read_text())
    runs = [d for d in tmp_path.glob("run*") if any(d.glob("stats-*.json"))]
    assert runs
    html, _ = write_report(runs[-1])
    assert "graphs checked" in html.read_text()


def test_a_new_campaign_keeps_the_last_records_and_locks_its_folder(tmp_path):
    """The last run's records move to previous/<when it started>/, never deleted nor
    replaced; a second campaign cannot record into a folder a running one holds."""
    import fcntl

    import pytest as _pytest
    from mflow.reports.campaign import _lock
    from mflow.reports.records import claim
    claim(tmp_path)                                # a new campaign folder: marked as ours
    for started in ("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"):
        (tmp_path / "stats-main.json").write_text("{}")
        (tmp_path / "run.json").write_text(json.dumps({"started": started}))
        claim(tmp_path)
    runs = sorted((tmp_path / "previous").iterdir())
    assert [p.name[:10] for p in runs] == ["2026-01-01", "2026-01-02"]
    assert all(sorted(p.name for p in run.iterdir()) == ["run.json", "stats-main.json"]
               for run in runs)
    held = _lock(tmp_path)
    try:
        with _pytest.raises(_pytest.UsageError, match="another campaign"):
            _lock(tmp_path)
    finally:
        fcntl.flock(held, fcntl.LOCK_UN)
        held.close()


def test_a_folder_of_the_users_own_is_never_a_campaigns(tmp_path):
    """A folder holding an index.html no campaign wrote is refused (it would have been
    moved away), and a file of the user's inside previous/ stays where it is."""
    import pytest
    from mflow.reports.records import NotACampaignFolder, claim
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my page")
    with pytest.raises(NotACampaignFolder, match="index.html, which no campaign"):
        claim(mine)
    assert (mine / "index.html").read_text() == "my page"
    ours = claim(tmp_path / "ours")
    (ours / "previous").mkdir()
    (ours / "previous" / "notes.txt").write_text("kept")
    (ours / "run.json").write_text("{}")
    claim(ours)
    assert (ours / "previous" / "notes.txt").read_text() == "kept"


# --- a full disk: the checking goes on, the summary says what was not written ----------

def _no_space(*args, **kwargs):
    import errno
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_record_that_cannot_be_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    import pytest
    from mflow.reports import atomic_write, files
    real = os.fdopen

    class HalfThenFull:
        def __init__(self, fd, *a, **k):
            self.f = real(fd, *a, **k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:3])  # a write cut short by the full disk
            _no_space()
    monkeypatch.setattr(files.os, "fdopen", HalfThenFull)
    with pytest.raises(OSError):
        atomic_write(tmp_path / "run.json", "{}" * 100)
    assert list(tmp_path.iterdir()) == []


def test_a_finding_whose_report_cannot_be_saved_still_fails_and_says_so(tmp_path, monkeypatch):
    import numpy as np
    import pytest
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import MflowEngine
    from mflow.oracles.program import Case, Program, Step
    from mflow.oracles.verdict import GradientMismatch
    from mflow.reports import reduce
    from mflow.reports.saving import SavingChecker

    from tests.planted_bugs import BUGS
    monkeypatch.setattr(reduce, "reduce_and_save", _no_space)
    case = Case(Program(((2, 2),), (Step("tanh", (0,)),)), (np.eye(2) * 0.5,), np.ones((2, 2)))
    saving = SavingChecker(Checker(MflowEngine()), MflowEngine(), tmp_path)
    monkeypatch.setattr("mflow.reports.saving.final_example", lambda: True)
    with BUGS["tanh_not_squared"].planted(), pytest.raises(GradientMismatch) as found:
        saving.check(case)
    assert any("could NOT be saved" in n and "No space" in n for n in found.value.__notes__)
    assert saving.stats.failures[0]["report"].startswith("NOT saved")
    assert saving.stats.checked == 1


FILL = """
import os, sys
fd = os.open(os.path.join(sys.argv[1], "filler"), os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"x" * 512)
except OSError:
    os.close(fd)
"""


def test_a_run_on_a_full_disk_ends_with_a_summary_and_no_stray_files(tmp_path):
    """A real full file system (a 2 MiB tmpfs, filled): the run checks on, fails on the
    planted bug it finds, and prints a summary that names what could not be written."""
    import pytest
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"no tmpfs to fill (mount needs root here): {mounted.stderr.strip()}")
    try:
        for sub in ("campaign", "regressions/.inflight"):
            (disk / sub).mkdir(parents=True)
        subprocess.run([sys.executable, "-c", FILL, str(disk)], check=True)
        env = dict(os.environ, MFLOW_PROFILE="ci", MFLOW_PLANTED_BUG="tanh_not_squared",
                   PYTHONPATH=str(ROOT))
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mflow-fuzz",
             "-k", "test_operation and tanh and not float32 and not large",
             "--mflow-engine", "tests.planted_bugs:PlantedEngine",
             "--mflow-campaign", str(disk / "campaign"),
             "--mflow-reports", str(disk / "regressions")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        output = run.stdout + run.stderr
        assert run.returncode == 1, output                 # the bug is still found
        assert "GradientMismatch" in output, output
        assert "fuzzing summary:" in output and "graphs checked" in output, output
        assert "could NOT be saved" in output and "No space left" in output, output
        assert "campaign records NOT" in output, output
        ours = (".lock", ".mflow-campaign")
        stray = [p for p in disk.rglob("*") if p.is_file() and p.name not in ours and (
                 p.name.startswith(".") or p.suffix == ".tmp" or ".inflight" in p.parts)]
        assert stray == [], stray
    finally:
        subprocess.run(["umount", str(disk)], check=False)
