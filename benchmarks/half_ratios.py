"""Which comparisons come nearest their tolerance on a correct engine, in half precision,
and against which tolerance: the floor alone (lazy gauging: a comparison under the floor
is never gauged, so its ratio is below 1 by construction) or a measured one.

    python benchmarks/half_ratios.py [ENGINE] [EXAMPLES] [OP ...]
    python benchmarks/half_ratios.py mflow.oracles.adapters.torch_eager 800 prod
"""

import sys

from hypothesis import HealthCheck, Phase, given, settings
from mflow.oracles.checker import Checker
from mflow.oracles.engine import load_engine
from mflow.strategies import cases

engine = load_engine(sys.argv[1] if len(sys.argv) > 1 else "mflow.oracles.adapters.torch_eager")
examples = int(sys.argv[2]) if len(sys.argv) > 2 else 600
ops = sys.argv[3:] or ["prod"]
checker = Checker(engine)
seen = []


@settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(cases(ops=ops, max_steps=1, dtype="half"))
def run(case):
    seen.extend((c.ratio, str(c)) for c in checker.judge(case).comparisons)


run()
seen.sort(key=lambda w: -w[0])
measured = [w for w in seen if "the floor alone" not in w[1]]
print(f"{len(seen)} comparisons ({', '.join(ops)}, {examples} cases, half precision)")
print("largest ratios:", *(f"{r:.3f}: {s}" for r, s in seen[:3]), sep="\n  ")
print("largest against a tolerance other than the floor alone:",
      *(f"{r:.3f}: {s}" for r, s in measured[:3]), sep="\n  ")
