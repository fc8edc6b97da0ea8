"""The end of a fuzzing campaign: merge what every pytest worker's checker saw
and print graphs checked, operations covered, the largest disagreement per
oracle pair, and the failures found. Exits 1 when anything failed.

    python -m reports.summary DIR      (DIR holds stats-*.json and junit.xml)
"""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from mflow.ops import OPS


def merge(directory):
    total = {"checked": 0, "ops": {}, "worst": {}}
    for f in sorted(Path(directory).glob("stats-*.json")):
        s = json.loads(f.read_text())
        total["checked"] += s["checked"]
        for op, n in s["ops"].items():
            total["ops"][op] = total["ops"].get(op, 0) + n
        for pair, w in s["worst"].items():
            prev = total["worst"].get(pair, {"ratio": 0.0, "rel": 0.0})
            total["worst"][pair] = {k: max(prev[k], w[k]) for k in prev}
    return total


def failures(directory):
    junit = Path(directory, "junit.xml")
    if not junit.exists():
        return None
    found = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            found.append((case.get("name"), (bad.get("message") or "").splitlines()[0][:160]))
    return found


def main(directory):
    s = merge(directory)
    failed = failures(directory)
    print(f"\nfuzzing summary: {s['checked']} graphs checked")
    covered = sorted(s["ops"])
    missing = sorted(set(OPS) - set(covered))
    print(f"operations covered: {len(covered)} of {len(OPS)}"
          + (f" (never drawn: {', '.join(missing)})" if missing else ""))
    for op in covered:
        print(f"  {op:12s} in {s['ops'][op]} graphs")
    print("largest disagreement per oracle pair (|error| / tolerance; relative error):")
    for pair, w in sorted(s["worst"].items()):
        print(f"  {pair:18s} {w['ratio']:.3g} of the tolerance; relative {w['rel']:.3g}")
    if failed is None:
        print("failures: unknown (no junit.xml)")
        return 1
    print(f"failures found: {len(failed)}")
    for name, message in failed:
        print(f"  {name}: {message}")
    return 1 if failed or s["checked"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
