"""Checkpoints: round trip, atomic writes, and every malformed file refused with one clear line."""

import json
import os
import zipfile

import numpy as np
import pytest

from convnp.checkpoint import META_KEY, atomic_write, load_checkpoint, save_checkpoint
from convnp.errors import CheckpointError
from convnp.layers import Conv2D, Dense, Flatten, ReLU
from convnp.sequential import Sequential
from convnp.models import notebook
from convnp.optim import SGD, Adam


def _trained(rng):
    model = notebook(rng=rng)
    optimizer = Adam(0.01)
    x = rng.standard_normal((4, 28, 28, 1)).astype(np.float32)
    model.forward(x, training=True)
    model.backward(rng.standard_normal((4, 10)).astype(np.float32))
    optimizer.step(model.parameters(), model.gradients())
    return model, optimizer, x


def _rewrite(path, out, *, meta=None, drop=(), add=None):
    """Copy a checkpoint with its JSON replaced and entries dropped or added (np.savez, no pickle)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k not in drop}
    if meta is not None:
        arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    arrays.update(add or {})
    np.savez(out, **arrays)
    return out


@pytest.fixture
def saved(tmp_path, rng):
    model, optimizer, x = _trained(rng)
    path = save_checkpoint(tmp_path / "ck.npz", model, optimizer=optimizer, meta={"epoch": 3, "note": "hi"})
    return path, model, optimizer, x


def test_round_trip_weights_optimizer_and_meta(saved):
    path, model, optimizer, x = saved
    loaded = load_checkpoint(path)
    np.testing.assert_array_equal(loaded.model.forward(x), model.forward(x))
    assert loaded.meta["epoch"] == 3 and loaded.meta["note"] == "hi"
    assert loaded.meta["format"] == "convnp-checkpoint" and loaded.meta["versions"]["numpy"] == np.__version__
    restored = loaded.optimizer()
    assert isinstance(restored, Adam) and restored.step_count == 1 and restored.lr == optimizer.lr
    for name, buffers in optimizer.state.items():
        for key, value in buffers.items():
            np.testing.assert_array_equal(restored.state[name][key], value)


def test_float64_model_round_trips_as_float64(tmp_path, rng):
    model = notebook(rng=rng, dtype=np.float64)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "f64.npz", model))
    assert loaded.model.dtype == np.float64 and loaded.optimizer() is None


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old contents")

    def explode(f):
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, explode)
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["file.bin"]  # no temporary file left behind


def _expect(path, pattern):
    with pytest.raises(CheckpointError, match=pattern) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_missing_empty_random_and_truncated_files(tmp_path, saved):
    path = saved[0]
    _expect(tmp_path / "nope.npz", "no such checkpoint file")
    (tmp_path / "empty.npz").write_bytes(b"")
    _expect(tmp_path / "empty.npz", "not an .npz archive")
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(5000))
    _expect(tmp_path / "random.npz", "not an .npz archive")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / "cut.npz", r"cut\.npz: is not a convnp checkpoint \(not an \.npz archive; empty or damaged\?\)")
    _expect(tmp_path, "holds no checkpoint")  # a folder without best.npz / last.npz


class Tripwire:
    """Unpickling it creates the folder ``marker``: a pickle that ran leaves a trace on disk.

    ``__reduce__`` names ``os.mkdir`` by reference, so unpickling calls the real function; a bound method of a test
    object would be pickled as a copy of that object, and its effect would never be seen by the test.
    """

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _pickled_checkpoint(saved, tmp_path):
    marker = tmp_path / "UNPICKLED"
    wire = np.array([Tripwire(marker)], dtype=object)
    bad = _rewrite(saved[0], tmp_path / "pickle.npz", add={"model/0.weight": wire})
    return bad, marker


def test_tripwire_fires_when_unpickled(tmp_path, saved):
    """The wire is live: the same file read with allow_pickle=True creates the marker."""
    bad, marker = _pickled_checkpoint(saved, tmp_path)
    with np.load(bad, allow_pickle=True) as archive:
        archive["model/0.weight"]
    assert marker.is_dir()


def test_pickled_object_array_is_refused_and_never_unpickled(tmp_path, saved):
    bad, marker = _pickled_checkpoint(saved, tmp_path)
    try:
        load_checkpoint(bad)
    except CheckpointError as err:
        error = err
    else:
        error = None
    # The marker first: whatever load_checkpoint then said, an unpickled object has already run code.
    assert not marker.exists(), "load_checkpoint unpickled the object array"
    assert error is not None and "pickled Python object array" in str(error) and "\n" not in str(error), error


def test_another_architectures_weights_are_refused(tmp_path, saved, rng):
    path, model, _, _ = saved
    meta = load_checkpoint(path).meta
    meta["model"]["layers"][0]["config"]["out_channels"] = 16  # the description now says 16 filters
    meta["model"]["layers"][4]["config"]["in_features"] = 13 * 13 * 16
    _expect(_rewrite(path, tmp_path / "arch.npz", meta=meta), r"0\.weight has shape \(3, 3, 1, 8\)")
    _expect(_rewrite(path, tmp_path / "missing.npz", drop=("model/4.bias",)), r"missing key\(s\) \['4.bias'\]")
    extra = _rewrite(path, tmp_path / "extra.npz", add={"model/9.weight": np.zeros(3, np.float32)})
    _expect(extra, r"unexpected key\(s\) \['9.weight'\]")
    # Loading a checkpoint's state into a model of another architecture is refused too.
    other = Sequential([Conv2D(1, 4, 5, rng=rng), ReLU(), Flatten(), Dense(24 * 24 * 4, 10, rng=rng)], (28, 28, 1))
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \[.3.bias., .3.weight.\]"):
        other.load_state_dict(model.state_dict())


def test_nan_weights_future_version_and_bad_meta_are_refused(tmp_path, saved):
    path = saved[0]
    with np.load(path, allow_pickle=False) as archive:
        weight = archive["model/4.weight"].copy()
    weight[0, 0] = np.nan
    _expect(_rewrite(path, tmp_path / "nan.npz", add={"model/4.weight": weight}), "non-finite")
    meta = load_checkpoint(path).meta
    _expect(_rewrite(path, tmp_path / "future.npz", meta={**meta, "format_version": 99}),
            "newer convnp.*format 99.*upgrade")
    _expect(_rewrite(path, tmp_path / "nometa.npz", drop=(META_KEY,)), "no __meta__ entry")
    _expect(_rewrite(path, tmp_path / "other.npz", meta={**meta, "format": "keras"}), "not a convnp checkpoint")
    bad_json = tmp_path / "badjson.npz"
    _rewrite(path, bad_json, add={META_KEY: np.frombuffer(b"{not json", dtype=np.uint8)})
    _expect(bad_json, "not valid JSON")
    unknown = {**meta, "model": {"layers": [{"class": "Attention", "config": {}}]}}
    _expect(_rewrite(path, tmp_path / "unknown.npz", meta=unknown), "unknown class 'Attention'")


def test_file_is_an_ordinary_npz(saved):
    path = saved[0]
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as archive:
        assert "model/0.weight" in archive.files and "optimizer/0.weight/exp_avg" in archive.files
        json.loads(archive[META_KEY].tobytes())


def test_sgd_without_momentum_has_no_buffers(tmp_path, rng):
    model = notebook(rng=rng)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "s.npz", model, optimizer=SGD(0.1)))
    assert loaded.optimizer().state == {}
