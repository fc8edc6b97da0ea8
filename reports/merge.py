"""Many machines' campaigns as one: their records merged into one folder, with one
summary and one comparison report, and their saved reports into one corpus,
deduplicated by signature (a report found on several machines is kept once, its
other finds counted in its `seen/`).

    python -m mflow merge OUT A/campaign B/campaign ... [--from A/regressions ...
                                                         --reports DIR]

Each machine wrote its own records (--mflow-campaign) and reports (--mflow-reports)
while sharing found examples through the example database (--mflow-db); nothing
here runs an engine. A machine that was killed mid-run left what it had flushed
(every 2 s): that much is counted, nothing of the others is lost."""

import json
import re
import shutil
from pathlib import Path

from . import atomic_write
from .regressions import _count, reports


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))[:60] or "machine"


def _read(path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # a machine stopped before writing it, or mid-write
        return default


def merge_campaigns(out, folders):
    """Copy every machine's stats files into OUT (named by machine), join their
    failed tests and run records; returns the machines' names, in order."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("stats-*.json"):  # OUT holds this merge alone
        old.unlink()
    names, failed, runs = [], [], []
    for k, folder in enumerate(map(Path, folders)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such campaign folder")
        run = _read(folder / "run.json", {})
        name = f"m{k}-{_safe(run.get('machine') or folder.resolve().parent.name)}"
        names.append(name)
        for stats in sorted(folder.glob("stats-*.json")):
            shutil.copyfile(stats, out / f"stats-{name}-{stats.name[len('stats-'):]}")
        failed += [{**f, "test": f"{name}: {f.get('test')}"}
                   for f in _read(folder / "failures.json", []) if isinstance(f, dict)]
        runs.append({**run, "machine": name, "folder": str(folder),
                     "finished": run.get("finished", "killed or still running")})
    first = next((r for r in runs if r.get("engine")), {})
    run = {k: first.get(k) for k in ("engine", "engine_name", "engine_version", "kinks",
                                     "versions")}
    run.update(machines=runs, command="merge of " + ", ".join(names),
               seconds=max((r.get("seconds", 0) for r in runs), default=0))
    atomic_write(out / "failures.json", json.dumps(failed))
    atomic_write(out / "run.json", json.dumps(run))
    return names


def merge_reports(into, folders):
    """Every saved report of `folders` into `into`, one per signature; returns
    (copied, already there)."""
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    copied = counted = 0
    for folder in folders:
        for report in reports(folder):
            target = into / report.name
            if target.exists():
                _count(target)  # found again, on another machine
                counted += 1
                continue
            shutil.copytree(report, target, symlinks=True)
            copied += 1
    return copied, counted


def main(out, campaigns, report_folders=(), into=None):
    from .comparison import write_report
    from .summary import load, summary_lines
    names = merge_campaigns(out, campaigns)
    stats, failed = load(out)
    print(f"merged {len(names)} machines into {out}: {', '.join(names)}")
    for line in summary_lines(stats, failed):
        print(line)
    if report_folders:
        copied, counted = merge_reports(into, report_folders)
        print(f"saved reports: {copied} copied into {into}, {counted} found there already "
              "(counted in their seen/)")
    for path in write_report(out):
        print(f"comparison report: {path}")
    return 1 if failed else 0
