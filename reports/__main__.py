"""python -m mflow.reports list | retire [--dir DIR]

list    every saved regression report with its status against the current
        engine: FAILING (the bug is still there) or fixed
retire  move the fixed ones into DIR/archive, where the gate no longer replays
        them but the record is kept
"""

import argparse
import shutil
import sys
from pathlib import Path

from . import regressions


def status(folder, checker):
    from mflow.oracles.verdict import Failure
    case, report = regressions.load(folder)
    try:
        checker.check(case)
    except Failure as e:
        return "FAILING", report, type(e).__name__
    return "fixed", report, ""


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mflow.reports",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["list", "retire"])
    ap.add_argument("--dir", default=str(regressions.DEFAULT_DIR))
    args = ap.parse_args(argv)
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import MflowEngine
    checker = Checker(MflowEngine())
    folders = regressions.reports(args.dir)
    if not folders:
        print(f"no regression reports in {args.dir}")
    failing = 0
    for folder in folders:
        state, report, now = status(folder, checker)
        seen = len(list((Path(folder) / "seen").glob("*")))
        failing += state == "FAILING"
        print(f"{state:8s} {folder.name}  ({report['failure']}, {report.get('steps')} steps, "
              f"found {1 + seen}x, saved {report.get('date', '?')}){' now ' + now if now else ''}")
        if args.command == "retire" and state == "fixed":
            archive = Path(args.dir) / regressions.ARCHIVE
            archive.mkdir(exist_ok=True)
            shutil.move(str(folder), str(archive / folder.name))
            print(f"         retired to {archive / folder.name}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
