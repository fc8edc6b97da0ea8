"""Power of the fast search (reports/search.py) against Hypothesis's own, per planted bug
(tests/planted_bugs.py), on the same strategy (all operations, mixed dtypes; a half
bug in its operation's half item, as tests/test_planted_bugs.py draws it):

- graphs until the first failure: Hypothesis generating, or `draw_fast`;
- the shrunk size (steps without constants): Hypothesis's shrinker from its own find,
  or from the fast search's failing graphs (the first and up to search.KEPT found in
  search.MORE more) given as secondary database examples, as reports/search.py does;
  then each reduced by reports/reduce.py, as a report is.

`--hows fast,prefetch` compares the fast search with itself prefetching JAX's VJPs of
its next graphs (Checker.prefetch, as a campaign's hunt does): the same seeds must give
the same figures.

Several seeds per bug (one search says little). Writes benchmarks/results/search_power.md.

    python benchmarks/search_power.py [--seeds 3] [--first-seed 1000] [--cap 3000]
        [--bugs a,b] [--hows hypothesis,fast] [--out FILE]
"""

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "search_power.md"


def _size(case):
    return len([s for s in case.program.steps if s.op != "const"])


def measure(bug, how, seed, cap):
    """(graphs to the first failure or None, size after shrinking, after the reducer)."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.database import InMemoryExampleDatabase, choices_to_bytes
    from hypothesis.errors import NoSuchExample
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import MflowEngine
    from mflow.oracles.verdict import EngineBug
    from mflow.reports.reduce import reduce
    from mflow.reports.search import hunt
    from mflow.strategies import cases
    checker = Checker(MflowEngine())
    calls = {"n": 0, "first": None}

    def fails(case):
        calls["n"] += 1
        try:
            checker.check(case)
        except EngineBug:
            if calls["first"] is None:
                calls["first"] = calls["n"]
            return True
        return False
    strategy = (cases(ops=[bug.op], max_steps=3, dtype="half") if bug.dtype == "half"
                else cases(dtype="mixed"))
    quiet = settings(deadline=None, suppress_health_check=list(HealthCheck),
                     max_examples=cap)
    random.seed(seed)  # Hypothesis's own search, not derandomised, draws from this
    with bug.planted():
        try:
            if how == "hypothesis":
                found = find(strategy, fails, settings=settings(quiet, database=None))
            else:  # as reports/search.py does
                def failure(case):
                    return AssertionError() if fails(case) else None
                first, failing = hunt(failure, strategy, random.Random(seed), cap,
                                      **({"ahead": checker.prefetch} if how == "prefetch"
                                         else {}))
                if first is None:
                    return None, None, None
                detected = calls["first"]
                database = InMemoryExampleDatabase()
                for choices in failing:
                    database.save(b"k.secondary", choices_to_bytes(choices))
                found = find(strategy, fails, database_key=b"k", settings=settings(
                    quiet, database=database, phases=[Phase.reuse, Phase.shrink]))
                calls["first"] = detected
        except NoSuchExample:
            return None, None, None
        return calls["first"], _size(found), _size(reduce(found, fails))


def main():
    from tests.planted_bugs import CATALOGUE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cap", type=int, default=3000)
    ap.add_argument("--bugs", default="")
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--hows", default="hypothesis,fast", help="two of hypothesis, fast, "
                    "prefetch (the fast search prefetching JAX's VJPs, as a campaign's hunt)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    hows = tuple(args.hows.split(","))
    bugs = [b for b in CATALOGUE if not args.bugs or b.name in args.bugs.split(",")]
    bugs = [b for b in bugs if b.name != "relu_mask_ge"]  # at the kink: the convention test's
    rows, t0 = [], time.perf_counter()
    for bug in bugs:
        row = {}
        for how in hows:
            row[how] = [measure(bug, how, args.first_seed + s, args.cap) for s in range(args.seeds)]
        rows.append((bug.name, row))
        print(bug.name, row, flush=True)

    def fmt(results, k):
        vals = [r[k] for r in results]
        return " ".join("-" if v is None else str(v) for v in vals)

    def mean(results, k):
        vals = [r[k] for r in results if r[k] is not None]
        return statistics.mean(vals) if vals else float("nan")
    lines = [f"# The power of the search {hows[1]!r} against {hows[0]!r}", "",
             f"`benchmarks/search_power.py --seeds {args.seeds} --first-seed {args.first_seed} "
             f"--cap {args.cap}{' --bugs ' + args.bugs if args.bugs else ''} "
             f"--hows {args.hows}` on "
             f"{time.strftime('%Y-%m-%d %H:%M')}, {time.perf_counter() - t0:.0f} s: every "
             f"{'listed ' if args.bugs else ''}planted bug but relu_mask_ge (at the kink, "
             f"the convention test's), seeds {args.first_seed}.."
             f"{args.first_seed + args.seeds - 1}, at most {args.cap} graphs each; '-' not found.",
             "", f"| bug | graphs to detect: {hows[0]} | {hows[1]} | steps after shrinking: "
             f"{hows[0]} | {hows[1]} | after the reducer: {hows[0]} | {hows[1]} |",
             "|---|---|---|---|---|---|---|"]
    totals = {how: [0, 0, 0] for how in hows}
    for name, row in rows:
        lines.append(f"| {name} | " + " | ".join(
            fmt(row[how], k) for k in range(3) for how in hows) + " |")
        for how in totals:
            for k in range(3):
                totals[how][k] += mean(row[how], k)
    lines += ["", "Sums over the bugs of the per-bug means (graphs to detect, steps after "
              "shrinking, after the reducer):", ""]
    lines += [f"- {how}: {t[0]:.0f}, {t[1]:.1f}, {t[2]:.1f}" for how, t in totals.items()]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
