"""The physical limit of a check (issue 24): on the same drawn graphs, the cost of each
computation a check cannot do without, each timed alone (the engine's answers, torch's
and JAX's in float64, numpy's forward values and finite differences), against the full
check (`Checker.judge`) as a campaign runs it (forward mode and second order each on one
graph in three: `modes_for`). Their sum is the limit; the rest of the full check is
its own work (tolerances, comparisons, copies, the float32 gauge where a comparison
needs it). Writes benchmarks/results/check_limit.md (figures only: read the shares).

    python benchmarks/check_limit.py [--graphs 300] [--rounds 3] [--seed N]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sample = _draw(args.graphs, args.seed, min_steps=10, max_steps=10)
    checker = Checker(MflowEngine())
    for case in sample:  # warm up: JAX compiles (or loads) its interpreters
        checker.judge(case)
        for call in parts(checker, case).values():
            call()
    rounds = [one_round(checker, sample) for _ in range(args.rounds)]
    n = len(sample)
    per = {name: statistics.median(r[0][name] for r in rounds) / n for name in rounds[0][0]}
    full = statistics.median(r[1] for r in rounds) / n
    limit = sum(per.values())
    groups = {"engine (mflow)": [k for k in per if k.startswith("engine")],
              "torch": [k for k in per if k.startswith("torch")],
              "JAX": [k for k in per if k.startswith(("jax", "fd of JAX"))],
              "numpy (values, finite differences)": [
                  k for k in per if k.startswith(("numpy", "finite", "fd along"))]}
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


if __name__ == "__main__":
    main()
