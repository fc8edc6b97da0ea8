"""The suite's command, for those who don't write pytest (python -m mflow, or mflow-suite).

  fuzz     a campaign on an engine: pytest --mflow-fuzz with the fuzz profile, progress,
           and at the end the summary and the comparison report in --report DIR
  gate     replay every saved report (--reports DIR) against the engine
  report   the comparison report again, from a campaign's folder
  list     every saved regression report with its status
  retire   move the fixed reports into DIR/archive (the gate no longer replays them)
  merge    many machines' campaigns as one summary, report and corpus

`python -m mflow COMMAND --help` tells each command's options. Which engine runs is
chosen on the command line only (--engine, or MFLOW_ENGINE): a report names the
engine it was made on for display, and `list` and `retire` replay another engine's
report only when that engine is allowed (--allow-engine SPEC, MFLOW_ALLOWED_ENGINES).

Exit status (fuzz and gate are pytest runs, and say so as pytest does): 0 all
passed; 1 an engine failure was found (fuzz), is still there (gate), or a report
is FAILING, unreadable or its engine does not load (list, retire), or a merged
campaign recorded a failure (merge); 2 interrupted (Ctrl-C); 4 usage error (an
unknown option or command, an engine that does not load, --examples or --shards
below 1, a --reports that is not a folder or whose archive/ is a link, a missing
folder), one line; 5 nothing to run; 6 with --strict, no engine failure but the
references disagreed on a case.
"""

import argparse
import os
import sys
from pathlib import Path

from . import files, regressions

USAGE_ERROR = 4


class Parser(argparse.ArgumentParser):
    """argparse, with the documented usage-error status (argparse's own 2 is the
    status of an interrupted run here)."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """A usage error found after parsing: one line, status 4."""


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: give 1 or more")
    return n


def parser():
    env = os.environ.get
    ap = Parser(prog="python -m mflow", description=__doc__.split("\n\n")[0],
                epilog=__doc__.split("\n\n", 2)[2],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    def command(name, summary):
        return commands.add_parser(name, help=summary, description=summary)

    def engine(p, default_help):
        p.add_argument("--engine", default=env("MFLOW_ENGINE"), metavar="SPEC",
                       help=f"the engine under test, module[:attribute] of an adapter "
                            f"({default_help}; or MFLOW_ENGINE)")

    def corpus(p):
        p.add_argument("--reports", "--dir", dest="dir", metavar="DIR",
                       default=env("MFLOW_REPORTS_DIR", "reports/regressions"),
                       help="the saved reports' folder (default reports/regressions, or "
                            "MFLOW_REPORTS_DIR)")

    for name, summary in (("fuzz", "a fuzzing campaign on the engine, with progress, its "
                                   "summary and comparison report; other options go to pytest"),
                          ("gate", "replay every saved report against the engine; other "
                                   "options go to pytest")):
        p = command(name, summary)
        engine(p, "default mflow")
        corpus(p)
        p.add_argument("--jobs", default="auto", help="processes (pytest-xdist -n; 1: none)")
        p.add_argument("--strict", action="store_true",
                       help="exit status 6 when the references disagreed on a case")
        if name == "fuzz":
            p.add_argument("--examples", type=_positive, default=1000,
                           help="examples per test item (default 1000)")
            p.add_argument("--report", default="reports/latest", metavar="DIR",
                           help="the campaign's folder: records, summary, comparison report")
            p.add_argument("--shards", type=_positive, default=8,
                           help="items the random graphs are split into (default 8)")
            p.add_argument("--db", default=None, metavar="URL",
                           help="the example database shared by the machines of a campaign, "
                                "redis://host:port/n (or MFLOW_DB)")
            p.add_argument("--machine", default=None,
                           help="this machine's name in records and reports (or "
                                "MFLOW_MACHINE; default the host name)")
    p = command("report", "the comparison report again, from a campaign's folder")
    p.add_argument("directory", nargs="?", default="reports/latest",
                   help="the campaign's folder (default reports/latest)")
    for name, summary in (("list", "every saved report and its status: FAILING, fixed, "
                                   "guard ok, unreadable, ..."),
                          ("retire", "move the fixed reports into DIR/archive, where the gate "
                                     "no longer replays them; guards are never retired")):
        p = command(name, summary)
        engine(p, "default: each report on its own engine if allowed; named: only that "
                  "engine's reports")
        corpus(p)
        p.add_argument("--allow-engine", action="append", metavar="SPEC",
                       default=[s for s in env("MFLOW_ALLOWED_ENGINES", "").split(",") if s],
                       help="an engine other than mflow that may be imported to replay the "
                            "reports made on it (repeatable; or MFLOW_ALLOWED_ENGINES=a,b)")
        if name == "retire":
            p.add_argument("--dry-run", action="store_true", help="only say what would move")
            p.add_argument("--signature", nargs="+", default=None,
                           help="only these reports (the fixed ones among them)")
    p = command("merge", "many machines' campaigns as one: OUT, then each machine's "
                         "campaign folder")
    p.add_argument("out", metavar="OUT", help="the merged folder")
    p.add_argument("campaigns", nargs="+", metavar="CAMPAIGN", help="each machine's folder")
    p.add_argument("--from", dest="sources", nargs="+", default=(), metavar="DIR",
                   help="the machines' saved-report folders, merged into --reports")
    corpus(p)
    return ap


def main(argv=None):
    ap = parser()
    args, extra = ap.parse_known_args(argv)
    if extra and args.command not in ("fuzz", "gate"):
        ap.error(f"unrecognised arguments: {' '.join(extra)}")
    try:
        if args.command in ("fuzz", "gate"):
            return _pytest(args, extra)
        if args.command == "report":
            from .comparison import main as report_main
            return report_main([args.directory])
        if args.command == "merge":
            from .merge import MissingFolder
            from .merge import main as merge_main
            from .records import NotACampaignFolder
            try:
                return merge_main(args.out, args.campaigns, args.sources, args.dir)
            except (MissingFolder, NotACampaignFolder, files.UnsafeFolder) as e:
                raise UsageError(str(e)) from None
        return _list(args)
    except UsageError as e:
        print(f"{ap.prog} {args.command}: error: {e}", file=sys.stderr)
        return USAGE_ERROR


def _corpus(path):
    """The saved reports' folder as given: absent (nothing saved yet) or a folder."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UsageError(f"--reports {path}: not a folder")
    return Path(path)


