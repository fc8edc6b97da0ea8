"""Verdicts before and after, case by case: the same drawn cases checked by this
checkout and by an earlier commit (a git worktree), on correct mflow and with each
planted bug of tests/planted_bugs.py, all three modes. A redesign that must not
change behaviour shows it here: the same draws, the same outcome on every case, the
same failing comparisons (oracle pair and array). Writes its figures to FILE.

    python benchmarks/same_verdicts.py --before REV [--cases 300] [--per-bug 30]
        [--seed N] [--out benchmarks/results/same_verdicts.md]
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}


def worker(cases, per_bug, seed):
    """In one tree (PYTHONPATH): every verdict, as plain data."""
    import contextlib
    import zlib

    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as seeded
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import MflowEngine
    from mflow.strategies import cases as drawn_cases

    from tests.planted_bugs import CATALOGUE

    def draw(n, s, **kw):
        out = []

        @seeded(s)
        @settings(deadline=None, database=None, suppress_health_check=list(HealthCheck),
                  max_examples=n)
        @given(drawn_cases(**kw))
        def collect(case):
            out.append(case)
        collect()
        return out
    checker = Checker(MflowEngine())
    rows = []
    for name, bug, n, kw in ([("correct", None, cases, {"dtype": "mixed"})]
                             + [(b.name, b, per_bug, {"dtype": "mixed", "max_steps": 4,
                                                      **({"ops": [b.op, "add", "mul"]}
                                                         if b.op else {})})
                                for b in CATALOGUE]):
        sample = draw(n, seed, **kw)
        with (bug.planted() if bug else contextlib.nullcontext()):
            for case in sample:
                v = checker.judge(case)
                rows.append({
                    "bug": name, "case": zlib.crc32(repr(case).encode()),
                    "outcome": type(v.outcome).__name__ if v.outcome else "passed",
                    "failed": sorted({f"{c.what.split(' ', 1)[0]}: {c.pair[0]} vs {c.pair[1]}"
                                      for c in v.failures})})
    return rows


def run_tree(tree, args):
    env = dict(os.environ, **ONE_THREAD, PYTHONPATH=f"{tree}{os.pathsep}{tree / 'benchmarks'}")
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker",
                          json.dumps([args.cases, args.per_bug, args.seed])], cwd=tree, env=env,
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"the worker in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="the earlier commit (required)")
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--per-bug", type=int, default=30)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                    "same_verdicts.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        sys.path.remove(str(Path(__file__).resolve().parent))  # the tree's own, from PYTHONPATH
        print(json.dumps(worker(*json.loads(args.worker))))
        return 0
    if not args.before:
        ap.error("--before REV is required")
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before],
                       cwd=ROOT, check=True, capture_output=True)
        try:
            old, new = run_tree(before, args), run_tree(ROOT, args)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT,
                           capture_output=True)
    same_draws = [a["case"] for a in old] == [b["case"] for b in new]
    differ = [(a, b) for a, b in zip(old, new) if (a["outcome"], a["failed"]) !=
              (b["outcome"], b["failed"])]
    outcomes = collections.Counter((r["bug"] == "correct", r["outcome"]) for r in new)
    lines = [f"# Verdicts before and after, case by case ({time.strftime('%Y-%m-%d')})", "",
             f"`python benchmarks/same_verdicts.py --before {args.before} --cases {args.cases}"
             f" --per-bug {args.per_bug} --seed {args.seed}`: this checkout against "
             f"{args.before}, all three modes on every case.", "",
             f"- cases: {len(new):,} ({args.cases} on correct mflow, {args.per_bug} per planted "
             f"bug, {len(new) - args.cases:,} in all)",
             f"- the same draws in both trees: {'yes' if same_draws else 'NO'}",
             f"- cases whose verdict differs (outcome or failing comparisons): {len(differ)}",
             "- outcomes after: " + ", ".join(f"{'correct' if c else 'planted'} {k} {n:,}"
                                              for (c, k), n in sorted(outcomes.items()))]
    for a, b in differ[:20]:
        lines.append(f"  - {a['bug']} case {a['case']}: before {a['outcome']} {a['failed']}, "
                     f"after {b['outcome']} {b['failed']}")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
