"""Many machines' campaigns as one: their records merged into one folder, with one
summary and one comparison report, and their saved reports into one corpus,
deduplicated by signature (a report found on several machines is kept once, its
other finds counted in its `seen/`).

    python -m mflow merge OUT A/campaign B/campaign ... [--from A/regressions ...
                                                         --reports DIR]

Each machine wrote its own records (--mflow-campaign) and reports (--mflow-reports)
while sharing found examples through the example database (--mflow-db); nothing
here runs an engine. A machine that was killed mid-run left what it had flushed
(every 2 s): that much is counted, nothing of the others is lost. Every file is
read through the bounded reader (files.py): a damaged record is named and left
out, the rest merged; OUT is a campaign folder as a run's is (records.claim), so a
merge never deletes or overwrites a file it did not write.
"""

import json
import re
import shutil
from pathlib import Path

from . import files
from .records import claim, failures, run_record
from .regressions import _count, reports
from .summary import printable


class MissingFolder(files.ReportError):
    """A folder named on the command line that does not exist (a usage error)."""


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))[:60] or "machine"


def merge_campaigns(out, folders, problems=None):
    """Every machine's stats into OUT (named by machine), their failed tests and run
    records joined; returns the machines' names, in order. Damaged records are named
    in `problems` and left out."""
    from .stats import Stats
    problems = [] if problems is None else problems
    for folder in map(Path, folders):
        if not files.is_folder(folder):
            raise MissingFolder(f"{folder}: no such campaign folder")
    out = claim(out)
    names, failed, runs = [], [], []
    for k, folder in enumerate(map(Path, folders)):
        run = run_record(folder, problems)
        name = f"m{k}-{_safe(run.get('machine') or folder.resolve().parent.name)}"
        names.append(name)
        for stats in files.entries(folder, "stats-*.json"):
            try:  # read whole and checked, then written anew: never a copy of a link or a FIFO
                record = Stats.from_dict(files.read_json(folder / stats,
                                                         limit=files.MAX_STATS_BYTES))
            except (files.ReportError, ValueError) as e:
                problems.append(str(e) if str(e).startswith(str(folder)) else
                                f"{folder / stats}: {e}")
                continue
            files.atomic_write(out / f"stats-{name}-{stats[len('stats-'):]}",
                               json.dumps(record.to_dict()))
        failed += [{**f, "test": f"{name}: {f['test']}"} for f in failures(folder, problems)]
        runs.append({**run, "machine": name, "folder": str(folder),
                     "finished": run.get("finished", "killed or still running")})
    first = next((r for r in runs if r.get("engine")), {})
    run = {k: first.get(k) for k in ("engine", "engine_name", "engine_version", "kinks",
                                     "versions")}
    run.update(machines=runs, command="merge of " + ", ".join(names),
               seconds=max((r.get("seconds", 0) for r in runs), default=0))
    files.atomic_write(out / "failures.json", json.dumps(failed))
    files.atomic_write(out / "run.json", json.dumps(run))
    return names


def merge_reports(into, folders, problems=None):
    """Every saved report of `folders` into `into`, one per signature; returns
    (copied, already there). A report that does not load is named and not copied."""
    from .regressions import load
    problems = [] if problems is None else problems
    for folder in map(Path, folders):
        if not files.is_folder(folder):
            raise MissingFolder(f"--from {folder}: no such folder of saved reports")
    into = files.folder(into)
    copied = counted = 0
    for folder in folders:
        for report in reports(folder):
            try:
                load(report)  # whole and valid, through the bounded reader
            except files.ReportError as e:
                problems.append(str(e))
                continue
            target = into / report.name
            if files.is_folder(target):
                _count(target)  # found again, on another machine
                counted += 1
                continue
            _copy_report(report, target)
            copied += 1
    return copied, counted


def _copy_report(source, target):
    """A report folder copied file by file through the bounded reader (its regular
    files only, links and FIFOs left behind), into a temporary folder renamed into
    place: whole or not at all."""
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in files.entries(source):
            path = source / name
            if name == "seen":
                files.folder(tmp / "seen")
                continue
            try:
                data = files.read_bytes(path, 64 << 20)
            except files.ReportError:
                continue  # not a regular file, or absurdly large: not part of a report
            (tmp / name).write_bytes(data)
        files.folder(tmp / "seen")
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(out, campaigns, report_folders=(), into=None):
    from .comparison import write_report
    from .records import load
    from .summary import summary_lines
    problems = []
    names = merge_campaigns(out, campaigns, problems)  # MissingFolder: the command's usage error
    copied = counted = None
    if report_folders:
        copied, counted = merge_reports(into, report_folders, problems)
    stats, failed = load(out)
    print(f"merged {len(names)} machines into {out}: {', '.join(names)}")
    for line in summary_lines(stats, failed):
        print(line)
    if copied is not None:
        print(f"saved reports: {copied} copied into {into}, {counted} found there already "
              "(counted in their seen/)")
    for problem in problems:
        print(printable(f"left out, damaged: {problem}"))
    for path in write_report(out):
        print(f"comparison report: {path}")
    return 1 if failed else 0
