"""The suite's command, for those who don't write pytest (python -m mflow, or mflow-suite):

fuzz    a campaign on an engine: pytest --mflow-fuzz with the fuzz profile, progress,
        and at the end the summary and the comparison report in --report DIR
          python -m mflow fuzz --engine my_pkg.adapter:engine --examples 500 --jobs auto
gate    replay every saved report (--reports DIR) against the engine
report  the comparison report again, from a campaign's folder
list    every saved regression report with its status, replayed on the engine it
        was made on (--engine: only that engine's reports): FAILING (the bug is
        still there), fixed, a guard (a case the references once disagreed on:
        "guard ok" or "guard: references disagree", never the engine's fault),
        unreadable (a damaged report: named, skipped) or "no engine" (its adapter
        does not load here)
retire  move the fixed ones (or only those named by --signature) into DIR/archive,
        where the gate no longer replays them but the record is kept; guards are
        never retired; --dry-run says what would move
merge   many machines' campaigns as one: OUT then each machine's campaign folder;
        one summary and comparison report in OUT; with --from, their saved reports
        into --reports DIR, one per signature
          python -m mflow merge merged A/campaign B/campaign --from A/regr B/regr

Exit status (fuzz and gate are pytest runs, and say so as pytest does): 0 all
passed; 1 an engine failure was found (fuzz), is still there (gate), or a report
is FAILING or unreadable (list, retire); 2 interrupted; 4 usage error; 5 nothing
to run; 6 with --strict, no engine failure but the references disagreed on a case.
"""


import argparse
import os
import shutil
import sys
from pathlib import Path

from . import regressions


