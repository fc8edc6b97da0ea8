"""The oracle comparison report of a campaign: a self-contained HTML page (its
pictures inlined) and a Markdown summary, from what the campaign recorded.

    python -m mflow.reports.comparison DIR [--out OUT]

DIR holds stats-*.json, failures.json and run.json (reports/campaign.py writes
them); the page goes to OUT/index.html and the summary to OUT/summary.md (OUT
defaults to DIR). The page shows, per operation and per oracle pair, how many
graphs were compared and how far the answers were apart (as distributions of
|error| / tolerance), the engine's derivative at every kink against torch's and
JAX's, and every failure with a drawing of its shrunk graph, the blamed step
highlighted, and links to its saved report.
"""

import argparse
import base64
import functools
import os
import sys
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from mflow.oracles.points import POINTS
from mflow.reports.stats import HIST_LO, HIST_STEP, hist_bin

from . import atomic_write, plots
from .files import entries
from .records import load, run_record

PAIRS = ("engine vs torch", "engine vs jax", "engine vs fd", "jax vs torch", "fd vs torch",
         # forward mode, where the engine offers it (oracles/modes.py)
         "engine jvp vs torch jvp", "engine jvp vs jax jvp", "engine jvp vs fd jvp",
         "engine jvp vs engine vjp", "jax jvp vs torch jvp", "fd jvp vs torch jvp",
         # second order, where the engine offers it (oracles/modes.py)
         "engine hvp vs torch hvp", "engine hvp vs jax hvp", "engine hvp vs fd of jax vjp",
         "engine hvp vs fd of engine vjp",
         "jax hvp vs torch hvp")
TEMPLATES = Path(__file__).resolve().parent / "templates"
OVER = hist_bin(1.0 + 1e-12)  # the first histogram bin above the tolerance


def _b64(png):
    return base64.b64encode(png).decode("ascii")


def _quantile_label(hist, q):
    """The upper edge of the bin holding the q-quantile of a histogram."""
    counts = np.cumsum(hist)
    if counts[-1] == 0:
        return "-"
    k = int(np.searchsorted(counts, q * counts[-1]))
    if k == 0:
        return "< 1e-12"
    if k == len(hist) - 1:
        return "> 1e4"
    return f"{10 ** (HIST_LO + k * HIST_STEP):.2g}"


def _operations(stats, pairs):
    rows = []
    for op in sorted(stats.ops):
        cells = []
        for pair in pairs:
            cell = stats.pairs.get(pair, {}).get(op)
            if cell is None:
                cells.append(None)
                continue
            cells.append({"graphs": sum(cell["hist"]), "p99": _quantile_label(cell["hist"], .99),
                          "worst": cell["ratio"], "shade": _shade(cell["ratio"]),
                          "rel": cell["rel"], "bad": cell["ratio"] > 1})
        over = [sum(c["hist"][OVER:]) / max(1, sum(c["hist"]))
                for p, c in ((p, stats.pairs.get(p, {}).get(op)) for p in pairs)
                if c is not None and p.startswith("engine")]
        rows.append({"op": op, "graphs": stats.ops[op], "skipped": stats.skipped.get(op, 0),
                     "unresolved": stats.unresolved.get(op, 0),
                     "warned": stats.warned.get(op, 0),
                     "failed": sum(by_op.get(op, 0) for by_op in stats.failed.values()),
                     "over": max(over, default=0.0), "cells": cells})
    return rows


def _shade(ratio):
    """The overview's colour of a largest |error| / tolerance: by decade up to 1, then bad."""
    return "bad" if ratio > 1 else "r2" if ratio > 0.1 else "r1" if ratio > 1e-3 else "r0"


