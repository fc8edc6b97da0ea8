"""A pytest plugin for benchmarks/campaign_profile.py: each process appends, per test
item, (worker, item, start, stop) in wall-clock seconds to $MFLOW_ITEM_TIMES, so that
the profile can say when each worker started its first item and ended its last: the
tail is the time one worker ran alone at the end."""

import json
import os
import time

_started = {}


def pytest_runtest_logstart(nodeid, location):
    _started[nodeid] = time.time()


def pytest_runtest_logfinish(nodeid, location):
    path = os.environ.get("MFLOW_ITEM_TIMES")
    if path:
        with open(path, "a") as f:  # one short line per item: appends do not interleave
            f.write(json.dumps([os.environ.get("PYTEST_XDIST_WORKER", "main"), nodeid,
                                _started.pop(nodeid, None), time.time()]) + "\n")
