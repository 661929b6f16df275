"""Training across MPI processes (convnp.parallel.mpi): the same results on 1 or N processes, checkpoints, resume,
a lost process, errors.

Each test starts ``mpirun`` (Open MPI from the ``mpi`` extra, which scripts/test.sh installs) on this machine. Every
process runs BLAS in one thread; two processes share the machine's cores with anything else running.

A lost process is one that kills itself at a named point of the run (:mod:`convnp.fault_points`), armed in that
process alone by giving it its own environment (mpirun's MPMD form, one app context per rank): the test waits for
mpirun to end, never on time, and knows where the fault landed, so it knows what the checkpoint must hold.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import same_arrays, toy_npz

import _mpi_worker
from convnp.checkpoint import load_checkpoint
from convnp.cli.main import main

MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
HAVE_MPI = MPIRUN is not None and importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and mpirun: pip install 'convnp[mpi]' "
                               "(scripts/test.sh installs them)")
WORKER = Path(__file__).with_name("_mpi_worker.py")
TIMEOUT_S = 240  # only bounds a failure: a hung job fails the test, with its output, before pytest-timeout (300 s)

# Float32 runs on 1 and 2 processes differ by rounding only (see test_two_processes_match_...); these bound how far
# that rounding, amplified by training, carries each array (relative L2 difference). Weights and statistics: at most
# 4e-3 measured. Momentum buffers hold the last steps' gradients, sums that largely cancel, and move further: on ONE
# process, the convolutions' products in row blocks (ops/gemm.py) against whole products, which regroups the
# weight-gradient sums at 3-7e-7 in one step, left them up to 2.5e-2 apart after these 14 steps.
REL_L2_F32 = 1e-2
REL_L2_F32_MOMENTUM = 5e-2


def mpirun(n: int, args: list[str], tmp_path: Path, *, env: dict | None = None, rank_env: dict | None = None,
           timeout=TIMEOUT_S):
    """Run ``python ARGS`` in ``n`` processes. TMPDIR lies in ``tmp_path``, so every scratch folder does too.

    ``rank_env`` ({rank: {name: value}}) adds variables to some processes only: each process is then its own app
    context (``mpirun -n 1 python ARGS : -n 1 env NAME=VALUE python ARGS``), and contexts take ranks in order.
    """
    tmpdir = tmp_path / "mpi-tmp"
    tmpdir.mkdir(exist_ok=True)
    command = [MPIRUN, "--oversubscribe"]
    if os.geteuid() == 0:
        command.append("--allow-run-as-root")  # Open MPI refuses root otherwise (CI runs as root)
    if rank_env:
        assert set(rank_env) <= set(range(n))
        for rank in range(n):
            extra = [f"{k}={v}" for k, v in rank_env.get(rank, {}).items()]
            command += [*([":"] if rank else []), "-n", "1", *(["env", *extra] if extra else []), sys.executable, *args]
    else:
        command += ["-n", str(n), sys.executable, *args]
    full_env = {**os.environ, "TMPDIR": str(tmpdir), "OPENBLAS_NUM_THREADS": "1", "CONVNP_NUM_THREADS": "1",
                **(env or {})}
    for name in ("CONVNP_TEST_FAULT", "CONVNP_TEST_FAULT_LOG"):  # armed only where a test arms it
        full_env.pop(name, None)
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=timeout)


def npz_arrays(path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k != "__meta__"}


def history(run_dir) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in load_checkpoint(run_dir / "last.npz").meta["history"]]


# "best": BatchNorm after every convolution and Dropout, so the whole-batch statistics and masks are exercised;
# its recipe adds augmentation (drawn for the whole global batch on every process). 222 images less 10% held out:
# 200 in batches of 33, so shards of 16 and 17 rows, and a last batch of 2 (one row each).
TRAIN = ["-m", "convnp", "train", "--model", "best", "--epochs", "2", "--batch-size", "33", "--val-split", "0.1",
         "--lr", "0.01", "--no-report"]


@pytest.fixture(scope="module")
def four_runs(tmp_path_factory):
    """The same run on 1 and 2 MPI processes, and in one process with 1 and 2 threads."""
    if not HAVE_MPI:
        pytest.skip("needs mpi4py and mpirun")
    tmp = tmp_path_factory.mktemp("four")
    data = toy_npz(tmp / "toy.npz", 222)
    # Ten named classes: a network is built for its data's classes, and the tolerance below was measured on the
    # 10-output network (with 3 outputs it trains to near-zero loss, where float32 rounding carries further).
    with np.load(data) as arrays:
        np.savez(data, **arrays, classes=np.array([str(k) for k in range(10)]))
    runs = {}
    for n in (1, 2):
        out = mpirun(n, [*TRAIN, "--data", str(data), "--distributed", "--out", str(tmp / f"mpi{n}")], tmp)
        assert out.returncode == 0, out.stderr
        runs[f"mpi{n}"] = (tmp / f"mpi{n}", out)
    for threads in (1, 2):
        assert main([*TRAIN[2:], "--data", str(data), "--threads", str(threads), "--out", str(tmp / f"t{threads}")]) == 0
        runs[f"threads{threads}"] = (tmp / f"t{threads}", None)
    runs["tmp"] = tmp
    return runs


@needs_mpi
def test_one_process_is_exactly_plain_training(four_runs):
    """``mpirun -n 1 ... --distributed`` takes the very path of a one-thread run: the same bits."""
    mpi, plain = four_runs["mpi1"][0], four_runs["threads1"][0]
    assert same_arrays(npz_arrays(mpi / "last.npz"), npz_arrays(plain / "last.npz"))
    assert history(mpi) == history(plain)


@needs_mpi
def test_two_processes_match_two_threads_bitwise_and_one_process_to_rounding(four_runs):
    """Two processes split each batch where two threads do and add the same two terms, so their bits agree; against
    one unsplit process only the grouping of float32 sums differs.

    Tolerance: weights and running statistics within 1% of their L2 norm (REL_L2_F32), momentum buffers within 5%
    (REL_L2_F32_MOMENTUM), and the median array within 0.5%. float32 rounds at ~6e-8 relative; splitting a batch
    in two regroups the sums in every gradient and BatchNorm statistic, changing each by a few of those per step,
    and training carries the change on, in jumps where it flips a ReLU or a max-pool choice (with the recipe's 5x
    larger learning rate further still: why the test uses 0.01). The float64 test below shows the same gap at
    ~1e-15, so it is rounding, not a different computation; shard-local BatchNorm statistics, a real mistake, moved
    38 of these 44 arrays by more than 1% (the median by 27%).
    """
    two, threads2, one = four_runs["mpi2"][0], four_runs["threads2"][0], four_runs["mpi1"][0]
    a, b = npz_arrays(two / "last.npz"), npz_arrays(threads2 / "last.npz")
    assert same_arrays(a, b)
    reference = npz_arrays(one / "last.npz")
    assert a.keys() == reference.keys()
    assert not same_arrays(a, reference)  # the split really happened
    differences = []
    for key in a:
        difference = np.linalg.norm(a[key] - reference[key].astype(np.float64)) / np.linalg.norm(reference[key])
        bound = REL_L2_F32_MOMENTUM if key.endswith("/velocity") else REL_L2_F32
        assert difference <= bound, f"{key}: 2 processes {a[key].ravel()[:4]} vs 1 {reference[key].ravel()[:4]}"
        differences.append(difference)
    assert np.median(differences) <= REL_L2_F32 / 2
    h2, h1 = history(two), history(one)
    assert [r["epoch"] for r in h2] == [1, 2]
    for r2, r1 in zip(h2, h1):
        assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-3, abs=1e-4)


@needs_mpi
def test_only_process_0_writes_and_the_others_leave_nothing(four_runs):
    run, out = four_runs["mpi2"]
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.csv", "last.npz", "best.npz", "results.json"}
    assert json.loads((run / "results.json").read_text())["test"]["n_samples"] == 60
    assert out.stdout.count("epoch 2/2  loss") == 1  # one progress report, process 0's
    assert "distributed: 2 processes" in out.stdout
    assert list((four_runs["tmp"] / "mpi-tmp").glob("convnp-rank*")) == []  # scratch folders removed


@needs_mpi
def test_float64_two_processes_equal_one_to_1e_12_and_every_step_keeps_replicas_identical(tmp_path):
    """The library path (Trainer + DistributedDataParallel) in float64, model compared across processes before every
    step: the processes end bitwise identical, one process equals plain training bitwise, two processes equal it
    to 1e-12 (float64 rounding, amplified by training as above)."""
    for n in (1, 2):
        (tmp_path / f"n{n}").mkdir()
        out = mpirun(n, [str(WORKER), "train", str(tmp_path / f"n{n}")], tmp_path)
        assert out.returncode == 0, out.stderr
    plain = _mpi_worker.arrays(*_mpi_worker.train())
    ranks = [npz_arrays(tmp_path / "n2" / f"rank{r}.npz") for r in (0, 1)]
    assert same_arrays(ranks[0], ranks[1])
    assert same_arrays(npz_arrays(tmp_path / "n1" / "rank0.npz"), plain)
    for key, value in ranks[0].items():
        np.testing.assert_allclose(value, plain[key], rtol=1e-12, atol=1e-12, err_msg=key)
    assert len(plain["losses"]) == _mpi_worker.EPOCHS * 4  # batches 33, 33, 33 and 1 per epoch


@needs_mpi
def test_processes_that_drift_apart_are_caught(tmp_path):
    out = mpirun(2, [str(WORKER), "diverge", str(tmp_path)], tmp_path)
    assert out.returncode == 0, out.stderr
    for r in (0, 1):
        message = (tmp_path / f"rank{r}.txt").read_text()
        assert "no longer identical before step 3" in message and "process(es) [1] differ" in message


@needs_mpi
def test_mpirun_gives_each_app_context_its_own_environment(tmp_path):
    """What the lost-process tests rely on: a variable given to rank 1's context reaches rank 1 alone."""
    script = "import os; from mpi4py import MPI; print(MPI.COMM_WORLD.Get_rank(), os.environ.get('CONVNP_PROBE'))"
    out = mpirun(2, ["-c", script], tmp_path, rank_env={1: {"CONVNP_PROBE": "armed"}})
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.splitlines()) == ["0 None", "1 armed"]