def _failures(stats, failed, out):
    """The failures, one entry per saved report (drawn, with every test that
    found it), then failed tests that saved none."""
    from .regressions import ReportError
    from .regressions import load as load_report
    messages = {f["test"]: f["message"] for f in failed}
    by_report = {}
    for f in stats.failures:
        by_report.setdefault(f["report"], []).append(f)
    entries = []
    for folder, found in by_report.items():
        folder = Path(folder)
        tests = list(dict.fromkeys(f["test"] for f in found))
        message = next((messages[t] for t in tests if t in messages),
                       "(the run stopped before the test reported)")
        head, _, rest = message.partition("\nFalsifying example")
        guard = found[0]["kind"] == "ReferenceProblem"
        entry = {"kind": found[0]["kind"] + (" (the references disagree: not your engine)"
                                             if guard else ""), "guard": guard,
                 "tests": tests, "message": head,
                 "hypothesis": ("Falsifying example" + rest) if rest else "",
                 "report": os.path.relpath(folder, out), "name": folder.name}
        entries.append(entry)
        try:
            case, report = load_report(folder)
        except ReportError as e:
            entry["report_error"] = str(e)
            continue
        blame = report.get("blame")
        blamed = int(blame["value"][1:]) if isinstance(blame, dict) else None
        entry.update(
            blame=blame, comparisons=report["comparisons"], steps=report.get("steps"),
            before=report.get("size_before_reduction"),
            program=case.program.to_python(imports=False),
            drawing=_b64(plots.program_drawing(case.program, blamed)))
    reported = {t for e in entries for t in e["tests"]}
    unsaved = [f for f in failed if f["test"] not in reported]
    return entries, unsaved


def context(directory, out=None):
    """Everything the templates show, from the campaign recorded in `directory`, and
    only that: no engine or oracle runs while a report is built."""
    directory = Path(directory)
    out = Path(out or directory)
    problems = []
    stats, failed = load(directory, problems)
    run = run_record(directory, problems)  # each field of its type, or left out
    pairs = [p for p in PAIRS if p in stats.pairs] + sorted(set(stats.pairs) - set(PAIRS))
    kinks = run.get("kinks")
    # what the run recorded, and only that: a record never names code to import
    engine_name = str(run.get("engine_name") or run.get("engine") or "the engine") + (
        f" {run['engine_version']}" if isinstance(run.get("engine_version"), str)
        and run["engine_version"] else "")
    keys = {"op", "kink", "engine", "torch", "jax", "agrees"}
    kinks = [k for k in kinks if isinstance(k, dict) and keys <= set(k)] \
        if isinstance(kinks, list) else []
    failures, unsaved = _failures(stats, failed, out)
    return {
        "failures": failures, "unsaved": unsaved,
        "run": run, "stats": stats, "pairs": pairs, "engine": engine_name,
        "worst": stats.worst, "operations": _operations(stats, pairs),
        "plots": [{"pair": p, "png": _b64(plots.disagreement(p, stats.pairs[p]))}
                  for p in pairs],
        "kinks": kinks, "points": POINTS,
        "failed": failed,
        "hist_lo": HIST_LO,
        "problems": problems,
    }


@functools.cache
def _environment():
    """The templates, compiled once per process (a quarter of a second each)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["g"] = lambda x, digits=3: f"{x:.{digits}g}"
    return env


def write_report(directory, out=None):
    """Write OUT/index.html and OUT/summary.md (atomically); returns both paths."""
    out = Path(out or directory)
    out.mkdir(parents=True, exist_ok=True)
    env = _environment()
    data = context(directory, out)
    paths = []
    for template, name in (("report.html", "index.html"), ("summary.md", "summary.md")):
        path = out / name
        atomic_write(path, env.get_template(template).render(**data))
        paths.append(path)
    return tuple(paths)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mflow.reports.comparison", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="the campaign's folder (pytest --mflow-campaign DIR)")
    parser.add_argument("--out", help="where to write index.html and summary.md (default DIR)")
    args = parser.parse_args(argv)
    if not entries(args.directory, "stats-*.json"):
        print(f"{parser.prog}: error: {args.directory} holds no stats-*.json: run a campaign "
              "into it first (pytest --mflow-campaign DIR, python -m mflow fuzz, or tox -e "
              "fuzz)", file=sys.stderr)
        return 4  # a usage error, as the command's others
    for path in write_report(args.directory, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
