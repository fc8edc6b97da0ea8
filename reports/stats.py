"""A campaign's statistics: what the checks saw, as plain JSON that merges
across workers (and machines) by adding counts."""

import numpy as np
from mflow.oracles.points import points
from mflow.oracles.verdict import ORACLES

# Disagreement histograms: log10(|error| / tolerance) in bins of a quarter decade
# from 1e-12 to 1e4, one more bin each side (below, exact agreement included; above).
# Fixed bins merge across workers by adding counts and stay small in any campaign.
HIST_LO, HIST_HI, HIST_STEP = -12.0, 4.0, 0.25
HIST_BINS = int(round((HIST_HI - HIST_LO) / HIST_STEP)) + 2
MAX_WARNINGS = 20  # distinct warning texts kept (an engine may word each one differently)


def _count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _cell(cell):
    return (isinstance(cell, dict) and isinstance(cell.get("hist"), list)
            and len(cell["hist"]) == HIST_BINS and all(_count(n) for n in cell["hist"])
            and all(isinstance(cell.get(k), (int, float)) and not isinstance(cell.get(k), bool)
                    for k in ("ratio", "rel")))


def hist_bin(ratio):
    """The histogram bin of one |error| / tolerance."""
    if not ratio > 0:
        return 0
    if not np.isfinite(ratio):
        return HIST_BINS - 1
    k = int(np.floor((np.log10(ratio) - HIST_LO) / HIST_STEP)) + 1
    return min(max(k, 0), HIST_BINS - 1)


OUTSIDE = "outside the dtype's range"  # an outcome: not compared (oracles/checker.py)


