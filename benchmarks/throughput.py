"""Throughput before and after, side by side in one run: the suite as it is (this
checkout) against an earlier commit, on the same machine at the same time.

For each tree, in alternating rounds: the cost per graph of a check (the same
graphs in both: drawn with one seed from strategies that did not change), then
planted-bug detection (bench_suite.bugs: every bug of tests/planted_bugs.py,
derandomised) and a false-alarm run on correct mflow (fresh seed, all three
modes on every graph), then a fuzz campaign on two cores with a fixed budget
(`pytest -n 2 --mflow-fuzz`, profile fuzz), whose graphs per second is the
progress line's figure. Writes benchmarks/results/throughput.md (figures only,
never asserted on: read the ratios, measured side by side, not the seconds).

    python benchmarks/throughput.py [--before REV] [--graphs 200] [--rounds 3]
        [--false-alarm 2000] [--seed N] [--examples 30] [--no-bugs] [--no-power]
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "throughput.md"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}


@contextlib.contextmanager
def worktree(rev):
    """A git worktree of `rev` in a temporary folder, removed afterwards: the earlier
    tree a side-by-side benchmark runs against."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT,
                           check=False, capture_output=True)


# --- in a worker: one tree's code, through PYTHONPATH ----------------------------------

def _draw(n, seed, **kw):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as seeded
    from mflow.strategies import cases
    drawn = []

    @seeded(seed)
    @settings(deadline=None, database=None, suppress_health_check=list(HealthCheck),
              max_examples=n)
    @given(cases(**kw))
    def collect(case):
        drawn.append(case)
    collect()
    return drawn


def worker_speed(n, seed):
    import zlib

    from mflow.oracles.checker import Checker, modes_for
    from mflow.oracles.engine import MflowEngine
    t = time.perf_counter()
    sample = _draw(n, seed, min_steps=10, max_steps=10)
    generation = (time.perf_counter() - t) / len(sample) * 1e3
    fast = None
    try:  # the fast search's drawing (reports/search.py), where the tree has it
        import random

        from mflow.strategies import cases
        from mflow.strategies.graphs import draw_fast
        strategy, rng = cases(min_steps=10, max_steps=10), random.Random(seed)
        t = time.perf_counter()
        for _ in range(n):
            draw_fast(strategy, rng)
        fast = (time.perf_counter() - t) / n * 1e3
    except ImportError:
        pass
    checker = Checker(MflowEngine())
    for case in sample:  # warm up: JAX compiles (or loads) its interpreters
        checker.judge(case)

    def times(modes):
        out = []
        for case in sample:
            t = time.perf_counter()
            checker.judge(case, modes(case))
            out.append((time.perf_counter() - t) * 1e3)
        return out
    campaign = times(lambda c: modes_for(c, checker.modes))
    return {"graphs": len(sample), "generation_ms": generation, "fast_generation_ms": fast,
            "campaign_mean_ms": statistics.mean(campaign),
            "campaign_median_ms": statistics.median(campaign),
            "reverse_median_ms": statistics.median(times(lambda c: ("vjp",))),
            "all_modes_median_ms": statistics.median(times(lambda c: None)),
            "cases": zlib.crc32(repr([c.program for c in sample]).encode()),
            "code": __import__("mflow").__file__}


def worker_power(false_alarm, seed, bugs):
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import MflowEngine
    out = {}
    checker, failures = Checker(MflowEngine()), []
    t = time.perf_counter()
    for case in _draw(false_alarm, seed, dtype="mixed"):
        verdict = checker.judge(case)  # all three modes
        if verdict.outcome is not None:
            failures.append(f"{type(verdict.outcome).__name__}: {case.program.ops()}")
    out["false_alarm"] = {"graphs": false_alarm, "failures": failures,
                          "seconds": time.perf_counter() - t}
    if bugs:
        import bench_suite
        out["bugs"] = [list(row) for row in bench_suite.bugs()]
    return out


