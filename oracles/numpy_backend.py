"""numpy's counterpart of every operation, on stacks of matrices (..., m, n): the
catalogue's numpy references (oracles/catalogue.py), built from the records.

The finite-difference oracle evaluates all its perturbed inputs in one pass along
the leading axis, so every entry broadcasts over leading axes. Written apart from
mflow on purpose: a reference must not share the engine's code.
"""

import numpy as np

from .catalogue import CATALOGUE, Derived

NUMPY_OPS = Derived(lambda: {name: rec.reference("numpy", np) for name, rec in CATALOGUE.items()})
