"""Hypothesis strategies for random, shape-consistent expression graphs.

`cases(...)` draws a program with its inputs and cotangent; `programs(...)`
the program alone. Domains, kinks and shape rules come from `mflow.ops.OPS`.
"""

from .graphs import ORDER, cases, programs

__all__ = ["ORDER", "cases", "programs"]
