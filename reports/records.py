"""A campaign's folder and its records: claiming the folder for a new run (never
deleting or replacing a file no campaign wrote), and reading what runs recorded
there (stats-*.json, failures.json, run.json) through the bounded reader, each
field checked, a damaged record named and left out. The campaign (campaign.py),
merge, the summary and the comparison report all read records through here;
nothing here runs an engine.
"""

import datetime
import os
from pathlib import Path

from . import files
from .stats import Stats

RECORDS = ("stats-*.json", "failures.json", "run.json", "index.html", "summary.md")
MARK = ".mflow-campaign"  # a folder a campaign or a merge wrote: its records are ours
PREVIOUS = "previous"


class NotACampaignFolder(files.ReportError):
    """A folder that holds files no campaign wrote: recording there could replace them."""


def claim(directory):
    """`directory` as a campaign's folder, ready for a new run: created if absent; refused
    (NotACampaignFolder) if it holds a record-named file but no campaign wrote it (no
    MARK: the user's own index.html stays where it is); the last run's records moved,
    never deleted, into previous/<when it started>/. Returns the folder."""
    directory = files.folder(directory)
    old = [name for pattern in RECORDS for name in files.entries(directory, pattern)]
    if old and not os.path.lexists(directory / MARK):
        raise NotACampaignFolder(
            f"{directory}: holds {', '.join(old[:3])}{', ...' if len(old) > 3 else ''}, "
            "which no campaign of mflow wrote; choose a new or empty folder")
    if old:
        _keep_previous(directory, old)
    try:  # an empty file: made even on a full disk, where the run goes on without records
        os.close(os.open(directory / MARK, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))
    except OSError:
        pass
    return directory


def _keep_previous(directory, names):
    """The last run's records move into previous/<when it started>/ (a new folder per
    run, so no record is ever replaced or deleted): a new run that dies at once loses
    nothing."""
    started = run_record(directory).get("started") or _iso(
        max(os.lstat(directory / n).st_mtime for n in names))
    stamp = "".join(c if c.isalnum() or c in "-+" else "-" for c in started)[:40]
    previous = files.folder(directory / PREVIOUS)
    target, k = previous / stamp, 1
    while os.path.lexists(target):
        k += 1
        target = previous / f"{stamp}.{k}"
    target.mkdir()
    for name in names:
        os.replace(directory / name, target / name)


def load(directory, problems=None):
    """(merged Stats, failed tests) of the campaign recorded in `directory`, read through
    the bounded reader: a damaged or hostile record (a FIFO, a link, a wrong JSON type,
    missing keys) is left out and named in `problems` (a list, if given), never raised."""
    directory = Path(directory)
    problems = [] if problems is None else problems
    stats = Stats()
    for name in files.entries(directory, "stats-*.json"):
        try:
            stats.merge(Stats.from_dict(files.read_json(directory / name,
                                                        limit=files.MAX_STATS_BYTES)))
        except (files.ReportError, ValueError) as e:
            problems.append(str(e) if str(e).startswith(str(directory)) else
                            f"{directory / name}: {e}")
    return stats, failures(directory, problems)


def failures(directory, problems=None):
    """The failed tests a campaign recorded (failures.json): dicts with a test and a
    message, as text; [] if none were recorded, or the record is damaged (named)."""
    path = Path(directory) / "failures.json"
    if not os.path.lexists(path):
        return []
    try:
        found = files.read_json(path, expect=list)
    except files.ReportError as e:
        if problems is not None:
            problems.append(str(e))
        return []
    return [{**{k: v for k, v in f.items() if isinstance(k, str)},
             "test": str(f.get("test")), "message": str(f.get("message", ""))}
            for f in found if isinstance(f, dict)]


RUN_FIELDS = {"engine": str, "engine_name": str, "engine_version": str, "machine": str,
              "started": str, "finished": str, "command": str, "seconds": (int, float),
              "interrupted": bool, "exitstatus": int, "kinks": list, "versions": dict,
              "machines": list, "folder": str}


def run_record(directory, problems=None):
    """The run.json of a campaign as a dict of the fields a report shows, each of its
    type (a field of another type is left out); {} if absent or damaged (named)."""
    path = Path(directory) / "run.json"
    if not os.path.lexists(path):
        return {}
    try:
        run = files.read_json(path)
    except files.ReportError as e:
        if problems is not None:
            problems.append(str(e))
        return {}
    return {k: v for k, v in run.items() if k in RUN_FIELDS and isinstance(v, RUN_FIELDS[k])
            and not (RUN_FIELDS[k] is int and isinstance(v, bool))}


def _iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")