# --- the driver ------------------------------------------------------------------------

def run_in(tree, script, *argv):
    """`script argv` in a fresh process on `tree`'s code and benchmarks (PYTHONPATH),
    one thread: its last line of output, as JSON. The side-by-side benchmarks' worker."""
    env = dict(os.environ, **ONE_THREAD, PYTHONPATH=f"{tree}{os.pathsep}{tree / 'benchmarks'}")
    out = subprocess.run([sys.executable, str(script), *argv], cwd=tree, env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_worker(tree, task, **kw):
    return run_in(tree, Path(__file__).resolve(), "--worker", task, "--args", json.dumps(kw))


def campaign(tree, examples, folder):
    """A fixed-budget fuzz campaign on two cores: (graphs, seconds, graphs/s)."""
    env = dict(os.environ, **ONE_THREAD, PYTHONPATH=str(tree), MFLOW_PROFILE="fuzz",
               MFLOW_FUZZ_EXAMPLES=str(examples), MFLOW_STRICT="0")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                    "--dist", "worksteal", "--mflow-fuzz", "--mflow-shards", "8",
                    "--mflow-campaign", str(folder)], cwd=tree, env=env, check=False,
                   capture_output=True)
    checked = sum(json.loads(p.read_text()).get("checked", 0)
                  for p in folder.glob("stats-*.json"))
    seconds = json.loads((folder / "run.json").read_text())["seconds"]
    return checked, seconds, checked / seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="acb3c29", help="the earlier commit (default: the "
                    "last commit before the throughput work)")
    ap.add_argument("--graphs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--false-alarm", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--examples", type=int, default=30, help="per fuzz item, for the campaign")
    ap.add_argument("--no-bugs", action="store_true")
    ap.add_argument("--no-power", action="store_true", help="neither bugs nor false alarms")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--args", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        sys.path.remove(str(Path(__file__).resolve().parent))  # the tree's own, from PYTHONPATH
        kw = json.loads(args.args)
        print(json.dumps({"speed": worker_speed, "power": worker_power}[args.worker](**kw)))
        return

    with tempfile.TemporaryDirectory() as tmp, worktree(args.before) as before:
        trees = {"before": before, "after": ROOT}
        speed = {name: [] for name in trees}
        for r in range(args.rounds):  # alternating, so that drift hits both alike
            for name in (trees if r % 2 == 0 else reversed(trees)):
                speed[name].append(run_worker(trees[name], "speed", n=args.graphs,
                                              seed=args.seed))
                print(name, "speed", speed[name][-1], flush=True)
        power = {}
        for name, tree in ({} if args.no_power else trees).items():
            power[name] = run_worker(tree, "power", false_alarm=args.false_alarm,
                                     seed=args.seed + 1, bugs=not args.no_bugs)
            print(name, "power", json.dumps(power[name])[:300], flush=True)
        fuzz = {}
        for name in ("before", "after", "before", "after"):
            folder = Path(tmp) / f"campaign-{name}-{len(fuzz.get(name, []))}"
            fuzz.setdefault(name, []).append(campaign(trees[name], args.examples, folder))
            print(name, "campaign", fuzz[name][-1], flush=True)
    write(args, speed, power, fuzz)


def write(args, speed, power, fuzz):
    after_rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    same = len({s["cases"] for runs in speed.values() for s in runs}) == 1

    def med(name, key):
        return statistics.median(s[key] for s in speed[name])
    rows = [("Hypothesis generation (mean)", "generation_ms"),
            ("check, reverse mode only (median)", "reverse_median_ms"),
            ("check, all three modes on every graph (median)", "all_modes_median_ms"),
            ("check as a campaign runs it (jvp, hvp each on one graph in three; mean)",
             "campaign_mean_ms")]
    lines = ["# Throughput, before and after, side by side", "",
             f"`benchmarks/throughput.py` on {time.strftime('%Y-%m-%d %H:%M')}: before = "
             f"{args.before}, after = {after_rev}{' + uncommitted changes' if dirty else ''}; "
             f"seed {args.seed}; {args.rounds} alternating rounds of {args.graphs} graphs of 10 "
             f"drawn operations, one process, one thread each"
             f"{'' if same else ' (WARNING: the two trees drew different graphs)'}.", "",
             "## Cost per graph (ms; median over rounds)", "",
             "| what | before | after | after / before |", "|---|---|---|---|"]
    for what, key in rows:
        b, a = med("before", key), med("after", key)
        lines.append(f"| {what} | {b:.2f} | {a:.2f} | {a / b:.2f} |")

    def drawing(name):  # as a campaign draws: the fast search's where the tree has one
        fast = [s.get("fast_generation_ms") for s in speed[name]]
        return statistics.median(fast) if None not in fast else med(name, "generation_ms")
    lines.append(f"| generation as a campaign draws (draw_fast where the tree has it; "
                 f"mean) | {drawing('before'):.2f} | {drawing('after'):.2f} | "
                 f"{drawing('after') / drawing('before'):.2f} |")
    full_b = med("before", "campaign_mean_ms") + drawing("before")
    full_a = med("after", "campaign_mean_ms") + drawing("after")
    lines.append(f"| full check: draw as a campaign draws + check | {full_b:.2f} | "
                 f"{full_a:.2f} | {full_a / full_b:.2f} |")
    lines += ["", f"## Campaign on two cores (`pytest -n 2 --mflow-fuzz --mflow-shards 8`, "
              f"profile fuzz, {args.examples} examples per item; two runs each, alternating)",
              "", "| tree | graphs | seconds | graphs/s |", "|---|---|---|---|"]
    for name, runs in fuzz.items():
        for checked, seconds, rate in runs:
            lines.append(f"| {name} | {checked:,} | {seconds:.0f} | {rate:.1f} |")
    rate = {name: statistics.mean(r[2] for r in runs) for name, runs in fuzz.items()}
    lines += ["", f"Graphs per second, after / before: **{rate['after'] / rate['before']:.2f}**."]
    # the campaign against two cores running the full check back to back (issue 24's
    # first target: at least 90 %), each tree against its own full check
    for name, full in (("before", full_b), ("after", full_a)):
        lines.append(f"- {name}: campaign {rate[name]:.1f} graphs/s against {2e3 / full:.1f} "
                     f"for two cores running the full check ({full:.2f} ms) back to back: "
                     f"**{rate[name] * full / 2e3:.0%}**")
    lines += ["", "## The verdict's power, same run", ""] if power else []
    for name, p in power.items():
        fa = p["false_alarm"]
        lines.append(f"- {name}: false alarms on correct mflow: **{len(fa['failures'])}** in "
                     f"{fa['graphs']:,} graphs (seed {args.seed + 1}, all three modes on every "
                     f"graph) in {fa['seconds']:.0f} s"
                     + "".join(f"\n  - {f}" for f in fa["failures"][:10]))
    if power and all("bugs" in p for p in power.values()):
        lines += ["", "Planted bugs (tests/planted_bugs.py), derandomised search: examples to "
                  "the first failure, steps after the reducer, before → after", "",
                  "| bug | examples before | after | steps before | after |",
                  "|---|---|---|---|---|"]
        caught = {}
        for name, p in power.items():
            caught[name] = sum(row[1] is not None for row in p["bugs"])
        for b, a in zip(power["before"]["bugs"], power["after"]["bugs"]):
            lines.append(f"| {b[0]} | {b[1]} | {a[1]} | {b[5]} | {a[5]} |")
        lines += ["", f"Caught: before {caught['before']} of {len(power['before']['bugs'])}, "
                  f"after {caught['after']} of {len(power['after']['bugs'])}."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
