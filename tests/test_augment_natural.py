"""Augmentation for photos: random crop with padding, horizontal flip, brightness/contrast jitter, their settings and
flags, and a resumed colour run that gives the same bits as an uninterrupted one."""

import io
import json
import re

import numpy as np
import pytest
from helpers import run_weights, same_arrays, without_time

from convnp.checkpoint import load_checkpoint
from convnp.cli.main import main
from convnp.data.augment import Augment, Chain, NaturalAugment, color_jitter, random_crop, random_hflip
from convnp.data.transforms import Standardize
from convnp.models import MODELS
from convnp.train import Callback
from convnp.train.config import TrainConfig
from convnp.train.run import make_augment, train_run


def _batch(n=6, h=5, w=7, c=3, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(dtype)


def _state(rng):
    return json.dumps(rng.bit_generator.state, sort_keys=True)


# ------------------------------------------------------------------------------------------------------------------
# The transforms
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_crop_with_padding_is_the_shifted_window_with_the_fill(dtype):
    x = _batch(n=8, dtype=dtype)
    fill = [-1.5, 2.0, 7.0]
    out = random_crop(x, np.random.default_rng(3), padding=2, fill=fill)
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = np.random.default_rng(3).integers(0, 5, size=(8, 2))  # the very draw the crop makes
    for n, (top, left) in enumerate(offsets):
        padded = np.empty((5 + 4, 7 + 4, 3), dtype)
        padded[...] = np.asarray(fill, dtype)
        padded[2:7, 2:9] = x[n]
        np.testing.assert_array_equal(out[n], padded[top:top + 5, left:left + 7])
    assert len({tuple(o) for o in offsets}) > 1  # the images got different offsets


def test_crop_of_one_known_image():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)

    class Fixed(np.random.Generator):  # an offset of (0, 2): content moves down 1 and left 1
        def integers(self, low, high, size):
            return np.array([[0, 2]])

    out = random_crop(x, Fixed(np.random.PCG64(0)), padding=1, fill=0.0)
    np.testing.assert_array_equal(out[0, :, :, 0], [[0, 0, 0], [2, 3, 0], [5, 6, 0]])


