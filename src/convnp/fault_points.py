"""Named points in a run where a test can inject a fault. Test-only: nothing happens unless the variable is set.

The fault-injection tests (``tests/test_faults.py``, ``tests/test_distributed.py``) must make a kill or a Ctrl-C
land at a known moment on any machine, fast or slow, idle or busy. Sleeping, or counting lines of output, does
not: on a fast machine the run has finished before the signal is sent. So the code announces where it is with
:func:`reached`, and a test arms one of those points through the environment::

    CONVNP_TEST_FAULT="step 27: SIGKILL"        # after the 27th step of the run, before the 28th
    CONVNP_TEST_FAULT="write last.npz 3: SIGKILL" # the 3rd write of last.npz, on disk but not yet renamed
    CONVNP_TEST_FAULT="step 27: pause"            # wait there until the file $CONVNP_TEST_FAULT_LOG.go exists

The points, each named as :func:`reached` is called (epochs 1-based, steps counted over the whole run):

- ``step S``: step S's update is done and its callbacks have run; the next step has not started;
- ``validation E``: epoch E's training steps are done and its validation pass is about to start;
- ``epoch-end E``: epoch E's logs are complete; no epoch-end callback (metrics, checkpoint, progress) has run;
- ``write NAME K``: inside this process's K-th atomic write of the file NAME (a checkpoint, ``metrics.csv``, ...):
  the bytes are in the temporary file and fsynced, the rename over NAME has not happened.
- ``worker step K``: in a worker process of :class:`convnp.parallel.processes.ProcessDataParallel`
  (``--backend processes``), the K-th step since that worker was forked has arrived, and none of it is done: the
  training process, which sent it, waits for this worker's answer. Workers inherit the variable when forked, and each counts its own steps; with
  one worker and every batch split, K is the run's step number.

The action is a signal's name, which the process sends itself (``os.kill``: the kernel delivers it as it would a
signal from outside), or ``pause``, which waits for the test to signal the process from outside and then create
the ``.go`` file. Before acting, the process appends one JSON line to ``$CONVNP_TEST_FAULT_LOG`` (if set), naming
the point and the process, so the test can assert where its fault landed.

When ``CONVNP_TEST_FAULT`` is unset a call costs one dictionary lookup.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter

ENV = "CONVNP_TEST_FAULT"
LOG_ENV = "CONVNP_TEST_FAULT_LOG"

_writes: Counter = Counter()  # atomic writes per file name in this process, for the ``write NAME K`` points


def armed() -> bool:
    """Whether a fault point is armed in this process (so callers may skip work that only names points)."""
    return ENV in os.environ


def reached(point: str) -> None:
    """The run is at ``point``; if ``$CONVNP_TEST_FAULT`` arms this point, act on it (see the module docstring)."""
    spec = os.environ.get(ENV)
    if spec is None:
        return
    target, _, action = spec.rpartition(":")
    if target.strip() != point:
        return
    action = action.strip()
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"point": point, "action": action, "pid": os.getpid()}) + "\n")
            f.flush()
            os.fsync(f.fileno())
    if action == "pause":
        if not log:
            raise RuntimeError(f"{ENV}={spec!r}: 'pause' needs {LOG_ENV}, whose '.go' file ends the pause")
        while not os.path.exists(log + ".go"):
            time.sleep(0.01)  # waiting on the test's file, not on time: any delay is the test's choice
        return
    try:
        signum = signal.Signals[action]
    except KeyError:
        raise ValueError(f"{ENV}={spec!r}: the action must be 'pause' or a signal name such as SIGKILL, "
                         f"got {action!r}") from None
    os.kill(os.getpid(), signum)


def reached_write(name: str) -> None:
    """Count one more atomic write of the file ``name`` and announce ``write NAME K``."""
    if ENV not in os.environ:
        return
    _writes[name] += 1
    reached(f"write {name} {_writes[name]}")
