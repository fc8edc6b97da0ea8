"""Oracles: the references an engine's answers are checked against, and the check.

`program.py` (the plain-data program and its interpreter), `engine.py` (the adapter
protocol), the backends (`torch_backend.py`, `jax_backend.py`, `numpy_backend.py`,
`finite_differences.py`), then `verdict.py`, `tolerance.py` and `checker.py`.
"""
