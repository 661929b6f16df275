#!/usr/bin/env bash
# Set up .venv with the test tools, Pillow and the PyTorch oracle, then run the whole test suite.
# Extra arguments go to pytest. pytest's own exit code is returned: 5 (no tests collected) fails too.
source "$(dirname "$0")/_venv.sh" "test,image,oracle"
# One BLAS thread: on shared 2-core machines two threads next to a busy process ran 2-27x slower.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 VECLIB_MAXIMUM_THREADS=1 NUMEXPR_NUM_THREADS=1
# ... and convnp itself to one thread, except in the tests that ask for two explicitly.
export CONVNP_NUM_THREADS=1
exec .venv/bin/python -m pytest "$@"
