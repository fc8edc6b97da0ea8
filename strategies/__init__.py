"""Hypothesis strategies for random, shape-consistent expression graphs.

Empty for now: the graph strategies arrive with the fuzzing suite, and read
each operation's shape rule and domain from `mflow.ops.OPS`.
"""
