"""A campaign of the engine-session state machine (reports/sessions.py) on one adapter:
`--runs` runs (sequences of calls) in chunks of `--chunk`, each chunk on its own seed,
going on after a failure (Hypothesis stops a test at its first), so that a correct
engine's false alarms and a real engine's findings are counted over the whole campaign.

    python benchmarks/session_campaign.py --engine SPEC --runs 50000 --first-seed S \\
        [--chunk 1000] [--reports DIR] --out FILE.md

SPEC as `--engine` takes it ("mflow", "mflow.oracles.adapters.torch_eager", ...).
`--reports DIR` (outside the repository) keeps each failure, shrunk, as a session's
regression report there. The figures are written after every chunk, so an interrupted
campaign keeps what it measured.
"""

import argparse
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, seed  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402
from mflow.oracles.engine import load_engine  # noqa: E402
from mflow.oracles.verdict import EngineBug, ReferenceDisagreement  # noqa: E402
from mflow.reports.sessions import machine, session_settings  # noqa: E402

CHECKS = [0]  # answers checked in the campaign, to the first failure of each chunk or not


def chunk(adapter, chunk_seed, runs, saving, skip=()):
    """(runs made up to the first failure -- not the runs of its shrinking --, the
    failure or None, the reference disagreements warned about)."""
    session = machine(adapter, [o for o in adapter.ops if o not in skip], saving=saving)
    count, first = [0], [None]
    judge = session.checker.judge

    def judged(*a, **k):  # every answer checked (a read, a VJP, a buffer, ...)
        CHECKS[0] += 1
        return judge(*a, **k)
    session.checker.judge = judged
    made, saver = session.__init__, session.found

    def counted(self):
        count[0] += 1
        made(self)
    session.__init__ = counted

    def found(failure, sequence):
        first[0] = count[0] if first[0] is None else first[0]
        if saver is not None:
            saver(failure, sequence)
    session.found = staticmethod(found)
    failure = None
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", ReferenceDisagreement)
        try:
            seed(chunk_seed)(session)  # (on the class: run_state_machine_as_test reads it there)
            run_state_machine_as_test(session, settings=session_settings(
                max_examples=runs, stateful_step_count=12, deadline=None, database=None,
                suppress_health_check=list(HealthCheck)))
        except Exception as e:  # noqa: BLE001 - the finding (or a group of them)
            failure = e
            if not isinstance(e, EngineBug):  # the suite's own crash: where, kept
                with open(f"{os.environ.get('MFLOW_CAMPAIGN_LOG', 'tracebacks')}.txt",
                          "a") as log:
                    log.write(f"seed {chunk_seed}:\n{traceback.format_exc()}\n")
    disagreements = [str(w.message) for w in warned
                     if issubclass(w.category, ReferenceDisagreement)]
    return first[0] or count[0], failure, disagreements


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="mflow")
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--first-seed", type=int, required=True)
    ap.add_argument("--reports", type=Path, help="keep each failure's report here")
    ap.add_argument("--skip-ops", nargs="*", default=[],
                    help="operations left out (a known bug's, so that chunks go on past it)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    os.environ["MFLOW_CAMPAIGN_LOG"] = str(args.out.with_suffix(""))  # + .txt: tracebacks
    adapter = load_engine(args.engine)
    saving = None
    if args.reports:
        from mflow.oracles.checker import Checker
        from mflow.reports.saving import SavingChecker
        args.reports.mkdir(parents=True, exist_ok=True)
        saving = SavingChecker(Checker(adapter), adapter, args.reports, spec=args.engine)
    total, rows, start = 0, [], time.perf_counter()
    s = args.first_seed
    while total < args.runs:
        made, failure, disagreements = chunk(adapter, s, min(args.chunk, args.runs - total),
                                             saving, args.skip_ops)
        total += made
        what = "none" if failure is None else f"{type(failure).__name__}: " + " ".join(
            " ".join(str(failure).split()).split("call ")[:1])[:200] + (
            f" (call {getattr(failure, 'call', '?')} of the shrunk session)")
        rows.append(f"| {s} | {made} | {what} | {len(disagreements)} |")
        for d in disagreements[:3]:
            rows.append(f"|  |  | (references) {d[:300]} |  |")
        s += 1
        failures = sum(1 for r in rows if r.split("|")[1].strip() and
                       r.split("|")[3].strip() != "none")
        seconds = time.perf_counter() - start
        args.out.write_text("\n".join([
            f"# Engine-session campaign: {args.engine}", "",
            f"`python benchmarks/session_campaign.py --engine {args.engine} --runs {args.runs} "
            f"--first-seed {args.first_seed} --chunk {args.chunk}`" +
            (f" `--skip-ops {' '.join(args.skip_ops)}`" if args.skip_ops else "") +
            (f" `--reports {args.reports}`" if args.reports else ""), "",
            f"{total} runs (at most 12 calls each; {CHECKS[0]} answers checked, shrinking "
            f"included) in {seconds:.0f} s ({total / seconds:.1f} runs/s, one core); chunks "
            f"with a failure: {failures}.", "",
            "| seed | runs | failure (a chunk stops at its first, shrunk) | reference "
            "disagreements |", "|---|---|---|---|", *rows]) + "\n")
        print(rows[-1] if failure is None else rows[-1 - min(3, len(disagreements))],
              f"total {total}", flush=True)
    if saving is not None:
        saving.close()


if __name__ == "__main__":
    main()
