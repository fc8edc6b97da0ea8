"""Where a fuzz campaign's time goes: `pytest -n 2 --mflow-fuzz` (as `tox -e fuzz` runs
it, with a fixed budget) under py-spy, every process sampled, idle time included. Each
sample of a worker's main thread is put in one bin by its stack:

  check       SavingChecker.check (the engine, the references, the comparisons) and
              SavingChecker.prefetch (the references' work for the next graphs, ahead)
  draw        drawing a case: by Hypothesis (data.draw) or without it (draw_fast)
  hypothesis  the rest of Hypothesis's per-example and per-test machinery
  import      loading a module (torch and JAX are imported on first use, in a test)
  start-up    collection and the rest before the first test
  shut-down   after the last (pytest's and JAX's clean-up at exit)
  idle        a worker with nothing to do (waiting for an item, or exited early)
  other       pytest and xdist around the tests

A campaign at the check's own speed spends its two cores in check + draw (issue 24's
first target: at least 90 %). The figures go to benchmarks/results/campaign_profile.md
(never asserted on; read the shares).

    python benchmarks/campaign_profile.py [--examples 300] [--rate 50] [--tree DIR]
        [--raw FILE] [--out FILE]

Needs py-spy (`pip install py-spy`; not a dependency of the project).
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import ONE_THREAD  # beside this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "benchmarks" / "results" / "campaign_profile.md"
PROCESS = re.compile(r'process (\d+):"')
BINS = ("check", "draw", "hypothesis", "import", "start-up", "shut-down", "other", "idle")
SHUT_DOWN = ("pytest_unconfigure", "pytest_sessionfinish", "clean_up (", "_exitfunc (")


def classify(frames):
    """The bin of one worker main-thread stack (outermost frame first)."""
    text = ";".join(frames)
    if "_find_and_load (" in text:
        return "import"  # wherever it happens: a lazy import in a test is start-up too
    if "SavingChecker.check (" in text or "SavingChecker.prefetch (" in text:
        return "check"  # (prefetch: the references' work for the next graphs, done ahead)
    if "ConjectureData.draw (" in text or "DataObject.draw (" in text or "draw_fast (" in text:
        return "draw"
    if "pytest_runtestloop" not in text:
        return "shut-down" if any(k in text for k in SHUT_DOWN) else "start-up"
    if "hypothesis/" in text:
        return "hypothesis"
    if "pytest_runtest_protocol" not in text:
        return "idle"  # the worker loop, between items: waiting for the controller
    return "other"


def parse(raw):
    """{worker pid: Counter(bin -> samples)} from py-spy's raw output (--subprocesses
    --threads --idle): a worker is a process below the controller; only its main thread
    counts (xdist's I/O thread waits all along). A command line may hold ";", so the
    frames are what follows the last process's `";thread (`."""
    workers = collections.defaultdict(collections.Counter)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        procs = PROCESS.findall(stack)
        if len(procs) < 2:
            continue  # the controller
        rest = stack[stack.rfind(f'process {procs[-1]}:"'):]
        at = rest.find('";thread (')
        frames = rest[at + 2:].split(";") if at >= 0 else []
        if not frames or not frames[0].endswith("MainThread"):
            continue
        workers[procs[-1]][classify(frames[1:])] += int(count)
    return dict(workers)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=300, help="per fuzz item")
    ap.add_argument("--rate", type=int, default=50, help="samples per second")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--raw", type=Path, help="keep py-spy's samples in this file")
    ap.add_argument("--tree", type=Path, default=ROOT, help="the checkout to run (default "
                    "this one; another, e.g. a git worktree of an earlier commit, through "
                    "PYTHONPATH)")
    args = ap.parse_args()
    spy = Path(sys.executable).with_name("py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        folder, raw = Path(tmp) / "campaign", Path(tmp) / "raw.txt"
        times = Path(tmp) / "items.jsonl"
        env = dict(os.environ, **ONE_THREAD, MFLOW_PROFILE="fuzz", MFLOW_STRICT="0",
                   MFLOW_FUZZ_EXAMPLES=str(args.examples), MFLOW_ITEM_TIMES=str(times),
                   PYTHONPATH=os.pathsep.join([str(args.tree), str(HERE)]))
        t = time.time()
        run = subprocess.run([str(spy), "record", "--subprocesses", "--idle", "--threads",
                        "--nonblocking", "--format", "raw", "--rate", str(args.rate),
                        "-o", str(raw), "--", sys.executable, "-m", "pytest", "-q",
                        "-p", "no:cacheprovider", "-p", "item_times", "-n", "2",
                        "--dist", "worksteal",
                        "--mflow-fuzz", "--mflow-shards", "8", "--durations", "0",
                        "--mflow-campaign", str(folder)], cwd=args.tree, env=env, check=False,
                       capture_output=True, text=True)
        wall = time.time() - t
        workers = parse(raw.read_text())
        if args.raw:
            args.raw.write_text(raw.read_text())
        checked = sum(json.loads(p.read_text()).get("checked", 0)
                      for p in folder.glob("stats-*.json"))
        seconds = json.loads((folder / "run.json").read_text())["seconds"]
        spans = timeline(times.read_text() if times.exists() else "")
    write(args, workers, checked, seconds, wall, durations(run.stdout), spans)


def durations(out):
    """[(seconds, test item)] from pytest's --durations report, longest first."""
    found = [(float(m[1]), m[2]) for m in re.finditer(r"^([\d.]+)s call +(\S+)$", out, re.M)]
    return sorted(found, reverse=True)


def timeline(text):
    """{worker: (first item's start, last item's stop)} from item_times.py's lines."""
    spans = {}
    for line in text.splitlines():
        worker, _, start, stop = json.loads(line)
        first, last = spans.get(worker, (start, stop))
        spans[worker] = (min(first, start or stop), max(last, stop))
    return spans


def write(args, workers, checked, seconds, wall, items, spans):
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.tree,
                         capture_output=True, text=True).stdout.strip()
    total = collections.Counter()
    for bins in workers.values():
        total.update(bins)
    sampled = sum(total.values())  # py-spy under load misses some: shares, not seconds
    lines = ["# Where a fuzz campaign's time goes", "",
             f"`benchmarks/campaign_profile.py --examples {args.examples} --rate {args.rate}` "
             f"on {time.strftime('%Y-%m-%d %H:%M')}, tree {rev}: `pytest -n 2 --dist worksteal "
             f"--mflow-fuzz --mflow-shards 8`, profile fuzz, {args.examples} examples per item, "
             f"under py-spy (every process, idle included). {checked:,} graphs in {seconds:.0f} s "
             f"(the campaign's own clock; {wall:.0f} s with py-spy's start): "
             f"**{checked / seconds:.1f} graphs/s**.", "",
             "| where | share of the workers' sampled time | seconds sampled (both) |",
             "|---|---|---|"]
    for b in BINS:
        lines.append(f"| {b} | {total[b] / sampled:.1%} | {total[b] / args.rate:.0f} |")
    useful = (total["check"] + total["draw"]) / sampled
    lines += ["", f"In the check or drawing its case: **{useful:.1%}** of the workers' time.",
              "", "Per worker (samples by bin):", ""]
    for pid, bins in sorted(workers.items()):
        lines.append(f"- {pid}: " + ", ".join(f"{b} {bins[b] / args.rate:.0f} s" for b in BINS
                                               if bins[b]))
    if len(spans) > 1:  # the controller logs every item too: the workers' own spans
        spans.pop("main", None)
    if spans:
        first = min(a for a, _ in spans.values())
        end = max(b for _, b in spans.values())
        lines += ["", "When each worker ran items (seconds from the first item's start; "
                  f"the last item ended at {end - first:.0f} s, of the campaign's "
                  f"{seconds:.0f}):", ""]
        for worker, (a, b) in sorted(spans.items()):
            lines.append(f"- {worker}: {a - first:.0f} s to {b - first:.0f} s (alone at the "
                         f"end for {end - b:.0f} s)" if end > b else
                         f"- {worker}: {a - first:.0f} s to {b - first:.0f} s")
    total_items = sum(t for t, _ in items)
    lines += ["", f"Test items: {len(items)}, {total_items:.0f} s in all; the longest (a worker "
              "that takes one of these last runs alone while the other has nothing left):", ""]
    lines += [f"- {t:.1f} s {name.split('::')[-1]}" for t, name in items[:12]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