# 270 training images (300 less 10% held out) in batches of 50: epochs of 6 steps (5 of 50, one of 20), every one
# split in two, so every step is a collective that neither process can finish alone.
LOST_EPOCHS, STEPS_PER_EPOCH = 3, 6


@pytest.fixture(scope="module")
def lost_process_runs(tmp_path_factory):
    """The data of the lost-process tests and their run on two processes, never interrupted."""
    if not HAVE_MPI:
        pytest.skip("needs mpi4py and mpirun")
    tmp = tmp_path_factory.mktemp("lost")
    data = toy_npz(tmp / "toy.npz", 300, test=0)
    common = ["-m", "convnp", "train", "--distributed", "--data", str(data), "--model", "notebook",
              "--batch-size", "50", "--schedule", "constant", "--epochs", str(LOST_EPOCHS), "--no-report"]
    whole = mpirun(2, [*common, "--out", str(tmp / "whole")], tmp)
    assert whole.returncode == 0, whole.stderr
    assert load_checkpoint(tmp / "whole" / "last.npz").meta["step"] == LOST_EPOCHS * STEPS_PER_EPOCH
    return common, tmp / "whole"


# (rank, point, epoch last.npz then holds, its temporary files left). Rank 1 after step 8 (epoch 2's second): rank
# 0 wrote epoch 1's checkpoint before the collectives of step 7, which rank 1 finished, and cannot finish step 9
# without it, so cannot reach epoch 2's end. Rank 0 inside its third write of last.npz (epoch 0's, 1's, then 2's):
# on disk but not renamed, so last.npz holds epoch 1 and the half-written file is left for resume to remove.
LOST = {
    "rank 1 mid-epoch": (1, f"step {STEPS_PER_EPOCH + 2}", 1, 0),
    "rank 0 inside its checkpoint write": (0, "write last.npz 3", 1, 1),
}