class Stats:
    """What a checker saw, for run summaries and comparison reports: graphs
    checked per operation and per oracle, and per oracle pair and operation the
    distribution of each graph's largest |error| / tolerance (a graph counts for
    every operation it contains), the largest relative error, the graphs that
    failed, finite-difference probes left out at kinks or unresolved (near a
    pole); the interesting points each operation met (oracles/points.py); and every
    case's outcome, failed or not. Plain JSON; `merge` adds two together."""

    def __init__(self):
        self.checked = 0
        self.ops = {}        # op -> graphs containing it
        self.oracles = {}    # oracle -> graphs it judged
        self.pairs = {}      # "engine vs torch" -> op -> {"hist": [...], "ratio": max, "rel": max}
        self.skipped = {}    # op -> finite-difference probes left out at a kink
        self.unresolved = {}  # op -> finite-difference probes left out: no convergence
        self.outcomes = {}   # "passed" or the failure kind -> cases
        self.failed = {}     # "engine vs torch" -> op -> graphs whose comparison failed
        self.failures = []   # {"test", "kind", "report"} per saved failure
        self.modes = {}      # "vjp", "jvp", "hvp" -> graphs checked in that mode
        self.slow_once = 0   # graphs over the time limit on the first run, not on the second
        self.warned = {}     # op -> graphs on which the engine warned (numerically unsafe)
        self.warnings = {}   # what it warned ("RuntimeWarning: overflow ...") -> graphs
        self.points = {}     # op -> interesting point ("zero", "tie", ...) -> graphs
        self.dtypes = {}     # "float64", ..., "bfloat16" -> graphs

    def add(self, verdict):
        self.checked += 1
        ops = sorted(set(verdict.case.program.ops()))
        kind = "passed" if verdict.outcome is None else type(verdict.outcome).__name__
        if getattr(verdict, "outside", ""):  # a half case beyond its dtype's range
            kind = OUTSIDE
        self.outcomes[kind] = self.outcomes.get(kind, 0) + 1
        dtype = verdict.case.program.dtype
        self.dtypes[dtype] = self.dtypes.get(dtype, 0) + 1
        for op in ops:
            self.ops[op] = self.ops.get(op, 0) + 1
            if verdict.skipped_probes:
                self.skipped[op] = self.skipped.get(op, 0) + verdict.skipped_probes
            if verdict.unresolved_probes:
                self.unresolved[op] = self.unresolved.get(op, 0) + verdict.unresolved_probes
        self.slow_once += bool(getattr(verdict, "slow_once", False))
        for mode in getattr(verdict, "modes", ("vjp",)):
            self.modes[mode] = self.modes.get(mode, 0) + 1
        if verdict.numeric_warnings:  # numerically unsafe: per operation
            for op in ops:
                self.warned[op] = self.warned.get(op, 0) + 1
        if verdict.warnings:  # every text, its other messages too
            for w in sorted(set(verdict.warnings)):
                w = w[:200]
                if w in self.warnings or len(self.warnings) < MAX_WARNINGS:
                    self.warnings[w] = self.warnings.get(w, 0) + 1
        for op, met in points(verdict.case, getattr(verdict, "values", None)).items():
            by_point = self.points.setdefault(op, {})
            for point in met:
                by_point[point] = by_point.get(point, 0) + 1
        for key in sorted({f"{c.pair[0]} vs {c.pair[1]}" for c in verdict.failures}):
            for op in ops:
                by_op = self.failed.setdefault(key, {})
                by_op[op] = by_op.get(op, 0) + 1
        for who in ORACLES:
            if who in verdict.results or (who == "fd" and verdict.probes):
                self.oracles[who] = self.oracles.get(who, 0) + 1
        per_pair = {}
        for c in verdict.comparisons:
            key = f"{c.pair[0]} vs {c.pair[1]}"
            ratio = c.ratio
            rel = c.rel_err if np.isfinite(c.rel_err) else 0.0  # relative to a zero: no figure
            prev = per_pair.get(key, (0.0, 0.0))
            per_pair[key] = (max(prev[0], float(ratio)), max(prev[1], float(rel)))
        for key, (ratio, rel) in per_pair.items():
            for op in ops:
                cell = self.pairs.setdefault(key, {}).setdefault(
                    op, {"hist": [0] * HIST_BINS, "ratio": 0.0, "rel": 0.0})
                cell["hist"][hist_bin(ratio)] += 1
                cell["ratio"] = max(cell["ratio"], ratio)
                cell["rel"] = max(cell["rel"], rel)

    @property
    def worst(self):
        """Per oracle pair, the largest |error| / tolerance and relative error."""
        return {pair: {k: max(c[k] for c in by_op.values()) for k in ("ratio", "rel")}
                for pair, by_op in self.pairs.items()}

    def to_dict(self):
        return {"checked": self.checked, "ops": self.ops, "oracles": self.oracles,
                "pairs": self.pairs, "skipped": self.skipped, "unresolved": self.unresolved,
                "outcomes": self.outcomes, "failed": self.failed, "failures": self.failures,
                "warned": self.warned, "warnings": self.warnings, "modes": self.modes,
                "slow_once": self.slow_once, "points": self.points, "dtypes": self.dtypes}

    @classmethod
    def from_dict(cls, d):
        """Stats from `to_dict`'s JSON, every field checked (a record may be damaged
        or hostile): ValueError names the first field that is wrong. Fields written
        before they were counted read as none."""
        def counts(name, value, nested=False):
            ok = isinstance(value, dict) and all(
                isinstance(k, str) and (counts(name, v) if nested else _count(v))
                for k, v in value.items())
            if not ok:
                raise ValueError(f"field {name!r}: expected {{name: count}}"
                                 f"{' per pair' if nested else ''}")
            return True
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, found {type(d).__name__}")
        s = cls()
        if not _count(d.get("checked")):
            raise ValueError("field 'checked': expected a count")
        s.checked = d["checked"]
        for name in ("ops", "oracles", "skipped", "unresolved", "outcomes", "warned",
                     "warnings", "modes", "dtypes"):
            value = d.get(name, {})
            counts(name, value)
            setattr(s, name, value)
        s.failed = d.get("failed", {})
        counts("failed", s.failed, nested=True)
        s.points = d.get("points", {})
        counts("points", s.points, nested=True)
        s.slow_once = d.get("slow_once", 0)
        if not _count(s.slow_once):
            raise ValueError("field 'slow_once': expected a count")
        s.pairs = d.get("pairs", {})
        if not isinstance(s.pairs, dict) or not all(
                isinstance(pair, str) and isinstance(by_op, dict) and all(
                    isinstance(op, str) and _cell(cell) for op, cell in by_op.items())
                for pair, by_op in s.pairs.items()):
            raise ValueError(f"field 'pairs': expected {{pair: {{op: {{hist: {HIST_BINS} "
                             "counts, ratio, rel}}}}")
        s.failures = d.get("failures", [])
        if not isinstance(s.failures, list) or not all(
                isinstance(f, dict) and all(isinstance(f.get(k), str)
                                            for k in ("test", "kind", "report"))
                for f in s.failures):
            raise ValueError("field 'failures': expected a list of {test, kind, report}")
        return s

    def merge(self, other):
        """Add another run's stats (another worker's) to these."""
        self.checked += other.checked
        self.slow_once += other.slow_once
        for mine, theirs in ((self.ops, other.ops), (self.oracles, other.oracles),
                             (self.skipped, other.skipped), (self.unresolved, other.unresolved),
                             (self.outcomes, other.outcomes), (self.warned, other.warned),
                             (self.modes, other.modes), (self.dtypes, other.dtypes)):
            for k, n in theirs.items():
                mine[k] = mine.get(k, 0) + n
        for mine, theirs in ((self.failed, other.failed), (self.points, other.points)):
            for key, by in theirs.items():
                into = mine.setdefault(key, {})
                for k, n in by.items():
                    into[k] = into.get(k, 0) + n
        for pair, by_op in other.pairs.items():
            for op, cell in by_op.items():
                into = self.pairs.setdefault(pair, {}).setdefault(
                    op, {"hist": [0] * HIST_BINS, "ratio": 0.0, "rel": 0.0})
                into["hist"] = [a + b for a, b in zip(into["hist"], cell["hist"])]
                into["ratio"] = max(into["ratio"], cell["ratio"])
                into["rel"] = max(into["rel"], cell["rel"])
        for w, n in other.warnings.items():
            if w in self.warnings or len(self.warnings) < MAX_WARNINGS:
                self.warnings[w] = self.warnings.get(w, 0) + n
        self.failures += other.failures
        return self
