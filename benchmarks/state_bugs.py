"""The planted state bugs (tests/planted_bugs.py, STATE_BUGS) against the engine-session
state machine (reports/sessions.py): for each bug and seed, the runs (examples) until
the first failure, and the calls left after Hypothesis shrank it.

    python benchmarks/state_bugs.py [--seeds 5] [--first-seed 0] [--max-runs 1000] [--bugs NAME ...]
        [--out FILE]

Writes benchmarks/results/state_bugs.md (after every bug, so an interrupted run keeps
what it measured).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, seed  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402
from mflow.reports.sessions import machine, session_settings  # noqa: E402

from tests.planted_bugs import STATE_BUGS  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "state_bugs.md"


def measure(bug, chunk_seed, max_runs):
    """(runs to the first failure or None, calls after shrinking, kind, seconds)."""
    session = machine(bug())
    counts = {"runs": 0, "first": None}
    made = session.__init__

    def counted(self):
        counts["runs"] += 1
        made(self)
    session.__init__ = counted

    def found(failure, sequence):
        if counts["first"] is None:
            counts["first"] = counts["runs"]
    session.found = staticmethod(found)
    start = time.perf_counter()
    kind, shrunk = "not found", None
    try:
        seed(chunk_seed)(session)  # (on the class: run_state_machine_as_test reads it there)
        run_state_machine_as_test(session, settings=session_settings(
            max_examples=max_runs, stateful_step_count=10, deadline=None, database=None,
            suppress_health_check=list(HealthCheck)))
    except BaseException as e:  # noqa: BLE001 - the finding (or a group of them)
        kind = type(e).__name__
        # each distinct failure Hypothesis reports, shrunk on its own: the calls up to
        # its failing call (numbered from 0)
        shrunk = sorted(getattr(f, "call", -2) + 1 for f in getattr(e, "exceptions", [e]))
    calls = "/".join(map(str, shrunk)) if counts["first"] is not None else None
    return counts["first"], calls, kind, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--max-runs", type=int, default=1000)
    ap.add_argument("--bugs", nargs="*", help="these bugs alone (their names)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    lines = ["# Planted state bugs against the engine-session state machine", "",
             f"`python benchmarks/state_bugs.py --seeds {args.seeds} --first-seed "
             f"{args.first_seed} --max-runs {args.max_runs}` (seeds {args.first_seed}.."
             f"{args.first_seed + args.seeds - 1}, 10 calls a run at most); a run is "
             "one Hypothesis example, a sequence of calls. Calls after shrinking: of "
             "each distinct failure Hypothesis reported (a/b: two of them).", "",
             "| bug | what | runs to find (per seed) | calls after shrinking (per seed) | "
             "failure | seconds |", "|---|---|---|---|---|---|"]
    for bug in [b for b in STATE_BUGS if not args.bugs or b.name in args.bugs]:
        found = [measure(bug, s, args.max_runs)
                 for s in range(args.first_seed, args.first_seed + args.seeds)]
        what = " ".join((bug.__doc__ or "").split())
        lines.append(f"| {bug.name} | {what} | {', '.join(str(f[0]) for f in found)} | "
                     f"{', '.join(str(f[1]) for f in found)} | "
                     f"{', '.join(sorted({f[2] for f in found}))} | "
                     f"{sum(f[3] for f in found):.0f} |")
        args.out.write_text("\n".join(lines) + "\n")
        print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
