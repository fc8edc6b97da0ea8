"""Where a check's time goes: cProfile over the checks of drawn graphs (10 drawn
operations each, as bench_suite.py), as a campaign runs them (modes_for), after a
warm-up. Writes the top entries by cumulative and by own time to
benchmarks/results/profile_check.md (figures only; the machine is shared and noisy,
so read the shares, not the seconds).

    python benchmarks/profile_check.py [--graphs 300] [--out FILE]
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_suite import draw_cases  # noqa: E402
from mflow.oracles.checker import Checker, modes_for  # noqa: E402
from mflow.oracles.engine import MflowEngine  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "profile_check.md"


def top(profile, key, n):
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(key).print_stats(n)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return lines[start:start + n + 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=300)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sample = draw_cases(args.graphs, min_steps=10, max_steps=10)
    checker = Checker(MflowEngine())
    for case in sample[:20]:  # warm up: JAX compiles (or loads) its interpreters
        checker.judge(case)
    profile = cProfile.Profile()
    t = time.perf_counter()
    profile.enable()
    for case in sample:
        checker.judge(case, modes_for(case, checker.modes))
    profile.disable()
    per_graph = (time.perf_counter() - t) / len(sample) * 1e3
    lines = ["# Where a check's time goes", "",
             f"`benchmarks/profile_check.py --graphs {args.graphs}` on "
             f"{time.strftime('%Y-%m-%d %H:%M')}: {len(sample)} graphs of 10 drawn operations, "
             f"checked as a campaign checks them (modes {', '.join(checker.modes)}, forward "
             f"mode and second order each on one graph in three), {per_graph:.2f} ms per graph "
             "under the profiler.", "", "## By cumulative time", "", "```",
             *top(profile, "cumulative", args.top), "```", "", "## By own time", "", "```",
             *top(profile, "tottime", args.top), "```", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