def test_flip_is_an_exact_mirror_of_about_half_the_images():
    x = _batch(n=64)
    out = random_hflip(x, np.random.default_rng(1))
    flipped = np.random.default_rng(1).random(64) < 0.5
    assert 16 < flipped.sum() < 48
    np.testing.assert_array_equal(out[flipped], x[flipped][:, :, ::-1])
    np.testing.assert_array_equal(out[~flipped], x[~flipped])
    assert out.dtype == x.dtype and out.shape == x.shape
    np.testing.assert_array_equal(random_hflip(x, np.random.default_rng(1), p=1.0), x[:, :, ::-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jitter_is_a_per_channel_affine_map_around_each_images_mean(dtype):
    x = _batch(n=10, c=3, dtype=dtype)
    unit = [0.5, 1.0, 2.0]
    out = color_jitter(x, np.random.default_rng(2), brightness=0.4, contrast=0.3, unit=unit)
    assert out.shape == x.shape and out.dtype == x.dtype
    draws = np.random.default_rng(2)
    c = draws.uniform(0.7, 1.3, size=10)
    b = draws.uniform(-0.4, 0.4, size=10)
    mean = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    expected = c[:, None, None, None] * (x - mean) + mean + (b[:, None] * np.asarray(unit))[:, None, None, :]
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, atol=tolerance)
    # Per image and channel, out = a x + d with one a per image: fit and check.
    for n in range(10):
        for ch in range(3):
            a, d = np.polyfit(x[n, :, :, ch].ravel(), out[n, :, :, ch].ravel(), 1)
            assert abs(a - c[n]) < 1e-4 and np.allclose(a * x[n, :, :, ch] + d, out[n, :, :, ch], atol=1e-4)
    # The contrast keeps each image's channel means; the brightness moves them by b * unit.
    np.testing.assert_allclose(out.mean(axis=(1, 2)) - mean[:, 0, 0], b[:, None] * np.asarray(unit), atol=1e-5)


def test_jitter_commutes_with_standardisation():
    """Contrast about the image's own mean is the same map on raw and standardised images (documented)."""
    raw = np.random.default_rng(5).random((4, 6, 6, 3))
    std = Standardize(1.0, [0.2, 0.5, 0.7], [0.1, 0.3, 2.0])
    unit = [1 / s for s in std.std]
    via_raw = std(color_jitter(raw, np.random.default_rng(9), brightness=0.3, contrast=0.5), np.float64)
    via_std = color_jitter(std(raw, np.float64), np.random.default_rng(9), brightness=0.3, contrast=0.5, unit=unit)
    np.testing.assert_allclose(via_std, via_raw, atol=1e-12)


def test_grey_batches_and_nothing_is_flipped_unless_asked():
    x = _batch(n=16, c=1)
    rng = np.random.default_rng(0)
    out = NaturalAugment(crop_padding=0, brightness=0.0, contrast=0.0)(x, rng)
    np.testing.assert_array_equal(out, x)
    assert out is not x
    out = NaturalAugment(brightness=0.2, contrast=0.2)(x, rng)  # jitter only: no image comes back mirrored
    for n in range(16):
        mirrored = x[n, :, ::-1]
        assert np.corrcoef(out[n].ravel(), x[n].ravel())[0, 1] > 0.999
        assert np.corrcoef(out[n].ravel(), mirrored.ravel())[0, 1] < 0.9
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize(
    "settings, draws",
    [
        (dict(), False),
        (dict(crop_padding=2), True),
        (dict(hflip=True), True),
        (dict(brightness=0.1), True),
        (dict(contrast=0.1), True),
    ],
)
def test_the_generator_advances_only_when_a_transform_is_on(settings, draws):
    rng = np.random.default_rng(4)
    before = _state(rng)
    NaturalAugment(**settings)(_batch(), rng)
    assert (_state(rng) != before) is draws


def test_the_parts_draw_in_order_crop_flip_jitter():
    x = _batch(n=12)
    out = NaturalAugment(crop_padding=1, hflip=True, brightness=0.2, contrast=0.1, fill=[0.0, 1.0, 2.0])(
        x, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    expected = random_crop(x, rng, padding=1, fill=[0.0, 1.0, 2.0])
    expected = random_hflip(expected, rng)
    expected = color_jitter(expected, rng, brightness=0.2, contrast=0.1)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: random_crop(_batch(), np.random.default_rng(0), padding=-1), "padding must be an integer >= 0"),
        (lambda: random_crop(_batch(), np.random.default_rng(0), padding=1, fill=[0, 1]), "fill must be"),
        (lambda: random_hflip(_batch(), np.random.default_rng(0), p=1.5), r"p must be a probability in \[0, 1\]"),
        (lambda: color_jitter(_batch(), np.random.default_rng(0), brightness=1.5), r"brightness must be in \[0, 1\]"),
        (lambda: color_jitter(_batch(), np.random.default_rng(0), contrast=-0.1), r"contrast must be in \[0, 1\]"),
        (lambda: NaturalAugment(crop_padding=1.5), "crop_padding must be an integer >= 0"),
        (lambda: random_hflip(_batch(), 0), "rng must be a numpy.random.Generator"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_config_round_trip_and_chain():
    augment = NaturalAugment(crop_padding=4, hflip=True, brightness=0.2, contrast=0.3, fill=[0.1, 0.2, 0.3])
    again = NaturalAugment.from_config(json.loads(json.dumps(augment.get_config())))
    assert again.get_config() == augment.get_config()
    chain = Chain(Augment(max_shift=1.0), augment)
    config = json.loads(json.dumps(chain.get_config()))
    assert [t["type"] for t in config["chain"]] == ["Augment", "NaturalAugment"]
    x = _batch(n=4, h=8, w=8)
    rng = np.random.default_rng(0)
    expected = augment(Augment(max_shift=1.0)(x, rng), rng)
    np.testing.assert_array_equal(chain(x, np.random.default_rng(0)), expected)


# ------------------------------------------------------------------------------------------------------------------
# Settings and make_augment
# ------------------------------------------------------------------------------------------------------------------


def test_make_augment_keeps_digits_as_they_were_and_fills_per_channel():
    std = Standardize(1 / 255, [0.1, 0.5, 0.9], [0.2, 0.25, 0.5])
    assert make_augment(TrainConfig(), std, np.float32) is None
    digits = make_augment(TrainConfig(augment=True), std, np.float32)
    assert type(digits) is Augment  # --augment alone: exactly today's object
    photos = make_augment(TrainConfig(crop_padding=2, hflip=True, brightness=0.5), std, np.float32)
    assert type(photos) is NaturalAugment
    np.testing.assert_allclose(photos.fill, [-0.5, -2.0, -1.8], rtol=1e-6)
    np.testing.assert_allclose(photos.brightness_unit, [5.0, 4.0, 2.0])
    both = make_augment(TrainConfig(augment=True, contrast=0.1), std, np.float32)
    assert type(both) is Chain and [type(t) for t in both.transforms] == [Augment, NaturalAugment]
    assert not TrainConfig().augmenting and TrainConfig(hflip=True).augmenting and TrainConfig(augment=True).augmenting


@pytest.mark.parametrize("model", sorted(MODELS))
def test_no_recipe_and_no_default_flips_or_recolours(model):
    """Digits keep today's default: every zoo model's recipe leaves the photo transforms off."""
    config = TrainConfig.resolve(model=model)
    assert config.natural_augment_settings is None and config.hflip is False
    assert make_augment(config, Standardize(1 / 255, [0.13], [0.31]), np.float32).__class__ in (Augment, type(None))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(crop_padding=-1), "crop_padding must be an integer >= 0"),
        (dict(hflip=1), "hflip must be True or False"),
        (dict(brightness=1.5), r"brightness must be a number in \[0, 1\]"),
        (dict(contrast=-0.5), r"contrast must be a number in \[0, 1\]"),
    ],
)
def test_train_config_refuses_bad_settings(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--crop-padding", "-2"], "argument --crop-padding: expected an integer >= 0, got '-2'"),
        (["--brightness", "1.5"], r"argument --brightness: expected a number in \[0, 1\], got '1.5'"),
        (["--contrast", "-0.1"], r"argument --contrast: expected a number in \[0, 1\], got '-0.1'"),
        (["--contrast", "lots"], r"argument --contrast: expected a number in \[0, 1\], got 'lots'"),
        (["--crop-padding", "1.5"], "argument --crop-padding: expected an integer >= 0, got '1.5'"),
    ],
)
def test_cli_bad_values_exit_2_naming_the_flag(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["train", *argv, "--out", str(tmp_path / "r")])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("convnp train: error: ") and re.search(message, last), last
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------------------------
# Whole runs on a small colour data set
# ------------------------------------------------------------------------------------------------------------------


