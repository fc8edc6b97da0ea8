"""python -m mflow.reports list | retire [--dir DIR] [--dry-run] [--signature SIG ...]

list    every saved regression report with its status against the current
        engine: FAILING (the bug is still there), fixed, a guard (a case the
        references once disagreed on: "guard ok" or "guard: references disagree",
        never the engine's fault), or unreadable (a damaged report: named, skipped)
retire  move the fixed ones (or only those named by --signature) into DIR/archive,
        where the gate no longer replays them but the record is kept; guards are
        never retired; --dry-run says what would move

Exit status: 0 when nothing is FAILING or unreadable, 1 otherwise.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

from . import regressions


def status(folder, checker):
    """(state, report or None, detail) of one saved report."""
    from mflow.oracles.verdict import accuses_engine
    try:
        case, report = regressions.load(folder)
    except regressions.ReportError as e:
        return "unreadable", None, str(e)
    outcome = checker.judge(case).outcome
    if regressions.is_guard(report):
        if outcome is None or not accuses_engine(outcome):
            return ("guard ok" if outcome is None else "guard: references disagree"), report, ""
    if outcome is not None:
        return "FAILING", report, type(outcome).__name__
    return "fixed", report, ""


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mflow.reports",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["list", "retire"])
    ap.add_argument("--dir", default=os.environ.get("MFLOW_REPORTS_DIR",
                                                    str(regressions.DEFAULT_DIR)),
                    help="the reports folder (default reports/regressions, or MFLOW_REPORTS_DIR)")
    ap.add_argument("--dry-run", action="store_true", help="retire: only say what would move")
    ap.add_argument("--signature", nargs="*", default=None,
                    help="retire: only these reports (fixed ones among them)")
    args = ap.parse_args(argv)
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import MflowEngine
    checker = Checker(MflowEngine())
    folders = regressions.reports(args.dir)
    if not folders:
        print(f"no regression reports in {args.dir}")
    bad = 0
    for folder in folders:
        state, report, now = status(folder, checker)
        bad += state in ("FAILING", "unreadable")
        if report is None:
            print(f"{state:10s} {folder.name}  ({now})")
            continue
        seen = len(list((Path(folder) / "seen").glob("*")))
        print(f"{state:10s} {folder.name}  ({report['failure']}, {report.get('steps')} steps, "
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


if __name__ == "__main__":
    sys.exit(main())
