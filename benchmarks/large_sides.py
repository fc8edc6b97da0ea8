"""One operation at large sides (as the fuzz item test_operation_at_large_sides draws it:
sides 9-64, at most 2 steps), this checkout against an earlier commit, side by side:
the same drawn graphs in both trees, alternating rounds, each round a fresh process
that checks one graph first (loading the interpreters) and times the rest as a
campaign checks them. Writes benchmarks/results/large_sides.md (figures only).

    python benchmarks/large_sides.py [--before REV] [--op conv2d] [--graphs 15]
        [--rounds 2] [--seed N]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "large_sides.md"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import run_in, worktree  # noqa: E402


def worker(op, graphs, seed):
    import random

    from mflow.oracles.checker import Checker, modes_for
    from mflow.oracles.engine import MflowEngine
    from mflow.strategies import cases
    from mflow.strategies.graphs import draw_fast
    rng = random.Random(seed)
    drawn = [draw_fast(cases(ops=[op], max_steps=2, max_side=rng.randint(9, 64)), rng)[0]
             for _ in range(graphs + 1)]
    checker = Checker(MflowEngine())
    checker.judge(drawn[0], modes_for(drawn[0], checker.modes))  # loads the interpreters
    t = time.perf_counter()
    failed = sum(checker.judge(c, modes_for(c, checker.modes)).outcome is not None
                 for c in drawn[1:])
    return {"seconds_per_graph": (time.perf_counter() - t) / graphs, "failed": failed}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="64a9e92")
    ap.add_argument("--op", default="conv2d")
    ap.add_argument("--graphs", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.op, args.graphs, args.seed)))
        return
    results = {"before": [], "after": []}
    with worktree(args.before) as before:
        trees = {"before": before, "after": ROOT}
        for r in range(args.rounds):
            for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                results[name].append(run_in(
                    trees[name], Path(__file__).resolve(), "--worker", "--op", args.op,
                    "--graphs", str(args.graphs), "--seed", str(args.seed)))
                print(name, results[name][-1], flush=True)
    med = {k: statistics.median(r["seconds_per_graph"] for r in v) for k, v in results.items()}
    after = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    lines = [f"# {args.op} at large sides, before and after", "",
             f"`benchmarks/large_sides.py --before {args.before} --op {args.op} --graphs "
             f"{args.graphs} --rounds {args.rounds} --seed {args.seed}` on "
             f"{time.strftime('%Y-%m-%d %H:%M')}: before = {args.before}, after = {after}; "
             f"{args.graphs} graphs of `cases(ops=[{args.op!r}], max_steps=2, max_side=9..64)`, "
             "the same in both trees, checked as a campaign checks them, one process and "
             "one thread each, alternating rounds.", "",
             "| tree | seconds per graph, each round | median | graphs failed |",
             "|---|---|---|---|"]
    for name, rs in results.items():
        rounds = ", ".join(f"{r['seconds_per_graph']:.3f}" for r in rs)
        failed = ", ".join(str(r["failed"]) for r in rs)
        lines.append(f"| {name} | {rounds} | {med[name]:.3f} | {failed} |")
    lines += ["", f"after / before: **{med['after'] / med['before']:.2f}**"]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
