"""Splitting batches across threads: the same results as one thread up to float rounding, deterministic per count."""

import numpy as np
import pytest

from convnp.parallel import threads as parallel_threads
from convnp.parallel.blas import get_blas_threads, set_blas_threads
from convnp.losses import SoftmaxCrossEntropy
from convnp.models import notebook
from convnp.optim import SGD
from convnp.parallel import DataParallel, get_num_threads, set_num_threads, shard_bounds
from convnp.train import Trainer


@pytest.mark.parametrize("n, k", [(10, 2), (7, 3), (2, 4), (1, 2), (128, 2)])
def test_shard_bounds_cover_the_batch(n, k):
    bounds = shard_bounds(n, k)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a < b for a, b in bounds) and all(b1 == a2 for (_, b1), (a2, _) in zip(bounds, bounds[1:]))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1 and len(bounds) == min(n, k)


def _data(rng, n=24):
    return rng.standard_normal((n, 28, 28, 1)), rng.integers(0, 10, n)


@pytest.mark.parametrize("threads, n", [(2, 24), (3, 24), (4, 3), (2, 1)])
def test_parallel_step_matches_one_thread(threads, n):
    rng = np.random.default_rng(0)
    x, y = _data(rng, n)
    model = notebook(rng=np.random.default_rng(1), dtype=np.float64)
    loss_fn = SoftmaxCrossEntropy()
    expected_loss = loss_fn.forward(model.forward(x, training=True), y)
    model.backward(loss_fn.backward(), input_grad=False)
    expected = {k: v.copy() for k, v in model.gradients().items()}
    dp = DataParallel(model, threads)
    loss, correct, finite = dp.train_step(x, y)
    dp.close()
    assert finite and loss == pytest.approx(expected_loss, rel=1e-12)
    for name, grad in model.gradients().items():
        np.testing.assert_allclose(grad, expected[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_parallel_predict_matches_one_thread():
    rng = np.random.default_rng(2)
    model = notebook(rng=rng)
    x = rng.standard_normal((37, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, threads=3), model.predict(x, threads=1), rtol=1e-5, atol=1e-6)


def _train(threads, dtype=np.float32):
    rng = np.random.default_rng(3)
    x, y = _data(rng, 96)
    model = notebook(rng=np.random.default_rng(4), dtype=dtype)
    trainer = Trainer(model, SGD(0.05, momentum=0.9), threads=threads)
    history = trainer.fit(x.astype(dtype), y, epochs=2, batch_size=32, rng=np.random.default_rng(5))
    return model.state_dict(), history


def test_training_with_two_threads_is_deterministic_and_close_to_one():
    a, history_a = _train(2)
    b, _ = _train(2)
    assert all(np.array_equal(a[k], b[k]) for k in a)  # fixed thread count: the same bits
    one, _ = _train(1, np.float64)
    two, _ = _train(2, np.float64)
    for k in one:  # another thread count: only float rounding differs
        np.testing.assert_allclose(two[k], one[k], rtol=1e-9, atol=1e-11, err_msg=k)
    assert history_a[-1]["loss"] < history_a[0]["loss"]


def test_default_thread_count(monkeypatch):
    monkeypatch.setattr(parallel_threads, "_default_threads", None)
    monkeypatch.setenv("CONVNP_NUM_THREADS", "3")
    assert get_num_threads() == 3
    monkeypatch.setenv("CONVNP_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="CONVNP_NUM_THREADS must be a positive integer, got 'zero'"):
        get_num_threads()
    monkeypatch.delenv("CONVNP_NUM_THREADS")
    assert get_num_threads() >= 1
    set_num_threads(2)
    assert get_num_threads() == 2
    with pytest.raises(ValueError, match="expected a positive integer or None, got 0"):
        set_num_threads(0)
    set_num_threads(None)
    with pytest.raises(ValueError, match="n_threads must be a positive integer"):
        DataParallel(notebook(), 0)


def test_training_threads_default_to_what_the_step_can_feed(monkeypatch):
    from convnp.models import convnet
    from convnp.parallel import threads_for

    monkeypatch.setattr(parallel_threads, "_default_threads", None)
    monkeypatch.delenv("CONVNP_NUM_THREADS", raising=False)
    monkeypatch.setattr(parallel_threads.os, "cpu_count", lambda: 4)
    small, big = notebook(), convnet()  # 0.3 and 72 MFLOP per training image
    assert threads_for(small, 32) == 1  # 10 MFLOP: one thread
    assert threads_for(small, 128) == 2  # 39 MFLOP: two threads of 15 at least
    assert threads_for(small, 4096) == 4  # never more than the cores
    assert threads_for(big, 1) == 4
    monkeypatch.setenv("CONVNP_NUM_THREADS", "3")  # asked for: taken as it is
    assert threads_for(small, 32) == 3
    monkeypatch.delenv("CONVNP_NUM_THREADS")
    set_num_threads(2)
    try:
        assert threads_for(small, 32) == 2
    finally:
        set_num_threads(None)
    trainer = Trainer(notebook(), SGD(0.01))
    rng = np.random.default_rng(0)
    trainer.fit(rng.random((40, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 40), epochs=1, batch_size=20,
                rng=rng)
    assert trainer.threads == 1  # 6 MFLOP per step


def test_blas_thread_control_round_trips():
    before = get_blas_threads()
    if before is None:
        pytest.skip("no OpenBLAS found in this process (another BLAS): nothing to control")
    assert set_blas_threads(1) == before
    assert get_blas_threads() == 1
    set_blas_threads(before)
    assert get_blas_threads() == before


def _bn_dropout_model(dtype=np.float64, seed=0):
    from convnp.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
    from convnp.sequential import Sequential

    rng = np.random.default_rng(seed)
    init = {"rng": rng, "dtype": dtype}
    return Sequential(
        [Conv2D(1, 4, 3, padding="same", bias=False, **init), BatchNorm2D(4, dtype=dtype), ReLU(), MaxPool2D(2),
         Dropout(0.25, rng=rng.spawn(1)[0]), Flatten(), Dense(14 * 14 * 4, 16, bias=False, **init),
         BatchNorm1D(16, dtype=dtype), ReLU(), Dropout(0.5, rng=rng.spawn(1)[0]), Dense(16, 10, **init)],
        (28, 28, 1),
    )


def _step(model, threads, x, y):
    dp = DataParallel(model, threads)
    loss, correct, finite = dp.train_step(x, y)
    dp.close()
    assert finite
    return loss, correct, {k: v.copy() for k, v in model.gradients().items()}


@pytest.mark.parametrize("threads, n", [(2, 24), (3, 25), (4, 5), (2, 2)])
def test_batchnorm_and_dropout_steps_split_like_one_thread(threads, n):
    rng = np.random.default_rng(0)
    x, y = _data(rng, n)
    one, split = _bn_dropout_model(), _bn_dropout_model()
    assert split.shardable and len(DataParallel(split, threads).replicas) == threads
    expected = _step(one, 1, x, y)
    got = _step(split, threads, x, y)
    assert got[0] == pytest.approx(expected[0], rel=1e-12) and got[1] == expected[1]
    for name, grad in got[2].items():  # whole-batch statistics and the same dropout masks, else these differ
        np.testing.assert_allclose(grad, expected[2][name], rtol=1e-9, atol=1e-12, err_msg=name)
    for key, value in split.state_dict().items():  # running statistics of the whole batch, updated once
        np.testing.assert_allclose(value, one.state_dict()[key], rtol=1e-12, atol=1e-14, err_msg=key)
    assert split.rng_states() == one.rng_states()  # every Generator advanced as in one unsplit step
    assert all(layer.shard is None for layer in split.layers)  # a later plain forward sees the whole batch


def test_split_training_of_a_batchnorm_dropout_model_is_deterministic_and_close_to_one_thread():
    rng = np.random.default_rng(6)
    x, y = _data(rng, 64)
    x = x.astype(np.float32)

    def train(threads):
        model = _bn_dropout_model(np.float32, seed=7)
        Trainer(model, SGD(0.05, momentum=0.9), threads=threads).fit(x, y, epochs=2, batch_size=16,
                                                                     rng=np.random.default_rng(8))
        return model.state_dict()

    one, two, again = train(1), train(2), train(2)
    for key in one:
        np.testing.assert_array_equal(two[key], again[key], err_msg=key)
        np.testing.assert_allclose(two[key], one[key], rtol=1e-3, atol=1e-4, err_msg=key)


def test_a_failing_shard_reports_its_error_without_hanging():
    model = _bn_dropout_model()
    dp = DataParallel(model, 2)
    x, y = _data(np.random.default_rng(1), 8)
    with pytest.raises(ValueError, match="label"):
        dp.train_step(x, np.array([0, 1, 2, 3, 4, 5, 6, 99]))  # the second shard's labels are out of range
    assert dp.train_step(x, y)[2]  # the pool and the replicas still work
    dp.close()


def test_a_layer_that_cannot_be_split_keeps_the_model_whole():
    from convnp.layers import Conv2D, Dense, Flatten, ReLU
    from convnp.sequential import Sequential

    class Whole(ReLU):
        shardable = False

    rng = np.random.default_rng(0)
    plain = Sequential([Conv2D(1, 2, 3, rng=rng), ReLU(), Flatten(), Dense(2 * 26 * 26, 10, rng=rng)], (28, 28, 1))
    assert plain.shardable and len(DataParallel(plain, 2).replicas) == 2
    model = Sequential([Conv2D(1, 2, 3, rng=rng), Whole(), Flatten(), Dense(2 * 26 * 26, 10, rng=rng)], (28, 28, 1))
    assert not model.shardable
    dp = DataParallel(model, 2)
    assert len(dp.replicas) == 1
    x, y = rng.standard_normal((6, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, 6)
    assert dp.train_step(x, y)[2]
    np.testing.assert_allclose(dp.predict(x), model.predict(x, threads=1), rtol=1e-5, atol=1e-6)
    dp.close()


def test_dropout_generator_states_round_trip():
    from convnp.layers import Dense, Dropout, Flatten
    from convnp.sequential import Sequential

    model = Sequential([Flatten(), Dropout(0.5, rng=np.random.default_rng(1)), Dense(4, 2)], (2, 2, 1))
    x = np.ones((3, 2, 2, 1), np.float32)
    model.forward(x, training=True)
    states = model.rng_states()
    assert list(states) == ["1"]
    first = model.forward(x, training=True)
    model.set_rng_states(states)
    np.testing.assert_array_equal(model.forward(x, training=True), first)  # the same masks again


def test_keep_freed_memory_runs_once_and_can_be_turned_off(monkeypatch):
    from convnp.parallel import malloc as _malloc

    monkeypatch.setattr(_malloc, "_done", False)
    monkeypatch.setenv("CONVNP_NO_MALLOPT", "1")
    assert _malloc.keep_freed_memory() is False
    monkeypatch.delenv("CONVNP_NO_MALLOPT")
    first = _malloc.keep_freed_memory()
    assert isinstance(first, bool)
    assert _malloc.keep_freed_memory() is False  # once per process