@needs_mpi
@pytest.mark.parametrize("case", list(LOST))
def test_a_killed_process_ends_the_run_with_its_checkpoint_and_resume_matches(case, lost_process_runs, tmp_path):
    """SIGKILL one of two processes at a named point: mpirun ends the job (non-zero exit), last.npz holds the
    epoch that point implies and loads, and resuming on two processes ends with the bits of a run never
    interrupted."""
    rank, point, epoch, left = LOST[case]
    common, whole = lost_process_runs
    run, log = tmp_path / "run", tmp_path / "fault.log"
    fault = {"CONVNP_TEST_FAULT": f"{point}: SIGKILL", "CONVNP_TEST_FAULT_LOG": str(log)}
    job = mpirun(2, [*common, "--out", str(run)], tmp_path, rank_env={rank: fault})
    landed = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert [(x["point"], x["action"]) for x in landed] == [(point, "SIGKILL")], job.stderr
    assert job.returncode != 0
    said = " ".join(job.stderr.split())  # Open MPI wraps its message at a width that depends on the host's name
    assert f"rank {rank} with PID {landed[0]['pid']} " in said and "exited on signal 9" in said, job.stderr
    meta = load_checkpoint(run / "last.npz").meta
    assert (meta["epoch"], meta["step"], meta.get("batch")) == (epoch, epoch * STEPS_PER_EPOCH, None)
    assert len(list(run.glob(".last.npz.*.tmp"))) == left
    assert history(run) == history(whole)[:epoch]

    resumed = mpirun(2, ["-m", "convnp", "train", "--distributed", "--resume", str(run), "--no-report"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at epoch {epoch + 1}" in resumed.stdout
    assert same_arrays(npz_arrays(run / "last.npz"), npz_arrays(whole / "last.npz"))
    assert history(run) == history(whole)
    assert not list(run.glob(".*.tmp"))


@needs_mpi
def test_an_error_on_process_0_ends_every_process_with_one_message(tmp_path):
    out = mpirun(2, ["-m", "convnp", "train", "--distributed", "--data", str(tmp_path / "missing.npz"),
                     "--out", str(tmp_path / "r")], tmp_path)
    assert out.returncode == 1
    # Anywhere in a line: mpirun forwards each process's stderr in chunks, and under load it has been seen to put
    # another chunk's space before the message.
    errors = re.findall(r"convnp: error[^\n]*", out.stderr)
    assert len(errors) == 1 and "missing.npz" in errors[0] and "process 1" not in errors[0], out.stderr


def test_threads_with_distributed_are_refused(tmp_path, capsys):
    assert main(["train", "--distributed", "--threads", "2", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "--threads" in err and "mpirun -n" in err and "got --threads 2" in err


@needs_mpi
def test_a_folder_is_opened_by_every_process_itself_and_trains_as_two_threads(tmp_path):
    """With a folder of images, each process opens the folder's cache itself instead of receiving the pixels: process
    1, given a cache folder of its own, decodes the folder into it. The run equals two threads' bit for bit, and a
    folder that process 1 sees differently is refused on every process."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(4)
    root = tmp_path / "shapes"
    for i in range(90):
        label = i % 3
        pixels = (rng.random((12, 12, 3)) * 80).astype(np.uint8)
        pixels[2 + 3 * label:6 + 3 * label, 3:9, label] = 250  # a bright bar, its row and colour by class
        (root / ["bar0", "bar1", "bar2"][label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / ["bar0", "bar1", "bar2"][label] / f"{i:03d}.png")
    caches = {rank: tmp_path / f"cache{rank}" for rank in (0, 1)}
    args = ["-m", "convnp", "train", "--data", str(root), "--test-split", "0.2", "--model", "sprint", "--epochs", "1",
            "--batch-size", "16", "--no-report"]
    out = mpirun(2, [*args, "--distributed", "--out", str(tmp_path / "mpi")], tmp_path,
                 rank_env={rank: {"CONVNP_DATA": str(cache)} for rank, cache in caches.items()})
    assert out.returncode == 0, out.stderr
    for cache in caches.values():  # each process decoded into (and read from) its own cache
        (decoded,) = (cache / "folders").glob("*-*")
        assert np.load(decoded / "x.npy", mmap_mode="r").shape[0] == 90
    assert main([*args[2:], "--threads", "2", "--out", str(tmp_path / "threads")]) == 0
    assert same_arrays(npz_arrays(tmp_path / "mpi" / "last.npz"), npz_arrays(tmp_path / "threads" / "last.npz"))

    # Process 1 sees a folder with one image fewer (its own copy, as on another machine): refused everywhere.
    other = tmp_path / "other"
    shutil.copytree(root, other)
    (other / "bar2" / "089.png").unlink()
    command = [MPIRUN, "--oversubscribe", *(["--allow-run-as-root"] if os.geteuid() == 0 else []),
               "-n", "1", sys.executable, *args, "--distributed", "--out", str(tmp_path / "bad"), ":",
               "-n", "1", sys.executable, *[str(other) if a == str(root) else a for a in args], "--distributed",
               "--out", str(tmp_path / "bad")]
    bad = subprocess.run(command, env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "TMPDIR": str(tmp_path),
                                       "CONVNP_DATA": str(tmp_path / "cache-bad")},
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert bad.returncode != 0
    assert "another data set than process 0's" in bad.stderr + bad.stdout
    assert not (tmp_path / "bad" / "last.npz").exists()