def _engine(spec):
    from mflow.oracles.engine import EngineError, load_engine
    try:
        return load_engine(spec)
    except EngineError as e:
        raise UsageError(str(e)) from None


def status(folder, checker_for, engine=None, allowed=()):
    """(state, report or None, detail) of one saved report. Replayed on the engine named
    on the command line (`engine`; another engine's report: "other engine", not replayed),
    else on the engine it was made on, if that is mflow or `allowed` ("not allowed"
    otherwise: a report never chooses what is imported). `checker_for(spec)`: a Checker,
    or an EngineError."""
    from mflow.oracles.engine import EngineError
    from mflow.oracles.verdict import accuses_engine

    from .sequence import replayed
    try:
        case, report = regressions.load(folder)
    except regressions.NotHere as e:
        if engine is None:  # an operation of an adapter's own: that adapter must be named
            return "not here", None, (e.op, e.engine)
        return "unreadable", None, str(e)
    except regressions.ReportError as e:
        return "unreadable", None, str(e)
    recorded = regressions.recorded_engine(report)
    if engine is not None:
        if recorded is not None and not regressions.same_engine(recorded, engine):
            return "other engine", report, recorded
        spec = engine
    else:
        spec = recorded or "mflow"
        if not any(regressions.same_engine(spec, a) for a in ("mflow", *allowed)):
            return "not allowed", report, spec
    try:
        checker = checker_for(spec)
    except EngineError as e:
        return "no engine", report, str(e)
    outcome = replayed(checker, folder, case, report)
    if regressions.is_guard(report):
        if outcome is None or not accuses_engine(outcome):
            return ("guard ok" if outcome is None else "guard: references disagree"), report, ""
    if outcome is not None:
        return "FAILING", report, type(outcome).__name__
    return "fixed", report, ""


