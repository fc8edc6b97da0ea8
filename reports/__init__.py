"""Regression reports: saved, replayable failing cases and oracle comparisons.

Empty for now: reports arrive after the fuzzing suite.
"""
