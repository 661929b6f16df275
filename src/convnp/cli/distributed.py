"""``convnp train --distributed``: a run in every process of an MPI job, as a user at a terminal expects it.

The library's side (:mod:`convnp.parallel.mpi`) splits batches and keeps the processes identical; this module adds
what the command line promises: one process speaks (process 0 prints and writes, the others are quiet), and any
error on any process prints one line and ends the whole job (``MPI_Abort``), since a process waiting for a dead or
failed one would otherwise wait forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import traceback

from convnp.parallel.mpi import Distributed, RootFailed

# How long a process other than 0 waits before reporting its own failure: if process 0 failed too (the usual case,
# since all run the same code), its abort ends this one meanwhile and the user reads one message, not N. When process
# 0 is known to have failed (RootFailed), the wait is longer: it reports, and its abort is the one to end the job.
ABORT_GRACE_S, ROOT_FAILED_WAIT_S = 5.0, 60.0


@contextlib.contextmanager
def _quiet(enabled: bool):
    """Processes other than 0 print nothing: their stdout goes to /dev/null and convnp logs only errors."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("convnp")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        try:
            yield
        finally:
            logger.setLevel(level)


def _check_workers(args) -> None:
    """Refuse the options that ask for workers of another kind than MPI's processes; set one thread each."""
    if args.threads not in (None, 1):
        raise ValueError(
            f"--threads: each process of a --distributed run trains in one thread (start more processes with "
            f"mpirun -n instead), got --threads {args.threads}"
        )
    if getattr(args, "backend", "auto") == "processes":
        raise ValueError("--backend processes: a --distributed run's processes are MPI's (mpirun -n N); leave "
                         "--backend out")
    args.threads = 1


def launch(args, train) -> int:
    """Run ``train(args, distributed)`` in every process of the MPI job.

    Process 0 prints and writes; the others stay quiet. Any error on any process ends the whole job
    (``MPI_Abort``), after one line saying what failed. The run folder keeps its last checkpoint (every write is
    atomic).
    """
    _check_workers(args)
    dist = Distributed()
    if not dist.is_root:
        # mpirun ends the survivors of a failed job with SIGTERM: remove the scratch folder on the way out.
        signal.signal(signal.SIGTERM, lambda signum, frame: (dist.close(), os._exit(128 + signum)))
    try:
        with _quiet(not dist.is_root):
            if dist.is_root and dist.size > 1:
                print(f"distributed: {dist.size} processes (MPI), one thread each; each global batch of "
                      f"{args.batch_size} is split across them", flush=True)
            return train(args, dist)
    except BaseException as err:
        if dist.size == 1:
            raise  # one process: reported by convnp.cli.main like any other error
        if not dist.is_root:
            time.sleep(ROOT_FAILED_WAIT_S if isinstance(err, RootFailed) else ABORT_GRACE_S)
        who = "" if dist.is_root else f" (process {dist.rank} of {dist.size})"
        if getattr(args, "debug", False) or os.environ.get("CONVNP_DEBUG"):
            traceback.print_exc()
        print(f"convnp: error{who}: {err or type(err).__name__}", file=sys.stderr)
        dist.abort(130 if isinstance(err, KeyboardInterrupt) else 1)
        raise  # not reached: abort ends the process
    finally:
        dist.close()
