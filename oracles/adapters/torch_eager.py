"""PyTorch autograd, eager (the suite's own torch reference, as an engine under test)."""

import torch

from ..torch_backend import TorchEngine


class TorchEager(TorchEngine):
    name = "torch"
    version = torch.__version__


engine = TorchEager()
