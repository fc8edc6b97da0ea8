"""The comparison report of a real run opens in a real browser: headless
Chromium renders it, every plot and every failure drawing decodes, and a
screenshot is kept (artifacts/report-screenshot.png, or MFLOW_ARTIFACTS_DIR).

Chromium comes from Debian's `chromium` package (.ci/run installs it). Without
it the test is skipped with that reason, unless MFLOW_REQUIRE_BROWSER=1 (CI),
where it fails."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                "google-chrome"))), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


@pytest.fixture(scope="module")
def browser():
    if BROWSER is None:
        if os.environ.get("MFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail("MFLOW_REQUIRE_BROWSER=1 but no chromium on PATH: "
                        "apt-get install chromium (as .ci/run does)")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); "
                    "CI installs it and requires this test")
    return BROWSER


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A real campaign: the fuzzer on mflow with tanh's rule broken, one process."""
    where = tmp_path_factory.mktemp("campaign")
    env = dict(os.environ, MFLOW_PROFILE="ci", MFLOW_PLANTED_BUG="tanh_not_squared")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--mflow-fuzz", "-k",
         "test_operation and not float32 and not large and (tanh or relu or matmul)",
         "--mflow-engine", "tests.planted_bugs:PlantedEngine", "--mflow-campaign", str(where),
         "--mflow-reports", str(where / "regressions")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr  # tanh fails, the rest passes
    assert "1 failed, 2 passed" in done.stdout, done.stdout
    return where / "index.html"


def _run(browser, tmp_path, *args):
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_renders_with_plots_and_failure_drawings(browser, report, tmp_path):
    # the page's script records how many pictures decoded once it has loaded
    dom = _run(browser, tmp_path, "--virtual-time-budget=10000", "--dump-dom",
               report.as_uri()).stdout
    plots = re.search(r'data-plots="(\d+)/(\d+)"', dom)
    graphs = re.search(r'data-graphs="(\d+)/(\d+)"', dom)
    assert plots and graphs, "the page's load script did not run:\n" + dom[:2000]
    # one per oracle pair: 5 in reverse mode, 6 in forward mode, 4 in second order (the
    # engine offers jvp and hvp)
    assert plots.group(1) == plots.group(2) == "15", plots.group(0)
    # one drawing per report, every one decoded: tanh's failure, and where the search met
    # one too, its second order's (tanh'(0) is right by chance, tanh''(0) is not), which
    # Hypothesis shrinks and reports apart (report_multiple_bugs)
    saved = sorted(p.name for p in (report.parent / "regressions").iterdir())
    assert saved and all("-tanh-" in name for name in saved), saved
    assert graphs.group(1) == graphs.group(2) == str(len(saved)), (graphs.group(0), saved)
    assert "GradientMismatch-tanh-" in dom
    assert re.search(r"<code>v\d+ = tanh</code>", dom), "the blamed step is not named"

    artifacts = Path(os.environ.get("MFLOW_ARTIFACTS_DIR", ROOT / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    _run(browser, tmp_path, "--window-size=1280,4200", f"--screenshot={shot}",
         report.as_uri())
    assert shot.exists(), "chromium wrote no screenshot"
    from matplotlib.image import imread
    pixels = imread(shot)[..., :3]
    assert pixels.std() > 0.05, "a blank screenshot"
    # the blamed step is filled with plots.BLAME: the failure drawing is on the screen
    blame = np.array([0xE4, 0x57, 0x2E]) / 255
    assert (np.abs(pixels - blame).max(axis=-1) < 0.03).sum() > 500
