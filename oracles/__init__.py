"""Oracles: the references an engine's answers are checked against.

`torch_ops` holds PyTorch's counterpart of every mflow operation. JAX and
central finite differences, and the interpreter that runs a whole program on
each backend, arrive with the fuzzing suite.
"""