def _colour_npz(path):
    """3 classes of 16x16 colour images: a bright square in one of three colours, at a random place."""
    rng = np.random.default_rng(0)
    n = 180
    y = np.arange(n) % 3
    x = rng.integers(0, 60, size=(n, 16, 16, 3)).astype(np.uint8)
    for i, (top, left) in enumerate(rng.integers(0, 10, size=(n, 2))):
        x[i, top:top + 6, left:left + 6, y[i]] = 230
    np.savez(path, x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:])
    return path


FLAGS = ["--crop-padding", "2", "--hflip", "--brightness", "0.2", "--contrast", "0.3"]


def test_cli_colour_run_stopped_after_epoch_1_and_resumed_gives_the_same_bits(tmp_path, capsys):
    data = _colour_npz(tmp_path / "rgb.npz")
    common = ["train", "--data", str(data), "--model", "sprint", "--batch-size", "30", "--val-split", "0.2",
              "--schedule", "constant", "--no-report", *FLAGS]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main([*common, "--epochs", "2", "--out", str(whole)]) == 0
    assert "NaturalAugment(crop_padding=2, hflip=True, brightness=0.2, contrast=0.3)" in capsys.readouterr().out
    assert main([*common, "--epochs", "1", "--out", str(parts)]) == 0
    checkpoint = load_checkpoint(parts / "last.npz")
    assert checkpoint.meta["epoch"] == 1 and "augment_rng_state" in checkpoint.meta
    assert checkpoint.meta["augment"]["crop_padding"] == 2 and len(checkpoint.meta["augment"]["fill"]) == 3
    assert not same_arrays(run_weights(whole), run_weights(parts))
    assert main(["train", "--resume", str(parts), "--epochs", "2", "--no-report"]) == 0
    assert load_checkpoint(parts / "last.npz").meta["epoch"] == 2
    assert same_arrays(run_weights(whole), run_weights(parts))
    settings = json.loads((parts / "config.json").read_text())["settings"]
    assert (settings["crop_padding"], settings["hflip"], settings["brightness"], settings["contrast"]) == (
        2, True, 0.2, 0.3)
    plain = tmp_path / "plain"
    assert main([*common[:-len(FLAGS)], "--epochs", "1", "--out", str(plain)]) == 0
    assert not same_arrays(run_weights(plain), run_weights(parts))  # the flags did change the batches


def test_resume_mid_run_matches_uninterrupted_with_both_augmentations(tmp_path):
    """--augment and the photo transforms together, a cosine schedule, stopped after epoch 1 of 2 and resumed."""
    data = _colour_npz(tmp_path / "rgb.npz")
    settings = dict(data=str(data), model="sprint", batch_size=30, val_split=0.2, epochs=2, augment=True,
                    max_shift=1.0, crop_padding=2, hflip=True, brightness=0.1, contrast=0.2)
    whole = train_run(TrainConfig(**settings), tmp_path / "whole", stream=io.StringIO())

    class Crash(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 0:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(TrainConfig(**settings), tmp_path / "stopped", stream=io.StringIO(), callbacks=[Crash()])
    resumed = train_run(None, tmp_path / "stopped", resume=True, stream=io.StringIO())
    assert same_arrays(run_weights(whole.run_dir), run_weights(tmp_path / "stopped"))
    assert without_time(resumed.history) == without_time(whole.history)
