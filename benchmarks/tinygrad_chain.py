"""tinygrad alone (no suite) on the fuzz campaign's rare large case, a long chain of
elementwise steps on one 1x3 leaf: the seconds to its value and to its gradient, by
chain length, each length in a fresh process (tinygrad caches compiled kernels in
memory and on disk: the cache is turned off, so every run compiles as a first use does).

The campaign's time limit for tinygrad is 120 s (its `first_use`) + 0.05 s per step
(oracles/checker.py): 220 s for the 2,000 steps of `test_rare_large_cases`. A run over
it twice is an EngineHang. This measures whether that is a hang or a slow compile.

    python benchmarks/tinygrad_chain.py [--lengths 250 500 1000 2000] [--out FILE]

Writes benchmarks/results/tinygrad_chain.md (figures only).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "tinygrad_chain.md"

RUN = """
import json, sys, time
import numpy as np
from tinygrad import Tensor
n = int(sys.argv[1])
rng = np.random.default_rng(0)
ops = ("tanh", "sin", "neg", "add", "mul")  # the campaign's chain (reports/fuzzing.py)
x0 = Tensor(rng.uniform(0.2, 0.6, (1, 3)))
y = x0
for k in range(n):
    op = ops[rng.integers(len(ops))]
    y = getattr(y, op)(x0) if op in ("add", "mul") else getattr(y, op)()
t = time.perf_counter()
y.numpy()
forward = time.perf_counter() - t
t = time.perf_counter()
(g,) = y.gradient(x0, gradient=Tensor(np.ones((1, 3))))
g.numpy()
print(json.dumps({"forward": forward, "gradient": time.perf_counter() - t}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[250, 500, 1000, 2000])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    env = dict(os.environ, DEV="CPU", CCACHE="0", OMP_NUM_THREADS="1")
    rows = []
    for n in args.lengths:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", RUN, str(n)], env=env, check=True,
                             capture_output=True, text=True)
        run = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((n, run["forward"], run["gradient"], time.perf_counter() - t))
        print(rows[-1], flush=True)
    from importlib.metadata import version
    tg = version("tinygrad")
    lines = ["# tinygrad alone on a long elementwise chain", "",
             f"`benchmarks/tinygrad_chain.py --lengths {' '.join(map(str, args.lengths))}` on "
             f"{time.strftime('%Y-%m-%d %H:%M')}, tinygrad {tg}, DEV=CPU (clang), compiler "
             "cache off, one process per length.", "",
             "| steps | value (s) | gradient (s) | whole process (s) | the suite's limit (s) |",
             "|---|---|---|---|---|"]
    for n, fwd, grad, whole in rows:
        lines.append(f"| {n:,} | {fwd:.1f} | {grad:.1f} | {whole:.1f} | {120 + 0.05 * n:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
