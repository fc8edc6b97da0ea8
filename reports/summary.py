"""The text summary of a campaign: graphs checked, operations covered, the
largest disagreement per oracle pair, the failures found. The campaign plugin
prints it at the end of a run; to print it again from what a run left behind:

    python -m mflow.reports.summary DIR      (exit 1 when the run found failures)
"""

import sys

from mflow.oracles.catalogue import CATALOGUE
from mflow.oracles.points import POINT_WORDS, POINTS

from .records import load, run_record

MODE_NAMES = {"vjp": "reverse mode (VJP)", "jvp": "forward mode (JVP)", "hvp": "second order (HVP)"}


def printable(text):
    """Text from a record, safe to print: control characters escaped (a message can
    come from any engine, and a terminal obeys escape sequences)."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def summary_lines(stats, failed, interrupted=False, engine=None):
    lines = ["", f"fuzzing summary: {stats.checked:,} graphs checked"
             + (f" on {printable(engine)}" if engine else "")
             + (" (stopped early: interrupted)" if interrupted else "")]
    covered = sorted(stats.ops)
    missing = sorted(set(CATALOGUE) - set(covered))
    lines.append(f"operations covered: {len(covered)} of {len(CATALOGUE)}"
                 + (f" (never drawn: {', '.join(missing)})" if missing else ""))
    if stats.modes:
        lines.append("checked: " + ", ".join(
            f"{MODE_NAMES.get(m, m)} on "
            f"{n:,} graphs" for m, n in sorted(stats.modes.items(), key=lambda kv: kv[0] != "vjp")))
    if len(stats.dtypes) > 1 or set(stats.dtypes) - {"float64"}:
        lines.append("dtypes: " + ", ".join(f"{d} {n:,}" for d, n in sorted(stats.dtypes.items())))
    lines.append("largest disagreement per oracle pair (|error| / tolerance; relative error):")
    lines += [f"  {pair:18s} {w['ratio']:.3g} of the tolerance; relative {w['rel']:.3g}"
              for pair, w in sorted(stats.worst.items())]
    if stats.outcomes:
        lines.append("outcomes: " + ", ".join(f"{kind} {n:,}" for kind, n in
                                              sorted(stats.outcomes.items())))
    for what, counts in (("at a kink", stats.skipped), ("unresolved (near a pole)",
                                                        stats.unresolved)):
        if counts:
            lines.append(f"finite-difference probes left out {what}: "
                         + ", ".join(f"{op} {n:,}" for op, n in sorted(counts.items())))
    if stats.points:
        lines.append("interesting points met, graphs per operation (" + ", ".join(
            f"{p}: {POINT_WORDS[p]}" for p in POINTS) + "):")
        lines += [f"  {op:13s} " + ", ".join(f"{p} {met[p]:,}" for p in POINTS if p in met)
                  for op, met in sorted(stats.points.items())]
    for pair, by_op in sorted(stats.failed.items()):
        lines.append(f"failed comparisons {pair}, graphs per operation: "
                     + ", ".join(f"{op} {n:,}" for op, n in sorted(by_op.items())))
    guards = [f for f in stats.failures if f["kind"] == "ReferenceProblem"]
    if guards or stats.outcomes.get("ReferenceProblem"):
        lines.append(f"the references disagree (not your engine): "
                     f"{stats.outcomes.get('ReferenceProblem', len(guards)):,} case(s); saved as "
                     f"guards: {', '.join(f['report'] for f in guards) or 'none'}")
    if stats.slow_once:
        lines.append(f"over the time limit once, within it when checked again (a compile or a "
                     f"cache warming, not a hang): {stats.slow_once:,} graph(s)")
    if stats.warned:
        lines.append("numerically unsafe (the engine warned of overflow or an invalid value, "
                     "its answers right; --mflow-fail-on-warnings makes it a failure): graphs "
                     "per operation: " + ", ".join(f"{op} {n:,}"
                                                   for op, n in sorted(stats.warned.items())))
    if stats.warnings:
        lines.append("what the engine warned (graphs):")
        lines += [printable(f"  {n:,} x {w}") for w, n in
                  sorted(stats.warnings.items(), key=lambda kv: -kv[1])[:5]]
    lines.append(f"failures found: {len(failed)}")
    saved = {f["test"]: f["report"] for f in stats.failures}
    for f in failed:
        first = (f["message"].splitlines() or [""])[0]
        lines.append(printable(f"  {f['test']}: {first[:160]}"))
        if f["test"] in saved:
            lines.append(printable(f"    saved as {saved[f['test']]}"))
    return lines


def main(directory):
    problems = []
    stats, failed = load(directory, problems)
    run = run_record(directory, problems)
    engine = " ".join(str(run[k]) for k in ("engine_name", "engine_version") if run.get(k))
    print("\n".join(summary_lines(stats, failed, engine=engine or None)))
    for problem in problems:
        print(printable(f"left out, damaged: {problem}"))
    return 1 if failed or stats.checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
