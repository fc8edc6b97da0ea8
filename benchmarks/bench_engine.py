"""mflow against torch eager, forward + backward on the same random graphs, side by
side in one run; and mflow's backward time against graph size.

Writes benchmarks/results/engine.md (figures only; no test asserts on time:
these machines are shared, so only ratios measured in one run mean anything).

    python benchmarks/bench_engine.py [--graphs 200] [--repeats 30]
"""

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mflow.oracles.catalogue import CATALOGUE as OPS  # noqa: E402
from mflow.oracles.program import Program, Step, interpret  # noqa: E402
from mflow.oracles.torch_backend import TORCH_OPS  # noqa: E402

import mflow  # noqa: E402
from mflow import ShapeError  # noqa: E402

torch.set_num_threads(1)
OUT = Path(__file__).resolve().parent / "results" / "engine.md"

# Operations whose domain is all reals, so random values never leave it (getitem aside:
# its indices are drawn to fit the operand); attributes as fuzzing draws them (Op.drawn)
BENCH_OPS = [name for name, op in OPS.items()
             if set(op.domains(2, op.attrs)) <= {"real", "wide"} and None not in op.drawn.values()
             and name not in ("pow", "exp", "conv2d")]  # pow's p < 0 and exp leave the reals'
#   safety; conv2d needs a kernel no larger than its image
ATTRS = {name: [dict(zip(OPS[name].drawn, values))
                for values in itertools.product(*OPS[name].drawn.values())]
         for name in BENCH_OPS if OPS[name].drawn}


def random_program(rng, n_ops=10, max_side=8):
    """Three inputs of sides up to max_side, then n_ops operations on earlier nodes."""
    n, m = rng.integers(2, max_side + 1, 2)
    shapes = [(n, m), (m, n), (1, m)]
    program = []
    while len(program) < n_ops:
        name = BENCH_OPS[rng.integers(len(BENCH_OPS))]
        arity = OPS[name].arity or 2
        args = [int(rng.integers(len(shapes))) for _ in range(arity)]
        attrs = ATTRS.get(name, [{}])[rng.integers(len(ATTRS.get(name, [{}])))]
        try:
            shape = OPS[name].shape(*[shapes[a] for a in args], **attrs)
        except ShapeError:
            continue
        if max(shape) > max_side:
            continue
        program.append(Step(name, tuple(args), attrs))
        shapes.append(shape)
    inputs = [rng.uniform(-1, 1, s) for s in shapes[:3]]
    return Program(tuple(shapes[:3]), tuple(program)), inputs, rng.uniform(-1, 1, shapes[-1])


MFLOW_OPS = {name: partial(mflow.apply, name) for name in OPS}


def run_mflow(program, inputs, cotangent):
    nodes = interpret(program, MFLOW_OPS, lambda x: mflow.Node(x, requires_grad=True),
                      mflow.Node, inputs)
    nodes[-1].backward(cotangent)
    return [x.grad for x in nodes[:3]]


def run_torch(program, inputs, cotangent):
    nodes = interpret(program, TORCH_OPS, lambda x: torch.tensor(x, requires_grad=True),
                      torch.tensor, inputs)
    nodes[-1].backward(torch.from_numpy(cotangent))
    return [x.grad for x in nodes[:3]]


def per_call(f, args, repeats):
    t = time.perf_counter()
    for _ in range(repeats):
        f(*args)
    return (time.perf_counter() - t) / repeats


def chain(depth):
    x = mflow.Node(np.ones((4, 4)), requires_grad=True)
    y = x
    for i in range(depth):
        y = mflow.tanh(y) if i % 2 else y * 0.5 + x
    return y.sum()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    programs = [random_program(rng) for _ in range(args.graphs)]
    for p in programs[:20]:  # warm up both, and check they agree before timing them
        for a, b in zip(run_mflow(*p), run_torch(*p)):
            assert (a is None) == (b is None)  # an input the output does not use
            if a is not None:
                np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)
    ratios, t_mflow, t_torch = [], [], []
    for p in programs:  # interleaved in blocks, so both see the same machine load
        n = args.repeats // 5
        blocks = [(per_call(run_mflow, p, n), per_call(run_torch, p, n)) for _ in range(5)]
        m, t = min(b[0] for b in blocks), min(b[1] for b in blocks)  # the least disturbed block
        t_mflow.append(m)
        t_torch.append(t)
        ratios.append(m / t)

    sizes = [10, 100, 1_000, 10_000, 100_000]
    scaling = []
    for depth in sizes:
        y = chain(depth)
        reps = max(1, 20_000 // depth)
        best = min(per_call(y.backward, (), reps) for _ in range(3))
        scaling.append((depth, best))

    us = 1e6
    lines = [
        "# mflow against torch eager",
        "",
        f"Written by `benchmarks/bench_engine.py` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, one thread, Python "
        f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}.",
        "",
        f"## Forward + backward, {args.graphs} random graphs of 10 operations on matrices up to "
        f"8x8 (per graph: the fastest of 5 blocks of {args.repeats // 5} runs, "
        "mflow and torch blocks interleaved)",
        "",
        "| | mflow | torch eager |",
        "|---|---|---|",
        f"| median per graph | {statistics.median(t_mflow) * us:.1f} µs "
        f"| {statistics.median(t_torch) * us:.1f} µs |",
        f"| total | {sum(t_mflow) * 1e3:.1f} ms | {sum(t_torch) * 1e3:.1f} ms |",
        "",
        f"**mflow / torch time: median of per-graph ratios {statistics.median(ratios):.3f}, "
        f"ratio of totals {sum(t_mflow) / sum(t_torch):.3f}** (target: at most 0.6).",
        "",
        "## mflow backward time against graph size (a tanh / scale-and-add chain on 4x4)",
        "",
        "| nodes | backward | per node |",
        "|---|---|---|",
        *[f"| {d:,} | {t * 1e3:.3f} ms | {t / d * us:.2f} µs |" for d, t in scaling],
        "",
        f"Per-node cost from 1,000 to 100,000 nodes changes by a factor of "
        f"{(scaling[-1][1] / sizes[-1]) / (scaling[2][1] / sizes[2]):.2f} (1.0 is linear).",
    ]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
