"""What a new process pays before its first JAX reference answers: the compiled
interpreter of each mode (vjp, jvp, hvp) and dtype, first call in a fresh process, for
programs of 2, 20 and 45 steps (three buckets of sizes until 45983dc, one after), for
this checkout and an earlier tree (PYTHONPATH), each against its own cache folder, cold
(an empty folder) then warm (three more processes, median).

    python benchmarks/jax_first_use.py [--before REV] [--out FILE]

Writes benchmarks/results/jax_first_use.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "jax_first_use_one_bucket.md"
SIZES = (2, 20, 45)  # steps: one program in each of the buckets (16, 40, 64) before 45983dc
CALLS = [(d, k, m) for d in ("float64", "float32") for k in SIZES for m in ("vjp", "jvp", "hvp")]

PROBE = """
import json, time
import numpy as np
from mflow.oracles import jax_backend as jb
from mflow.oracles.program import Program, Step
o, out = jb.JaxOracle(), {}
for dtype, k in [(d, k) for d in ("float64", "float32") for k in SIZES]:
    p = Program(((2, 3),), tuple(Step("tanh", (i,)) for i in range(k)), dtype)
    x, c = [np.ones((2, 3), p.np_dtype)], np.ones((2, 3), p.np_dtype)
    for mode, f in (("vjp", lambda: o.run(p, x, c)), ("jvp", lambda: o.jvp(p, x, x)),
                    ("hvp", lambda: o.hvp(p, x, c, x))):
        t = time.perf_counter()
        f()
        out[f"{dtype} {k} {mode}"] = time.perf_counter() - t
print(json.dumps(out))
"""


def probe(tree, cache):
    env = dict(os.environ, PYTHONPATH=str(tree), MFLOW_JAX_CACHE=str(cache),
               OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", f"SIZES = {SIZES}\n" + PROBE], env=env,
                         cwd=tree, check=True, capture_output=True, text=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="cfba726")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before],
                       cwd=ROOT, check=True, capture_output=True)
        try:
            trees = {"before": before, "after": ROOT}
            cold = {n: probe(t, Path(tmp) / f"cache-{n}") for n, t in trees.items()}
            warm = {n: [] for n in trees}
            for _ in range(3):  # alternating
                for n, t in trees.items():
                    warm[n].append(probe(t, Path(tmp) / f"cache-{n}"))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT,
                           check=False, capture_output=True)
    lines = ["# A new process's first JAX answers, before and after", "",
             f"`python benchmarks/jax_first_use.py --before {args.before}` (after = {rev}): "
             "seconds to the first answer of each compiled interpreter, for programs of "
             f"{', '.join(map(str, SIZES))} steps, in a fresh process; cold = an empty cache "
             "folder, warm = the median of three more processes on the folder the cold one "
             "filled.", "",
             "| call | cold before | cold after | warm before | warm after | warm after / before |",
             "|---|---|---|---|---|---|"]
    total = {"before": 0.0, "after": 0.0}
    for d, size, m in CALLS:
        k = f"{d} {size} {m}"
        wb, wa = (statistics.median(r[k] for r in warm[n]) for n in ("before", "after"))
        total["before"] += wb
        total["after"] += wa
        lines.append(f"| {k} | {cold['before'][k]:.2f} | {cold['after'][k]:.2f} | {wb:.2f} | "
                     f"{wa:.2f} | {wa / wb:.2f} |")
    cold_total = {n: sum(cold[n].values()) for n in cold}
    lines += ["", f"All {len(CALLS)} first calls, cold: {cold_total['before']:.1f} s before, "
              f"{cold_total['after']:.1f} s after; warm: {total['before']:.1f} s before, "
              f"{total['after']:.1f} s after (**{total['after'] / total['before']:.2f}**), per "
              "process that meets every size."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
