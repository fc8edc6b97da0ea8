"""What a call of JAX's compiled interpreter costs, and what batching cases would save
(issue 24): on drawn graphs of 10 operations (float64, the campaign's bucket), ms per
case of
  - one call per case, as a check calls it now (`JaxOracle.run`'s executable, the
    encoding done beforehand);
  - the same call with no step to run (n = 0): what a call costs whatever its graph;
  - K cases in one call, one after another inside the executable (`lax.map` over
    their encodings: each case keeps its own program, so `lax.switch` stays a branch;
    `vmap` over programs would make it a select that runs every branch).
Writes benchmarks/results/jax_batching.md (figures only).

    python benchmarks/jax_batching.py [--graphs 200] [--k 16] [--rounds 3] [--seed N]
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402
from mflow.oracles.jax_backend import JaxOracle  # noqa: E402
from mflow.oracles.tolerance import as_dtype  # noqa: E402
from throughput import _draw  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "jax_batching.md"


def encoded_args(oracle, case):
    """The VJP interpreter's arguments for `case` in float64, or None (no fit)."""
    p = as_dtype(case.program, "float64")
    e = oracle.encode(p)
    if e is None or oracle._other(p):
        return None
    dt = np.float64
    return oracle.vjp_args(e, [x.astype(dt) for x in case.inputs], case.cotangent.astype(dt),
                           dt)


def best_ms(call, items, rounds, per=1):
    """The best over rounds of ms per item (each call covers `per` items)."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for a in items:
            jax.block_until_ready(call(*a))
        best = min(best, (time.perf_counter() - t) / (len(items) * per) * 1e3)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=200)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    oracle = JaxOracle()
    cases = [a for a in (encoded_args(oracle, c) for c in _draw(args.graphs, args.seed))
             if a is not None]
    bucket = len(cases[0][1])
    raw = oracle._raw_vjp(np.float64, bucket)
    one = jax.jit(raw)
    many = jax.jit(lambda *batch: lax.map(lambda a: raw(*a), batch))
    k = args.k
    batches = [tuple(np.stack(field) for field in zip(*cases[i:i + k]))
               for i in range(0, len(cases) - k + 1, k)]
    empty = [(*a[:5], np.int32(0)) for a in cases]
    for call, items in ((one, cases), (one, empty), (many, batches[:1])):
        jax.block_until_ready(call(*items[0]))  # compiled outside the timing
    figures = {"one call per case": best_ms(one, cases, args.rounds),
               "one call with no step (n = 0)": best_ms(one, empty, args.rounds),
               f"{k} cases in one call (lax.map), per case":
                   best_ms(many, batches, args.rounds, per=k)}
    base = figures["one call per case"]
    lines = ["# A call of JAX's compiled interpreter, and cases batched in one", "",
             f"`benchmarks/jax_batching.py --graphs {args.graphs} --k {k} --rounds "
             f"{args.rounds} --seed {args.seed}` on {time.strftime('%Y-%m-%d %H:%M')}: "
             f"{len(cases)} drawn graphs of 10 operations that fit the interpreter "
             f"(float64, bucket of {bucket} steps), the VJP executable alone (encodings "
             "made beforehand); ms per case, best of the rounds.", "",
             "| call | ms per case | / one call per case |", "|---|---|---|"]
    lines += [f"| {name} | {ms:.3f} | {ms / base:.2f} |" for name, ms in figures.items()]
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
