"""Hypothesis strategies for random, shape-consistent expression graphs.

`cases(...)` draws a program with its inputs and cotangent; `programs(...)`
the program alone. Domains, kinks, shape rules and what is drawn come from the
catalogue (`mflow.oracles.catalogue`).
"""

from .graphs import ORDER, cases, programs

__all__ = ["ORDER", "cases", "programs"]
