"""The README's examples run as written."""

import re
import types
from pathlib import Path

from hypothesis import given, settings
from mflow.oracles.checker import Checker
from mflow.oracles.engine import supported
from mflow.strategies import cases

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _block(start):
    return re.search(r"```python\n(" + re.escape(start) + r".*?)```", README, re.S).group(1)


def test_api_example_runs():
    namespace = {}
    exec(_block("import numpy as np\nimport mflow"), namespace)  # the README's own code
    assert namespace["w"].grad.shape == (4, 1)


ADAPTER = types.ModuleType("readme_adapter")
exec(_block("# my_adapter.py"), ADAPTER.__dict__)  # the README's own code
CHECKER = Checker(ADAPTER.engine)


def test_adapter_example_passes_the_protocol_checks():
    assert set(supported(ADAPTER.engine)) == {"add", "mul", "matmul", "tanh", "transpose", "sum"}


@settings(max_examples=20)
@given(cases(ops=supported(ADAPTER.engine), max_steps=5, dtype="mixed"))
def test_adapter_example_passes_the_fuzzer(case):
    CHECKER.check(case)
