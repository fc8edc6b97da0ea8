"""The suite's own figures: cost per graph of each oracle and of a full check, a
false-alarm run on correct mflow, and detection of every planted bug.

Writes benchmarks/results/suite.md (figures only, never asserted on: the
machines are shared and noisy).

    python benchmarks/bench_suite.py [--graphs 200] [--false-alarm 20000] [--bugs]
                                     [--xdist EXAMPLES]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from mflow.oracles.checker import Checker, modes_for  # noqa: E402
from mflow.oracles.engine import MflowEngine, run_engine  # noqa: E402
from mflow.oracles.finite_differences import finite_differences  # noqa: E402
from mflow.oracles.torch_backend import TorchEngine  # noqa: E402
from mflow.oracles.verdict import EngineBug  # noqa: E402
from mflow.reports.stats import Stats  # noqa: E402
from mflow.strategies import cases  # noqa: E402

torch.set_num_threads(1)
OUT = Path(__file__).resolve().parent / "results" / "suite.md"
QUIET = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def draw_cases(n, **kw):
    drawn = []

    @settings(QUIET, max_examples=n)
    @given(cases(**kw))
    def collect(case):
        drawn.append(case)
    collect()
    return drawn


def median_us(f, items):
    times = []
    for item in items:
        t = time.perf_counter()
        f(item)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def _timed(f, item):
    t = time.perf_counter()
    f(item)
    return (time.perf_counter() - t) * 1e6


def speed(n):
    t = time.perf_counter()
    sample = draw_cases(n, min_steps=10, max_steps=10)
    generation = (time.perf_counter() - t) / len(sample) * 1e6
    checker = Checker(MflowEngine())
    for case in sample:  # warm up: JAX compiles (or loads) one interpreter per dtype and size
        checker.check(case)
    rng = np.random.default_rng(0)
    rows = [
        ("Hypothesis generation alone (mean)", generation),
        ("engine (mflow) alone", median_us(
            lambda c: run_engine(MflowEngine(), c.program, c.inputs, c.cotangent), sample)),
        ("torch oracle alone", median_us(
            lambda c: run_engine(TorchEngine(), c.program, c.inputs, c.cotangent), sample)),
        ("JAX oracle alone (compiled interpreter)", median_us(
            lambda c: checker.jax.run(c.program, c.inputs, c.cotangent), sample)),
        ("finite differences alone", median_us(
            lambda c: finite_differences(c.program, c.inputs, c.cotangent, rng), sample)),
        ("check, reverse mode only: engine + torch (f64; the f32 gauge only where a comparison "
         "fails against the floor) + JAX + FD + compare",
         median_us(lambda c: checker.judge(c, ("vjp",)), sample)),
        ("check, both modes on every graph (+ JVP: torch f64, JAX, FD along ṫ, "
         "transpose identity)", median_us(lambda c: checker.judge(c, ("vjp", "jvp")), sample)),
        ("check, all three modes on every graph (+ HVP: torch double backward f64, "
         "JAX forward over reverse, FD of the engine's gradient along ṫ)",
         median_us(lambda c: checker.judge(c, ("vjp", "jvp", "hvp")), sample)),
        ("check as a campaign runs it (forward mode and second order each on every third "
         "graph; mean)",
         statistics.mean(_timed(lambda c: checker.judge(c, modes_for(c, checker.modes)), c)
                         for c in sample)),
    ]
    full = rows[-1][1] + generation
    rows.append(("full check: draw + check", full))
    steps = statistics.mean(len(c.program) for c in sample)
    return rows, len(sample), steps


def false_alarms(n):
    checker, stats = Checker(MflowEngine()), Stats()
    failures = []
    t = time.perf_counter()

    @settings(QUIET, max_examples=n)
    @given(cases(dtype="mixed"))
    def run(case):
        verdict = checker.judge(case)
        stats.add(verdict)
        if verdict.outcome is not None:
            e = verdict.outcome
            failures.append(f"{type(e).__name__}: {str(e).splitlines()[1:3]}")
    run()
    return stats, failures, time.perf_counter() - t


def _size(case):
    return len([s for s in case.program.steps if s.op != "const"])


def _hunt(bug):
    """Examples and seconds until the first failure, then shrunk and reduced sizes."""
    from hypothesis import find
    from mflow.reports.reduce import reduce
    checker = Checker(MflowEngine())
    calls = {"n": 0, "first": (None, None)}
    t = time.perf_counter()

    def fails(case):
        calls["n"] += 1
        try:
            checker.check(case)
        except EngineBug:
            if calls["first"][0] is None:
                calls["first"] = (calls["n"], time.perf_counter() - t)
            return True
        return False
    try:
        with bug.planted():
            case = find(cases(dtype="mixed"), fails,
                        settings=settings(QUIET, max_examples=3000, derandomize=True))
            size = _size(case)
            case = reduce(case, fails)
        return (bug.name, *calls["first"], time.perf_counter() - t, size, _size(case),
                ", ".join(case.program.ops()))
    except Exception as e:  # noqa: BLE001 - a bug not found is a figure too
        return (bug.name, None, None, time.perf_counter() - t, None, None, type(e).__name__)


def bugs():
    from tests.planted_bugs import CATALOGUE
    return [_hunt(bug) for bug in CATALOGUE]


def xdist_speedup(examples):
    """Wall time of the fuzz run (profile fuzz, `examples` per item, 8 shards: the
    same budget both ways) in one process and with pytest -n 2, side by side."""
    import subprocess
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, MFLOW_PROFILE="fuzz", MFLOW_FUZZ_EXAMPLES=str(examples))
    times = {}
    for label, extra in (("one process", ["-p", "no:xdist"]),
                         ("pytest -n 2", ["-n", "2", "--dist", "worksteal"])):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "--mflow-fuzz", "--mflow-shards",
                        "8", *extra], cwd=root, env=env, check=True, capture_output=True)
        times[label] = time.perf_counter() - t
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=200)
    ap.add_argument("--false-alarm", type=int, default=20000)
    ap.add_argument("--bugs", action="store_true")
    ap.add_argument("--xdist", type=int, default=0, metavar="EXAMPLES",
                    help="time the fuzz run with this many examples per item, -n 1 and -n 2")
    ap.add_argument("--out", type=Path, default=OUT,
                    help="where the figures are written (default benchmarks/results/suite.md)")
    args = ap.parse_args()
    lines = ["# The suite's figures", "",
             f"Written by `benchmarks/bench_suite.py` on {time.strftime('%Y-%m-%d %H:%M')}, "
             "one process, one thread.", ""]
    if args.graphs:
        rows, n, steps = speed(args.graphs)
        lines += [f"## Cost per graph ({n} graphs of 10 drawn operations, mean {steps:.1f} "
                  "steps with the joins, sides up to 8; medians except generation)", "",
                  "| what | µs |", "|---|---|"]
        lines += [f"| {what} | {us:,.0f} |" for what, us in rows]
    if args.false_alarm:
        stats, failures, seconds = false_alarms(args.false_alarm)
        lines += ["", f"## False alarms: {stats.checked:,} graphs on correct mflow "
                      f"(all operations, float64 and float32) in {seconds:,.0f} s", "",
                  f"**Failures: {len(failures)}**", ""]
        lines += [f"- {f}" for f in failures[:20]]
        lines += ["| oracle pair | largest |error| / tolerance | largest relative error |",
                  "|---|---|---|"]
        lines += [f"| {pair} | {w['ratio']:.3g} | {w['rel']:.3g} |"
                  for pair, w in sorted(stats.worst.items())]
        lines += ["", "Operations drawn: " + ", ".join(
            f"{op} {k}" for op, k in sorted(stats.ops.items()))]
    if args.xdist:
        times = xdist_speedup(args.xdist)
        one, two = times["one process"], times["pytest -n 2"]
        lines += ["", "## pytest -n auto on two cores (tests/test_fuzz.py, profile fuzz, "
                  f"{args.xdist} examples per item, --dist worksteal)", "",
                  f"One process {one:.1f} s, `-n 2` {two:.1f} s: speed-up **{one / two:.2f}**."]
    if args.bugs:
        lines += ["", "## Planted bugs (tests/planted_bugs.py): detection and shrinking", "",
                  "Derandomised search over all operations, float64 and float32; steps "
                  "exclude constants. relu_mask_ge lives at the kink, which the fuzzer avoids "
                  "by design: the convention test (oracles/kinks.py) is the one that catches it.",
                  "", "| bug | examples to detect | seconds to detect | seconds with shrinking "
                  "| steps after Hypothesis | after the reducer | final ops |",
                  "|---|---|---|---|---|---|---|"]
        for name, first, t_first, total, size, reduced, ops in bugs():
            lines.append(f"| {name} | {first} | {t_first if t_first is None else round(t_first, 2)}"
                         f" | {total:.1f} | {size} | {reduced} | {ops} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
