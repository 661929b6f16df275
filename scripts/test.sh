#!/usr/bin/env bash
# Set up .venv with the test tools, Pillow, the PyTorch oracle and MPI (mpi4py, Open MPI), then run the whole test suite.
# Extra arguments go to pytest. pytest's own exit code is returned: 5 (no tests collected) fails too.
source "$(dirname "$0")/_venv.sh" "test,image,oracle,mpi"
# The browser tests drive Debian's Chromium (never `playwright install`, which downloads a browser). As root on a
# fresh machine, install it; if that fails, carry on: those tests skip and say why (in CI, a skip fails the run).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium for the browser tests (apt-get)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
        || echo "could not install chromium; the browser tests will be skipped (and fail where CI is set)" >&2
fi
# One BLAS thread: on shared 2-core machines two threads next to a busy process ran 2-27x slower.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 VECLIB_MAXIMUM_THREADS=1 NUMEXPR_NUM_THREADS=1
# ... and convnp itself to one thread, except in the tests that ask for two explicitly.
export CONVNP_NUM_THREADS=1
exec .venv/bin/python -m pytest "$@"
