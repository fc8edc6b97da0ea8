"""This project's own test set-up. The suite itself (options, fixtures, the fuzz
tests and the gate) is the pytest plugin mflow.reports.plugin, which installing
the package registers; here only what this repository's tests need on top:

Profiles (MFLOW_PROFILE=dev|ci|fuzz; default dev here):
  dev   quick, random: for working on the code
  ci    derandomised, a fixed budget: what `tox` and CI run
  fuzz  long, random, with the example database: the campaign `tox -e fuzz` runs
"""

import os

# One thread per process, set before anything imports torch or numpy's BLAS: the
# graphs are small (8x8), so threads only fight `pytest -n auto`'s workers for the
# cores. torch is imported by the test modules, in the workers only.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "1"
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")
os.environ.setdefault("MFLOW_PROFILE", "dev")  # the plugin loads it
