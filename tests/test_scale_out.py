"""A campaign over three "machines" (three folders, three processes) sharing one
Redis example database (--mflow-db), each with its own records and reports, then
merged (python -m mflow merge): a failure one machine finds, another replays first
through the shared database; the merged report counts every graph of all three;
a machine killed mid-run loses nothing of the others.

Needs `redis-server` (Debian's package; .ci/run installs it) and the redis package
(mflow[scale]); without them the test skips, except under MFLOW_REQUIRE_REDIS=1."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.test_outside import ADAPTER

NEG = "test_operation and neg and not float32"  # items where the planted bug lives
GRAPHS = "test_random_graphs"


@pytest.fixture
def redis_url(redis_server):
    return redis_server[0]


@pytest.fixture
def redis_server(tmp_path):
    """(url, process) of a redis-server of this test's own on a loopback port."""
    server = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        redis = None
    if server is None or redis is None:
        if os.environ.get("MFLOW_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server or the redis package is missing (MFLOW_REQUIRE_REDIS=1)")
        pytest.skip("needs redis-server (apt-get install redis-server) and mflow[scale]")
    with socket.socket() as s:  # a free port on the loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.terminate()
    proc.wait(timeout=10)


def machine(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "my_adapter.py").write_text(ADAPTER)
    return folder


def fuzz(folder, db, select, examples, bug, *extra, wait=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFLOW_")}
    env.update(PYTHONPATH=str(folder), MY_BUG="1" if bug else "0")
    argv = [sys.executable, "-m", "mflow", "fuzz", "--engine", "my_adapter:engine",
            "--examples", str(examples), "--jobs", "1", "--report", "campaign",
            "--reports", "regressions", "-p", "no:cacheprovider", "-k", select,
            "--machine", folder.name, *(["--db", db] if db else []), *extra]
    if not wait:
        return subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=900)


def checked(campaign):
    return sum(json.loads(f.read_text())["checked"] for f in campaign.glob("stats-*.json"))


def test_three_machines_share_one_redis_database(tmp_path, redis_url):
    a, b, c, alone = (machine(tmp_path, n) for n in ("a", "b", "c", "alone"))
    # c: a long run, killed mid-run while a works
    runner = fuzz(c, redis_url, GRAPHS, 100000, False, wait=False)
    found = fuzz(a, redis_url, NEG, 30, True)
    assert found.returncode == 1, found.stdout + found.stderr
    for _ in range(600):  # c has flushed records at least once
        if checked(c / "campaign") > 0:
            break
        time.sleep(0.1)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    killed_at = checked(c / "campaign")
    assert killed_at > 0 and not (c / "campaign" / "run.json").exists()

    # b replays a's failure first, from the shared database: found in Hypothesis's
    # reuse phase; a machine without the database has nothing to reuse
    replay = fuzz(b, redis_url, NEG, 30, True, "--hypothesis-show-statistics")
    assert replay.returncode == 1, replay.stdout + replay.stderr
    reuse = replay.stdout.split("during reuse phase", 1)
    assert len(reuse) == 2 and "1 failing" in reuse[1].split("during generate phase")[0], \
        replay.stdout
    control = fuzz(alone, None, NEG, 30, True, "--hypothesis-show-statistics")
    assert control.returncode == 1 and "during reuse phase" not in control.stdout, control.stdout

    # the merge counts every graph of all three; reports dedupe by signature
    merged = subprocess.run(
        [sys.executable, "-m", "mflow", "merge", "merged", "a/campaign", "b/campaign",
         "c/campaign", "--from", "a/regressions", "b/regressions", "--reports", "corpus"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert merged.returncode == 1, merged.stdout + merged.stderr  # a and b failed
    total = checked(a / "campaign") + checked(b / "campaign") + killed_at
    assert checked(tmp_path / "merged") == total
    assert f"{total:,} graphs" in merged.stdout, merged.stdout
    assert (tmp_path / "merged" / "index.html").exists()
    saved_a = {p.name for p in (a / "regressions").iterdir() if not p.name.startswith(".")}
    saved_b = {p.name for p in (b / "regressions").iterdir() if not p.name.startswith(".")}
    corpus = {p.name for p in (tmp_path / "corpus").iterdir()}
    assert saved_a and corpus == saved_a | saved_b
    for name in saved_a & saved_b:  # found on both machines: kept once, counted twice
        assert len(list((tmp_path / "corpus" / name / "seen").iterdir())) >= 1
    machines = json.loads((tmp_path / "merged" / "run.json").read_text())["machines"]
    assert [m["machine"] for m in machines] == ["m0-a", "m1-b", "m2-c"]
    assert machines[2]["finished"] == "killed or still running"
    report = json.loads(next((a / "regressions").glob("*/report.json")).read_text())
    assert report["machine"] == "a"


def test_losing_the_shared_database_mid_run_is_one_warning_not_a_failure(tmp_path,
                                                                          redis_server):
    """The Redis server killed 12 s into a run on a correct engine once made 4 failed
    tests and exit status 1: the shared database is an optimisation, so losing it is
    one warning and the run goes on with the local one."""
    url, server = redis_server
    folder = machine(tmp_path, "m")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFLOW_")}
    env.update(PYTHONPATH=str(folder), MY_BUG="0")
    runner = subprocess.Popen(
        [sys.executable, "-m", "mflow", "fuzz", "--engine", "my_adapter:engine", "--examples",
         "150", "--jobs", "1", "--report", "campaign", "--reports", "regressions", "-p",
         "no:cacheprovider", "-k", GRAPHS, "--db", url],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(600):  # the run checks graphs, then the server goes away
        if checked(folder / "campaign") > 0:
            break
        time.sleep(0.1)
    server.kill()
    server.wait(timeout=10)
    out, _ = runner.communicate(timeout=900)
    assert runner.returncode == 0, out
    assert out.count("stopped answering") >= 1 and "SharedDatabaseLost" in out, out
    assert checked(folder / "campaign") > 0


def test_merge_names_a_missing_folder_and_needs_two(tmp_path):
    from mflow.reports.__main__ import main
    assert main(["merge", str(tmp_path / "out"), str(tmp_path / "nowhere")]) == 4
    with pytest.raises(SystemExit):
        main(["merge", str(tmp_path / "out")])  # the merged folder alone: a usage error


def test_merge_of_a_machine_that_died_before_writing_anything(tmp_path):
    """A campaign folder with no records at all (killed at start) merges as 0 graphs."""
    from mflow.reports.merge import merge_campaigns
    from mflow.reports.records import load
    (tmp_path / "dead").mkdir()
    (tmp_path / "alive").mkdir()
    (tmp_path / "alive" / "stats-main.json").write_text(json.dumps(_stats(7)))
    names = merge_campaigns(tmp_path / "out", [tmp_path / "alive", tmp_path / "dead"])
    assert [n.split("-", 1)[0] for n in names] == ["m0", "m1"]  # no run.json: the folder names
    assert load(tmp_path / "out")[0].checked == 7


def _stats(n):
    from mflow.reports.stats import Stats
    s = Stats()
    s.checked = n
    return s.to_dict()