def status(folder, checker_for, engine=None):
    """(state, report or None, detail) of one saved report, replayed on the engine it
    was made on (`checker_for(spec)`: a Checker, or an EngineError). With `engine`
    named, another engine's report is "other engine" and not replayed."""
    from mflow.oracles.engine import EngineError
    from mflow.oracles.verdict import accuses_engine
    try:
        case, report = regressions.load(folder)
    except regressions.ReportError as e:
        return "unreadable", None, str(e)
    spec = regressions.recorded_engine(report) or engine or "mflow"
    if engine is not None and not regressions.same_engine(spec, engine):
        return "other engine", report, spec
    try:
        checker = checker_for(spec)
    except EngineError as e:
        return "no engine", report, str(e)
    outcome = checker.judge(case).outcome
    if regressions.is_guard(report):
        if outcome is None or not accuses_engine(outcome):
            return ("guard ok" if outcome is None else "guard: references disagree"), report, ""
    if outcome is not None:
        return "FAILING", report, type(outcome).__name__
    return "fixed", report, ""


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mflow", description=__doc__.splitlines()[0],
                                 epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["fuzz", "gate", "report", "list", "retire", "merge"])
    ap.add_argument("directory", nargs="*", help="report: the campaign's folder; merge: the "
                                                 "merged folder, then each machine's")
    ap.add_argument("--engine", default=os.environ.get("MFLOW_ENGINE"),
                    help="the engine under test, module[:attribute] (fuzz, gate: default "
                         "mflow; list, retire: default each report's own engine, named: only "
                         "that engine's reports)")
    ap.add_argument("--reports", "--dir", dest="dir",
                    default=os.environ.get("MFLOW_REPORTS_DIR", "reports/regressions"),
                    help="the saved reports' folder (default reports/regressions, or "
                         "MFLOW_REPORTS_DIR)")
    ap.add_argument("--examples", type=int, default=1000, help="fuzz: examples per test item")
    ap.add_argument("--jobs", default="auto", help="fuzz, gate: processes (pytest-xdist -n)")
    ap.add_argument("--report", default="reports/latest",
                    help="fuzz: the campaign's folder (summary, comparison report)")
    ap.add_argument("--shards", type=int, default=8, help="fuzz: items for the random graphs")
    ap.add_argument("--strict", action="store_true",
                    help="fuzz, gate: exit status 6 when the references disagreed")
    ap.add_argument("--dry-run", action="store_true", help="retire: only say what would move")
    ap.add_argument("--signature", nargs="*", default=None,
                    help="retire: only these reports (fixed ones among them)")
    ap.add_argument("--db", default=None, metavar="URL",
                    help="fuzz: the example database shared by the machines of a campaign, "
                         "redis://host:port/n (or MFLOW_DB)")
    ap.add_argument("--machine", default=None,
                    help="fuzz: this machine's name in records and reports (or MFLOW_MACHINE; "
                         "default the host name)")
    ap.add_argument("--from", dest="sources", nargs="+", default=(), metavar="DIR",
                    help="merge: the machines' saved-report folders, merged into --reports")
    args, extra = ap.parse_known_args(argv)
    if args.command in ("fuzz", "gate"):
        return _pytest(args, extra)
    if extra:
        ap.error(f"unrecognised arguments: {' '.join(extra)}")
    if args.command == "report":
        from .comparison import main as report_main
        return report_main([args.directory[0] if args.directory else args.report])
    if args.command == "merge":
        if len(args.directory) < 2:
            ap.error("merge: give the merged folder, then each machine's campaign folder")
        from .merge import main as merge_main
        try:
            return merge_main(args.directory[0], args.directory[1:], args.sources, args.dir)
        except FileNotFoundError as e:
            print(e, file=sys.stderr)
            return 4
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import EngineError, load_engine
    checkers = {}

    def checker_for(spec):  # one Checker per engine; a spec that fails to load, once
        if spec not in checkers:
            try:
                checkers[spec] = Checker(load_engine(spec))
            except EngineError as e:
                checkers[spec] = e
        if isinstance(checkers[spec], EngineError):
            raise checkers[spec]
        return checkers[spec]
    if args.engine is not None:
        try:
            checker_for(args.engine)
        except EngineError as e:
            print(e, file=sys.stderr)
            return 4
    folders = regressions.reports(args.dir)
    if not folders:
        print(f"no regression reports in {args.dir}")
    bad = 0
    for folder in folders:
        state, report, now = status(folder, checker_for, args.engine)
        bad += state in ("FAILING", "unreadable", "no engine")
        if state == "other engine":
            print(f"{state:10s} {folder.name}  (made on {now}: not replayed here)")
            continue
        if report is None:
            print(f"{state:10s} {folder.name}  ({now})")
            continue
        seen = len(list((Path(folder) / "seen").glob("*")))
        on = regressions.recorded_engine(report) or args.engine or "mflow"
        print(f"{state:10s} {folder.name}  ({report['failure']} on {on}, "
              f"{report.get('steps')} steps, "
              f"found {1 + seen}x, saved {report.get('date', '?')}){' now ' + now if now else ''}")
        chosen = args.signature is None or folder.name in args.signature
        if args.command == "retire" and state == "fixed" and chosen:
            archive = Path(args.dir) / regressions.ARCHIVE
            if args.dry_run:
                print(f"           would retire to {archive / folder.name}")
                continue
            archive.mkdir(exist_ok=True)
            shutil.move(str(folder), str(archive / folder.name))
            print(f"           retired to {archive / folder.name}")
    return 1 if bad else 0


def _pytest(args, extra):
    """fuzz and gate: the plugin's tests, in this process; pytest's exit status."""
    import pytest
    os.environ.setdefault("MFLOW_PROFILE", "fuzz" if args.command == "fuzz" else "ci")
    os.environ["MFLOW_FUZZ_EXAMPLES"] = str(args.examples)
    argv = [f"--mflow-{args.command}", "--mflow-engine", args.engine or "mflow",
            "--mflow-reports", args.dir]
    if args.jobs not in ("0", "1"):
        argv += ["-n", args.jobs] + (["--dist", "worksteal"] if args.command == "fuzz" else [])
    if args.command == "fuzz":
        argv += ["--mflow-shards", str(args.shards), "--mflow-campaign", args.report]
        argv += ["--mflow-db", args.db] if args.db else []
        argv += ["--mflow-machine", args.machine] if args.machine else []
    if args.strict:
        argv.append("--mflow-strict")
    return int(pytest.main(argv + extra))


if __name__ == "__main__":
    sys.exit(main())