def _list(args):
    """list and retire."""
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import EngineError, load_engine

    from .summary import printable
    directory = _corpus(args.dir)
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
        checkers[args.engine] = Checker(_engine(args.engine))
    archive = None
    if args.command == "retire" and not args.dry_run and os.path.lexists(directory):
        try:
            archive = files.folder(directory / regressions.ARCHIVE)
        except files.ReportError as e:
            raise UsageError(str(e)) from None
    folders = regressions.reports(directory)
    if not folders:
        print(f"no regression reports in {directory}")
    for stray in regressions.strays(directory):
        what = "a link" if stray.is_symlink() else "not a folder"
        print(printable(f"not a report {stray.name}  ({what}: left alone)"))
    bad = 0
    for folder in folders:
        state, report, now = status(folder, checker_for, args.engine, args.allow_engine)
        bad += state in ("FAILING", "unreadable", "no engine")
        if state == "other engine":
            print(printable(f"{state:10s} {folder.name}  (made on {now}: not replayed here)"))
            continue
        if state == "not here":
            op, made_on = now
            name = f"--engine {made_on}" if made_on else "--engine with the adapter that has it"
            print(printable(f"{'not run':10s} {folder.name}  (its operation {op!r} is one of "
                            f"an adapter's own, known when that adapter is named: {name})"))
            continue
        if state == "not allowed":
            print(printable(f"{'not run':10s} {folder.name}  (made on {now}, which is not "
                            f"imported unless named: --engine {now}, or --allow-engine {now})"))
            continue
        if report is None:
            print(printable(f"{state:10s} {folder.name}  ({now})"))
            continue
        seen = files.count(Path(folder) / "seen")
        on = regressions.recorded_engine(report) or args.engine or "mflow"
        size = (f"a session of {report['session'].get('calls')} calls"
                if report.get("session") else f"{report.get('steps')} steps")
        print(printable(f"{state:10s} {folder.name}  ({report['failure']} on {on}, "
                        f"{size}, found {1 + seen}x, saved "
                        f"{report.get('date', '?')}){' now ' + now if now else ''}"))
        chosen = getattr(args, "signature", None) is None or folder.name in args.signature
        if args.command == "retire" and state == "fixed" and chosen:
            if args.dry_run:
                print(f"           would retire to {directory / regressions.ARCHIVE / folder.name}")
                continue
            target = _free(archive / folder.name)
            os.rename(folder, target)  # within one folder: atomic, never through a link
            print(f"           retired to {target}")
    return 1 if bad else 0


def _free(path):
    """`path`, or path.2, path.3, ... where a report of that name was retired before."""
    k, free = 1, path
    while os.path.lexists(free):
        k += 1
        free = path.with_name(f"{path.name}.{k}")
    return free


def _pytest(args, extra):
    """fuzz and gate: the plugin's tests, in this process; pytest's exit status."""
    import pytest
    _corpus(args.dir)
    _engine(args.engine)  # a mistyped engine: one line and status 4, before pytest starts
    os.environ.setdefault("MFLOW_PROFILE", "fuzz" if args.command == "fuzz" else "ci")
    argv = [f"--mflow-{args.command}", "--mflow-engine", args.engine or "mflow",
            "--mflow-reports", args.dir]
    if args.jobs not in ("0", "1"):
        argv += ["-n", args.jobs] + (["--dist", "worksteal"] if args.command == "fuzz" else [])
    if args.command == "fuzz":
        os.environ["MFLOW_FUZZ_EXAMPLES"] = str(args.examples)
        argv += ["--mflow-shards", str(args.shards), "--mflow-campaign", args.report]
        argv += ["--mflow-db", args.db] if args.db else []
        argv += ["--mflow-machine", args.machine] if args.machine else []
    if args.strict:
        argv.append("--mflow-strict")
    return int(pytest.main(argv + extra))


if __name__ == "__main__":
    sys.exit(main())
