"""Hold every pytest worker to one thread (two xdist workers share two cores)."""

import os

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")

import torch  # noqa: E402  (after the environment it reads)

torch.set_num_threads(1)
