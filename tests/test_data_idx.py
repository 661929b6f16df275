"""IDX reader and writer: byte layout, round trips, and malformed files."""

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from convnp.data import read_idx, write_idx
from convnp.errors import DataError, DataNotFoundError

IDX_DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


def idx_bytes(type_code, shape, payload):
    """An IDX file built by hand, independently of write_idx."""
    header = bytes([0, 0, type_code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + payload


def test_read_hand_made_uint8_file(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(0x08, (2, 2, 3), bytes(range(12))))

    array = read_idx(path)

    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array, np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    assert array.flags.writeable


def test_read_converts_big_endian_to_native(tmp_path):
    path = tmp_path / "values-idx1-int"
    path.write_bytes(idx_bytes(0x0C, (3,), np.array([1, -2, 70000], dtype=">i4").tobytes()))

    array = read_idx(path)

    assert array.dtype == np.dtype("int32")  # native order, so arithmetic needs no byte swapping
    assert array.dtype.isnative
    np.testing.assert_array_equal(array, [1, -2, 70000])


def test_read_detects_gzip_from_content(tmp_path):
    data = idx_bytes(0x08, (4,), bytes([9, 8, 7, 6]))
    (tmp_path / "labels.gz").write_bytes(gzip.compress(data))
    (tmp_path / "labels-no-suffix").write_bytes(gzip.compress(data))

    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz"), [9, 8, 7, 6])
    np.testing.assert_array_equal(read_idx(tmp_path / "labels-no-suffix"), [9, 8, 7, 6])


def test_write_produces_the_standard_header(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((60000, 28, 28), dtype=np.uint8)[:2])

    data = path.read_bytes()

    assert data[:4] == bytes([0, 0, 0x08, 3])
    assert data[4:16] == b"\x00\x00\x00\x02" + b"\x00\x00\x00\x1c" * 2
    assert len(data) == 16 + 2 * 28 * 28


def test_write_gz_is_gzip_and_deterministic(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)

    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == idx_bytes(0x08, (10,), bytes(range(10)))


@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("name", ["data-idx", "data-idx.gz"])
def test_round_trip_every_type(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)

    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)

    assert back.dtype == np.dtype(dtype)
    assert back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # no clock on a busy machine
@given(
    array=hnp.arrays(
        dtype=st.sampled_from(IDX_DTYPES),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
        elements={"allow_nan": False},
    )
)
def test_round_trip_property(tmp_path_factory, array):
    path = tmp_path_factory.mktemp("idx") / "a-idx"
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == array.shape
    assert back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)


def test_write_accepts_big_endian_input(tmp_path):
    write_idx(tmp_path / "f", np.array([1.5, -2.0], dtype=">f4"))
    np.testing.assert_array_equal(read_idx(tmp_path / "f"), np.array([1.5, -2.0], dtype=np.float32))


@pytest.mark.parametrize(
    ("payload_len", "match"),
    [(5, r"truncated.*shape \(2, 3\).*6 bytes of data.*found 5 bytes"), (7, r"trailing bytes.*6 bytes.*found 7")],
)
def test_payload_length_must_match_dims(tmp_path, payload_len, match):
    path = tmp_path / "bad-idx"
    path.write_bytes(idx_bytes(0x08, (2, 3), bytes(payload_len)))
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_multibyte_payload(tmp_path):
    path = tmp_path / "f-idx"
    path.write_bytes(idx_bytes(0x0D, (2,), bytes(7)))  # two float32 need 8 bytes
    with pytest.raises(DataError, match=r"float32 \(8 bytes of data\) but found 7"):
        read_idx(path)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00\x00", r"2 bytes long, too short"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x00", r"not an IDX file.*two zero bytes, found 01 00 08 01"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x00", r"unknown IDX type code 0x0A"),
        (b"\x00\x00\x08\x00", r"0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", r"3 dimensions.*16 header bytes.*only 8 bytes"),
        (b"\x1f\x8b\x08\x00garbage", r"gzip-compressed but could not be decompressed"),
    ],
)
def test_malformed_headers(tmp_path, data, match):
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(DataError, match=match):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="no such IDX file"):
        read_idx(tmp_path / "absent-idx3-ubyte")
    # DataNotFoundError is also a FileNotFoundError, for callers that catch the built-in.
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent-idx3-ubyte")


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array([True, False]), r"dtype bool.*uint8, int8, int16, int32, float32, float64"),
        (np.array([1, 2], dtype=np.int64), r"dtype int64, which IDX cannot store"),
        (np.array([1j]), r"dtype complex128"),
        (np.array(3, dtype=np.uint8), r"0 dimensions; IDX stores 1 to 255"),
    ],
)
def test_write_refuses_what_idx_cannot_store(tmp_path, array, match):
    with pytest.raises(DataError, match=match):
        write_idx(tmp_path / "out", array)
    assert not (tmp_path / "out").exists()
