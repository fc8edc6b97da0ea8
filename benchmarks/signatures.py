"""How many reports one bug makes, and whether two bugs in one engine stay apart.

For each planted bug, the first FINDINGS failing cases of an independent fuzz
run are each shrunk and blamed as a fuzz test does, then named by the report
signature; the distinct names are the reports a user would get for that one
bug. The old signature (kind, pair, blamed op, the shrunk program's operations)
is computed beside the current one on the same findings. Then engines with two
bugs planted: each finding is attributed to the bug that alone still fails it,
and a signature shared by findings of both bugs would hide one of them.

    python benchmarks/signatures.py [--findings 10] [--out FILE]
"""

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from mflow.oracles.checker import Checker  # noqa: E402
from mflow.oracles.local import local_disagreement  # noqa: E402
from mflow.oracles.verdict import EngineBug, same_failure  # noqa: E402
from mflow.reports import regressions  # noqa: E402
from mflow.reports.reduce import reduce  # noqa: E402
from mflow.strategies import cases  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from planted_bugs import CATALOGUE, PlantedEngine  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "signatures.md"
QUIET = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
PAIRS = [("broadcast_not_reduced", "fanout_overwrites"),
         ("matmul_missing_transpose", "tanh_not_squared"),
         ("sub_sign_flip", "div_denominator_sign")]


def old_signature(failure, blamed):
    """The signature as it was before it named the bug (commit b8e2462)."""
    v = failure.verdict
    failed = v.failures[0] if v.failures else None
    ops = v.case.program.ops()
    op = (blamed or {}).get("op") or (ops[-1] if ops else "case")
    raised = (v.errors.get("engine") or "").split(":", 1)[0]
    parts = [type(failure).__name__, "-".join(failed.pair) if failed else "", op, ",".join(ops)]
    parts += [raised] if raised else []
    return f"{parts[0]}-{op}-{hashlib.sha1('|'.join(parts).encode()).hexdigest()[:10]}"


def engine_with(*names):
    os.environ["MFLOW_PLANTED_BUG"] = ",".join(names)
    return PlantedEngine()


def findings(engine, n, run_seed):
    """The first n failing cases of a fuzz run on `engine`, shrunk and blamed."""
    checker, found = Checker(engine), []

    @seed(run_seed)
    @settings(QUIET, max_examples=20 * n + 200)
    @given(cases())
    def run(case):
        if len(found) >= n:
            return
        failure = checker.judge(case).outcome
        if not isinstance(failure, EngineBug):
            return
        kept = {"failure": failure}

        def same(c):
            again = checker.judge(c).outcome
            if same_failure(failure, again):
                kept["failure"] = again
                return True
            return False
        smaller = reduce(case, same)
        final = kept["failure"] if smaller is not case else failure
        found.append((final, local_disagreement(engine, final.verdict.case) or {}))
    run()
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--findings", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    lines = [f"# Reports per bug ({' '.join(sys.argv)}, seed {args.seed})", "",
             f"Each row: the first {args.findings} findings of one fuzz run on mflow with one "
             "bug planted, each shrunk and blamed; the distinct signatures among them are the "
             "reports a user gets for that one bug.", "",
             "| bug | findings | reports (old signature) | reports (signature now) |",
             "|---|---|---|---|"]
    totals = [0, 0, 0]
    for bug in CATALOGUE:
        got = findings(engine_with(bug.name), args.findings, args.seed)
        old = {old_signature(f, b) for f, b in got}
        new = {regressions.signature(f, b) for f, b in got}
        totals = [totals[0] + len(got), totals[1] + len(old), totals[2] + len(new)]
        lines.append(f"| {bug.name} | {len(got)} | {len(old)} | {len(new)} |")
        print(lines[-1], flush=True)
    lines += [f"| all | {totals[0]} | {totals[1]} | {totals[2]} |", "",
              "## Two bugs in one engine", "",
              "Each finding is attributed to the bug that alone still fails its shrunk case. "
              "A signature shared by both bugs' findings hides the second bug behind the first.",
              "", "| bugs | findings (first, second, either) | signatures shared by both bugs "
              "(old) | (now) |", "|---|---|---|---|"]
    for pair in PAIRS:
        got = findings(engine_with(*pair), 2 * args.findings, args.seed + 1)
        singles = [Checker(engine_with(name)) for name in pair]
        owner = {0: set(), 1: set(), "either": set()}
        by_sig = {"old": {}, "new": {}}
        for f, b in got:
            fails = []
            for i, checker in enumerate(singles):
                if checker.judge(f.verdict.case).outcome is not None:
                    fails.append(i)
            who = fails[0] if len(fails) == 1 else "either"
            owner[who].add(id(f))
            for key, sig in (("old", old_signature(f, b)), ("new", regressions.signature(f, b))):
                by_sig[key].setdefault(sig, set()).add(who)
        shared = {k: sum(1 for owners in s.values() if {0, 1} <= owners)
                  for k, s in by_sig.items()}
        lines.append(f"| {' + '.join(pair)} | {len(owner[0])}, {len(owner[1])}, "
                     f"{len(owner['either'])} | {shared['old']} of {len(by_sig['old'])} | "
                     f"{shared['new']} of {len(by_sig['new'])} |")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
