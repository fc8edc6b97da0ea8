"""Half precision, measured: the tolerance's constant, and the planted half bugs.

    python benchmarks/half_precision.py [--graphs 2000] [--seed 0] [--bugs 3000]

1. Calibration. Correct mflow on --graphs fresh-seed graphs of float16 and bfloat16
   (every case gauged: Monte Carlo arithmetic at the dtype's u on every case), each
   comparison's error against two tolerances: the real one (C_HALF x spread + floor)
   and the same with C = 1. The largest ratio with C = 1 is the C a correct engine
   needs here; C_HALF over it is the margin. Two correct engines are measured: mflow
   (numpy: sums along axis 0 accumulate in half) and torch's own half run, the peer
   (sums accumulate in float32).
2. Power. Each half bug of tests/planted_bugs.py: examples to the first failure over
   the whole vocabulary in half, in its operation's half item (ops=[op], 3 steps: the ci
   profile's test_operation_in_half), and over the fuzz mix of float64 and float32 (the
   items that existed before half precision), capped at --bugs; steps after shrinking.

Writes benchmarks/results/half_precision.md.
"""

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, find, given, seed, settings  # noqa: E402
from hypothesis.errors import NoSuchExample  # noqa: E402
from mflow.oracles import tolerance  # noqa: E402
from mflow.oracles.checker import Checker  # noqa: E402
from mflow.oracles.engine import MflowEngine  # noqa: E402
from mflow.oracles.modes import MODES  # noqa: E402
from mflow.reports.reduce import reduce  # noqa: E402
from mflow.strategies import cases  # noqa: E402

from tests.planted_bugs import HALF_BUGS  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "half_precision.md"
QUIET = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def calibrate(n, chunk_seed):
    """{(dtype, who, mode): [ratio at C_HALF, ratio at C = 1]}, outcomes."""
    checker = Checker(MflowEngine(), lazy_gauge=False)
    ratios, outcomes = defaultdict(list), defaultdict(int)

    @seed(chunk_seed)
    @settings(QUIET, max_examples=n)
    @given(cases(dtype="half"))
    def run(case):
        verdict = checker.judge(case)
        outcomes["outside" if verdict.outside else
                 type(verdict.outcome).__name__ if verdict.outcome else "passed"] += 1
        dtype = case.program.dtype
        for c in verdict.comparisons:
            who, against = c.pair
            if not (who.startswith(("engine", "torch_half")) and against.startswith("torch")
                    and not against.startswith("torch_half")):
                continue  # an answer in half against torch's float64 one
            mode = (who.split() + ["vjp"])[1]
            key = (dtype, who.split()[0], mode)
            # the tolerance's two parts, again: C_HALF x spread + floor
            spread_part = None
            if c.reason.startswith(dtype):
                i = MODES[mode].names(case).index(c.what)
                spread = verdict.spread.get(mode)
                spread_part = tolerance.C_HALF * spread[i] if spread else 0.0
            floor = c.tolerance - (spread_part or 0.0)
            spread = (spread_part or 0.0) / tolerance.C_HALF
            ratios[key].append((c.abs_err / c.tolerance if c.tolerance else 0.0,
                                c.abs_err / (floor + spread) if floor + spread else 0.0,
                                c.abs_err / spread if spread else np.nan))
    run()
    return ratios, outcomes


def bug_power(bug, cap):
    """Examples to the first failure, per strategy, and the shrunk steps (half only)."""
    from tests.test_planted_bugs import failing
    checker = Checker(MflowEngine())
    row = {}
    for label, drawn in (("whole vocabulary, half", cases(dtype="half")),
                         ("its half item", cases(ops=[bug.op], max_steps=3, dtype="half")),
                         ("fuzz mix (float64, float32)", cases(dtype="mixed"))):
        calls = [0]
        fails = failing(checker)

        def counted(case, fails=fails, calls=calls):
            calls[0] += 1
            return fails(case)
        with bug.planted():
            try:
                case = find(drawn, counted, settings=settings(QUIET, max_examples=cap,
                                                             derandomize=True))
            except NoSuchExample:
                row[label] = f"not in {cap:,}"
                continue
            first = calls[0]
            case = reduce(case, fails)
        steps = [s.op for s in case.program.steps if s.op != "const"]
        row[label] = f"{first:,} ({len(steps)} steps: {', '.join(steps)}; {case.program.dtype})"
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bugs", type=int, default=3000)
    args = ap.parse_args()
    t = time.time()
    ratios, outcomes = calibrate(args.graphs, args.seed)
    lines = [f"# Half precision ({' '.join(sys.argv)})", "",
             f"C_HALF = {tolerance.C_HALF:g}, F_HALF = {tolerance.F_HALF:g}, "
             f"{tolerance.HALF_SAMPLES} Monte Carlo samples per mode; {args.graphs:,} graphs "
             f"(seed {args.seed}), every case gauged; {time.time() - t:.0f} s.", "",
             "Outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())), "",
             "## 1. Calibration: a correct answer in half against torch's float64 one", "",
             "| dtype | who | mode | comparisons | largest error / tolerance | 99th pct | "
             "median | largest with C = 1 | largest error / spread alone |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (dtype, who, mode), rs in sorted(ratios.items()):
        a = np.array(rs)
        lines.append(f"| {dtype} | {who} | {mode} | {len(a):,} | {a[:, 0].max():.3g} | "
                     f"{np.percentile(a[:, 0], 99):.3g} | {np.median(a[:, 0]):.3g} | "
                     f"{a[:, 1].max():.3g} | {np.nanmax(a[:, 2]):.3g} |")
    lines += ["", "The spread alone (the Monte Carlo runs, without the floor) is what C_HALF "
              "multiplies: a correct answer's error over it is the C it needs; where the "
              "floor is larger (graphs with large values, whose terms it scales with) the "
              "check is looser than the spread would make it (the median column)."]
    lines += ["", "## 2. Planted half bugs: examples to the first failure (shrunk steps)", "",
              "| bug | whole vocabulary, half | its half item | fuzz mix (float64, float32) |",
              "|---|---|---|---|"]
    OUT.write_text("\n".join(lines) + "\n")
    for bug in HALF_BUGS:
        row = bug_power(bug, args.bugs)
        lines.append(f"| {bug.name} | " + " | ".join(row[k] for k in (
            "whole vocabulary, half", "its half item", "fuzz mix (float64, float32)")) + " |")
        OUT.write_text("\n".join(lines) + "\n")
    lines += ["", f"Total {time.time() - t:.0f} s."]
    OUT.write_text("\n".join(lines) + "\n")
    print(OUT.read_text())


if __name__ == "__main__":
    main()
