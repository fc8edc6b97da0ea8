"""The false-alarm campaign: many graphs on the correct engine, in seeded chunks;
every failure is a false alarm (mflow is the engine under test).

    python benchmarks/false_alarms.py [--graphs 1000000] [--float32 200000]
                                      [--half 100000] [--chunk 5000] [--seed 0] [--out FILE]
                                      [--fast]
    python benchmarks/false_alarms.py --merge A.json B.json ... [--out FILE]

Writes its figures (graphs checked, false alarms with their cases, the
rule-of-three 95 % bound on the false-alarm rate, the largest |error| /
tolerance per oracle pair, finite-difference probes left out per operation)
to benchmarks/results/false_alarms.md after every chunk, so an interrupted run
keeps what it measured (and FILE.json, its counts). Run one process per core
with different --seed; --merge adds up the .json files of such runs.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from mflow.oracles.checker import Checker  # noqa: E402
from mflow.oracles.engine import MflowEngine  # noqa: E402
from mflow.reports.stats import Stats  # noqa: E402
from mflow.strategies import cases  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "false_alarms.md"
QUIET = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def chunk(checker, stats, alarms, n, dtype, chunk_seed, fast=False):
    def judge(case):
        verdict = checker.judge(case)
        stats.add(verdict)
        if verdict.outcome is not None:
            alarms.append({"dtype": dtype, "seed": chunk_seed, "kind":
                           type(verdict.outcome).__name__, "case": repr(case),
                           "describe": verdict.describe()})
    if fast:  # drawn as the fuzz items draw most graphs (reports/search.py)
        import random

        from mflow.strategies.graphs import draw_fast
        strategy, rng = cases(dtype=dtype), random.Random(chunk_seed)
        for _ in range(n):
            judge(draw_fast(strategy, rng)[0])
        return

    @seed(chunk_seed)
    @settings(QUIET, max_examples=n)
    @given(cases(dtype=dtype))
    def run(case):
        judge(case)
    run()


def write(out, figures):
    lines = [f"# False-alarm campaign ({figures['command']})", "",
             figures.get("note") or
             f"Started {figures['started']}; {figures['seconds']:.0f} s so far.", ""]
    for mix, (stats, alarms) in figures["mixes"].items():
        n = stats.checked
        lines += [f"## {mix}: {n:,} graphs, {len(alarms)} false alarm(s)", "",
                  f"Rule-of-three 95 % upper bound on the false-alarm rate: "
                  f"{3 / max(n, 1):.2g} per graph" if not alarms else
                  "False alarms found (each one is fixed, kept as a guard, and the count "
                  "restarted):", ""]
        lines += ["| oracle pair | largest error / tolerance | largest relative error |",
                  "|---|---|---|"]
        lines += [f"| {p} | {w['ratio']:.3g} | {w['rel']:.3g} |"
                  for p, w in sorted(stats.worst.items())]
        lines += ["", "Outcomes: " + ", ".join(f"{k} {v:,}" for k, v in
                                                sorted(stats.outcomes.items())),
                  "", "Dtypes: " + ", ".join(f"{k} {v:,}" for k, v in
                                             sorted(stats.dtypes.items())), ""]
        for what, counts in (("at a kink", stats.skipped), ("unresolved", stats.unresolved)):
            lines.append(f"Finite-difference probes left out {what}: " + (", ".join(
                f"{op} {k:,}" for op, k in sorted(counts.items())) or "none"))
        lines.append("")
        for a in alarms:
            lines += [f"### {a['kind']} ({a['dtype']}, chunk seed {a['seed']})", "", "```",
                      a["describe"], a["case"], "```", ""]
    out.write_text("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=1_000_000)
    ap.add_argument("--float32", type=int, default=200_000)
    ap.add_argument("--half", type=int, default=100_000,
                    help="graphs in float16 and bfloat16 (either, per graph)")
    ap.add_argument("--chunk", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--merge", type=Path, nargs="+", help="add up these runs' .json files")
    ap.add_argument("--fast", action="store_true", help="draw with strategies.graphs."
                    "draw_fast, as the fuzz items draw nine graphs in ten")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, args.out)
    checker, t = Checker(MflowEngine()), time.time()
    mixes = {"fuzz mix (float64 and float32)": ("mixed", args.graphs, Stats(), []),
             "float32 only": ("float32", args.float32, Stats(), []),
             "half precision (float16 and bfloat16)": ("half", args.half, Stats(), [])}
    figures = {"command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                        time.gmtime(t))}
    k = 0
    while any(s.checked < n for _, n, s, _ in mixes.values()):
        for dtype, n, stats, alarms in mixes.values():
            if stats.checked < n:
                chunk(checker, stats, alarms, min(args.chunk, n - stats.checked), dtype,
                      args.seed * 1_000_003 + k, args.fast)
        k += 1
        figures.update(seconds=time.time() - t,
                       mixes={m: (s, a) for m, (_, _, s, a) in mixes.items()})
        write(args.out, figures)
        (args.out.with_suffix(".json")).write_text(json.dumps(
            {m: {"stats": s.to_dict(), "alarms": a} for m, (_, _, s, a) in mixes.items()}))
    print(args.out.read_text())


def merge(paths, out):
    mixes = {}
    for path in paths:
        for mix, record in json.loads(path.read_text()).items():
            stats, alarms = mixes.setdefault(mix, (Stats(), []))
            stats.merge(Stats.from_dict(record["stats"]))
            alarms += record["alarms"]
    total = sum(s.checked for s, _ in mixes.values())
    write(out, {"command": "merged", "mixes": mixes, "note":
                f"The runs {', '.join(p.name for p in paths)} added up: {total:,} graphs, "
                f"{sum(len(a) for _, a in mixes.values())} false alarm(s); rule-of-three 95 % "
                f"bound over all of them: {3 / max(total, 1):.2g} per graph."})
    print(out.read_text())


if __name__ == "__main__":
    main()
