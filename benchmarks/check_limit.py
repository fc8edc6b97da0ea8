"""The physical limit of a check (issue 24): on the same drawn graphs, the cost of each
computation a check cannot do without, each timed alone (the engine's answers, torch's
and JAX's in float64, numpy's forward values and finite differences), against the full
check (`Checker.judge`) as a campaign runs it (forward mode and second order each on one
graph in three: `modes_for`). Their sum is the limit; the rest of the full check is
its own work (tolerances, comparisons, copies, the float32 gauge where a comparison
needs it). Writes benchmarks/results/check_limit.md (figures only: read the shares).
With --before REV, each part and the full check side by side with an earlier commit (a
git worktree; the trees alternate round by round, each round a fresh process on the
same graphs): read the ratios, as single runs on this shared machine vary by up to 1.5x.

    python benchmarks/check_limit.py [--graphs 300] [--rounds 3] [--seed N] [--before REV]
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
if "--worker" in sys.argv:  # a tree's own code and benchmarks, from PYTHONPATH
    sys.path.remove(str(Path(__file__).resolve().parent))
else:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mflow.oracles import torch_backend  # noqa: E402
from mflow.oracles.checker import Checker, case_rng, modes_for  # noqa: E402
from mflow.oracles.engine import MflowEngine  # noqa: E402
from mflow.oracles.finite_differences import (  # noqa: E402
    directional,
    finite_differences,
    forward_values,
    gradient_difference,
)
from mflow.oracles.modes import tangents_of  # noqa: E402
from mflow.oracles.tolerance import as_dtype  # noqa: E402
from throughput import _draw  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "check_limit.md"


def parts(checker, case):
    """{name: call} for what a check of `case` must compute, in the modes a campaign
    checks on it."""
    modes = modes_for(case, checker.modes)
    eng, jax = checker.normalised, checker.jax
    p = case.program
    p64 = as_dtype(p, "float64")
    x64 = [x.astype("float64") for x in case.inputs]
    c64 = case.cotangent.astype("float64")
    t = tangents_of(case, case_rng(case, seed=1))
    t64 = [x.astype("float64") for x in t]
    base = forward_values(p64, x64)
    out = {"engine vjp": lambda: eng.vjp(p, inputs=case.inputs, cotangent=case.cotangent),
           "torch vjp": lambda: torch_backend.vjp(p64, x64, c64),
           "jax vjp": lambda: jax.run(p64, x64, c64),
           "numpy forward values": lambda: forward_values(p64, x64),
           "finite differences": lambda: finite_differences(p64, x64, c64, case_rng(case),
                                                            base=base)}
    if "jvp" in modes:
        out.update({"engine jvp": lambda: eng.jvp(p, inputs=case.inputs, tangents=t),
                    "torch jvp": lambda: torch_backend.jvp(p64, x64, t64),
                    "jax jvp": lambda: jax.jvp(p64, x64, t64),
                    "fd along the tangent": lambda: directional(p64, x64, t64, c64, base)})
    if "hvp" in modes:
        w = tangents_of(case, case_rng(case, seed=2))
        scales = [1.0] * len(x64)
        out.update({
            "engine hvp": lambda: eng.hvp(p, inputs=case.inputs, cotangent=case.cotangent,
                                          tangents=t),
            "torch hvp": lambda: torch_backend.hvp(p64, x64, c64, t64),
            "jax hvp": lambda: jax.hvp(p64, x64, c64, t64),
            "fd of JAX's vjp (16 points, one batched call)": lambda: gradient_difference(
                lambda points: jax.vjps(p64, points, c64), p64, x64, t64, w, scales, base)})
    return out


def one_round(checker, sample):
    """{part: total ms over the sample}, and the full checks' total ms."""
    totals = {}
    for case in sample:
        for name, call in parts(checker, case).items():
            t = time.perf_counter()
            call()
            totals[name] = totals.get(name, 0.0) + (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    for case in sample:
        checker.judge(case, modes_for(case, checker.modes))
    return totals, (time.perf_counter() - t) * 1e3


def measured(graphs, seed, rounds):
    """(ms per graph of each part, of the full check), medians over `rounds` on
    `graphs` graphs drawn with `seed`, after a warm-up (JAX compiles or loads)."""
    sample = _draw(graphs, seed, min_steps=10, max_steps=10)
    checker = Checker(MflowEngine())
    for case in sample:
        checker.judge(case)
        for call in parts(checker, case).values():
            call()
    done = [one_round(checker, sample) for _ in range(rounds)]
    n = len(sample)
    per = {name: statistics.median(r[0][name] for r in done) / n for name in done[0][0]}
    return per, statistics.median(r[1] for r in done) / n


def side_by_side(args):
    """{tree: (per, full)}: rounds alternating between the trees, one process each."""
    from throughput import run_in, worktree
    here = Path(__file__).resolve().parents[1]

    def run(tree):  # this script, on the tree's code
        return run_in(tree, Path(__file__).resolve(), "--worker", "--graphs",
                      str(args.graphs), "--seed", str(args.seed), "--rounds", "1")
    with worktree(args.before) as before:
        trees = {"before": before, "after": here}
        got = {name: [] for name in trees}
        for r in range(args.rounds):
            for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                got[name].append(run(trees[name]))
                print(name, "round", r + 1, f"{got[name][-1][1]:.2f} ms", flush=True)
    return {name: ({k: statistics.median(g[0][k] for g in runs) for k in runs[0][0]},
                   statistics.median(g[1] for g in runs)) for name, runs in got.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--before", help="an earlier commit to measure side by side")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(measured(args.graphs, args.seed, args.rounds)))
        return
    if args.before:
        return write_side_by_side(args, side_by_side(args))
    per, full = measured(args.graphs, args.seed, args.rounds)
    n = args.graphs
    limit = sum(per.values())
    groups = groups_of(per)
    lines = ["# The physical limit of a check", "",
             f"`benchmarks/check_limit.py --graphs {args.graphs} --rounds {args.rounds} --seed "
             f"{args.seed}` on "
             f"{time.strftime('%Y-%m-%d %H:%M')}: {n} graphs of 10 drawn operations, one "
             "process, one thread; each part timed alone on every graph in the modes a "
             "campaign checks on it (forward mode and second order each on one graph in "
             "three), then the full check on the same graphs; ms per graph, median of the "
             "rounds.", "", "| part | ms per graph | share of the limit |", "|---|---|---|"]
    for name, value in sorted(per.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {value:.3f} | {value / limit:.0%} |")
    lines += ["", "| by whom | ms per graph | share of the limit |", "|---|---|---|"]
    for who, keys in groups.items():
        value = sum(per[k] for k in keys)
        lines.append(f"| {who} | {value:.3f} | {value / limit:.0%} |")
    lines += ["", f"- **limit** (the parts' sum): {limit:.2f} ms per graph",
              f"- **full check** (`Checker.judge`): {full:.2f} ms per graph: "
              f"**{full / limit:.2f}x** the limit; the check's own work "
              f"{full - limit:.2f} ms ({(full - limit) / full:.0%} of it)", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


def groups_of(per):
    return {"engine (mflow)": [k for k in per if k.startswith("engine")],
            "torch": [k for k in per if k.startswith("torch")],
            "JAX": [k for k in per if k.startswith(("jax", "fd of JAX"))],
            "numpy (values, finite differences)": [
                k for k in per if k.startswith(("numpy", "finite", "fd along"))]}


def write_side_by_side(args, got):
    (pb, fb), (pa, fa) = got["before"], got["after"]
    lb, la = sum(pb.values()), sum(pa.values())
    lines = ["# The physical limit of a check, side by side", "",
             f"`benchmarks/check_limit.py --before {args.before} --graphs {args.graphs} "
             f"--rounds {args.rounds} --seed {args.seed}` on {time.strftime('%Y-%m-%d %H:%M')}"
             f": the same {args.graphs} graphs of 10 drawn operations in both trees, each "
             "part timed alone as a campaign checks the graph, then the full check; ms per "
             "graph, median of the rounds (alternating trees, one process each).", "",
             "| part | before | after | after / before |", "|---|---|---|---|"]
    for name in sorted(pa, key=lambda k: -pa[k]):
        lines.append(f"| {name} | {pb[name]:.3f} | {pa[name]:.3f} | {pa[name] / pb[name]:.2f} |")
    for who, keys in groups_of(pa).items():
        b, a = sum(pb[k] for k in keys), sum(pa[k] for k in keys)
        lines.append(f"| **{who}** | {b:.3f} | {a:.3f} | {a / b:.2f} |")
    lines += [f"| **limit** (the parts' sum) | {lb:.2f} | {la:.2f} | {la / lb:.2f} |",
              f"| **full check** | {fb:.2f} | {fa:.2f} | {fa / fb:.2f} |",
              f"| the check's own work (full - limit) | {fb - lb:.2f} | {fa - la:.2f} | "
              f"{(fa - la) / (fb - lb):.2f} |", "",
              f"Full check / limit: before {fb / lb:.2f}x, after {fa / la:.2f}x.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
