"""Images for models that do not take digits: :func:`fit_image` (scale to cover, keep the aspect ratio, cut the
centre), :func:`convert_channels`, :func:`preprocess_image`, and ``convnp predict`` on such models, grey files for
colour models and colour files for grey ones, answering with the checkpoint's class names.

Each ``convnp predict`` answer is checked against probabilities computed here by hand (a Flatten + Dense model:
standardise, one matrix product, softmax) from pixels prepared here step by step.
"""

import json

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image, ImageDraw  # noqa: E402

from convnp.checkpoint import save_checkpoint  # noqa: E402
from convnp.cli.main import main  # noqa: E402
from convnp.data.image_files import convert_channels, fit_image, read_image  # noqa: E402
from convnp.data.images import load_images, preprocess_image  # noqa: E402
from convnp.data.transforms import Standardize  # noqa: E402
from convnp.inference import Classifier  # noqa: E402
from convnp.layers import Dense, Flatten  # noqa: E402
from convnp.sequential import Sequential  # noqa: E402

RED, GREEN, BLUE = (230, 10, 10), (10, 230, 10), (10, 10, 230)


def bands(height: int, width: int) -> np.ndarray:
    """A wide picture `(height, width, 3)` uint8: red, green and blue vertical bands, a third of the width each."""
    x = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    x[:, :third], x[:, third : 2 * third], x[:, 2 * third :] = RED, GREEN, BLUE
    return x


def disk(height: int, width: int, radius: float) -> np.ndarray:
    """A white disk of ``radius`` centred on a black `(height, width)` uint8 picture."""
    rows, cols = np.mgrid[:height, :width]
    inside = (rows + 0.5 - height / 2) ** 2 + (cols + 0.5 - width / 2) ** 2 <= radius**2
    return np.where(inside, 255, 0).astype(np.uint8)


def extent(grey: np.ndarray) -> tuple[int, int]:
    """Rows and columns spanned by the pixels brighter than mid-grey."""
    rows, cols = np.flatnonzero((grey > 127).any(axis=1)), np.flatnonzero((grey > 127).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


# ---- fit_image -------------------------------------------------------------------------------------------------------
def test_a_wide_image_is_centre_cropped_not_squashed():
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 256, (10, 30, 3), dtype=np.uint8)
    # Already as tall as the output: the scale is 1 and the output is exactly the middle 10 columns.
    np.testing.assert_array_equal(fit_image(pattern, (10, 10)), pattern[:, 10:20])
    np.testing.assert_array_equal(fit_image(pattern.transpose(1, 0, 2), (10, 10)), pattern[:, 10:20].transpose(1, 0, 2))
    # Shrunk 4 times: only the green middle band is left (the edge columns see a little of their neighbours through
    # the antialiasing filter); squashing would have kept all three bands.
    out = fit_image(bands(40, 120), (10, 10))
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 1:9], np.broadcast_to(GREEN, (10, 8, 3)))
    squashed = np.asarray(Image.fromarray(bands(40, 120)).resize((10, 10), Image.Resampling.BILINEAR))
    assert (squashed[:, 0] == RED).all() and (squashed[:, -1] == BLUE).all()  # what fit_image does not do


def test_it_is_torchvision_resize_then_center_crop():
    """Resizing the shorter side to the output's and cutting the middle (Pillow's resize, then a crop) gives the
    same pixels up to the one grey level of rounding that fit_image's unrounded intermediate size saves."""
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (60, 150, 3), dtype=np.uint8)  # resized to 24x60, whose middle is 24x24
    resized = np.asarray(Image.fromarray(picture).resize((60, 24), Image.Resampling.BILINEAR))
    reference = resized[:, 18:42]
    out = fit_image(picture, (24, 24))
    assert np.abs(out.astype(int) - reference).max() <= 1


@pytest.mark.parametrize("shape, size", [((100, 200), (32, 32)), ((200, 100), (32, 32)), ((90, 90), (16, 48)),
                                         ((40, 300), (20, 30))])
def test_the_aspect_ratio_is_kept(shape, size):
    """A disk stays a disk, whatever the picture's and the output's shapes."""
    scale = max(size[0] / shape[0], size[1] / shape[1])
    radius = 0.4 * min(size) / scale  # inside the part of the picture that is kept
    out = fit_image(disk(*shape, radius), size)
    assert out.shape == size
    height, width = extent(out)
    assert abs(height - width) <= 1 and abs(height - 2 * radius * scale) <= 2, (height, width, 2 * radius * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_images_keep_their_dtype_and_range(dtype):
    rng = np.random.default_rng(2)
    picture = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    as_float = picture.astype(dtype) / 255  # floats in [0, 1]
    out = fit_image(as_float, (16, 20))
    assert out.dtype == dtype and out.shape == (16, 20, 3)
    assert as_float.min() <= out.min() and out.max() <= as_float.max()
    # The same resampling as for uint8, which only rounds it.
    np.testing.assert_array_equal(np.clip(np.rint(out.astype(np.float64) * 255), 0, 255), fit_image(picture, (16, 20)))
    # Grey (h, w) comes back (H, W), and an image of the output's size as a copy of itself.
    assert fit_image(picture[..., 0], (5, 7)).shape == (5, 7)
    same = fit_image(picture, (37, 53))
    np.testing.assert_array_equal(same, picture)
    assert same is not picture


def test_upscaling_a_tiny_image():
    out = fit_image(np.array([[[0], [255]]], np.uint8), (4, 4))  # 1x2 -> 4x4: the middle of the 4x8 enlargement
    assert out.shape == (4, 4, 1) and out[:, 0, 0].tolist() == [out[0, 0, 0]] * 4 and out[0, 0, 0] < out[0, 3, 0]


@pytest.mark.parametrize("image, size, error, match", [
    (np.zeros((4, 4, 3), np.uint8), (0, 4), ValueError, r"size must be two positive integers \(height, width\), got"),
    (np.zeros((4, 4, 3), np.uint8), 8, ValueError, r"size must be \(height, width\), got 8"),
    (np.zeros((4, 4, 3), np.uint8), (2.5, 4), ValueError, "size must be two positive integers"),
    (np.zeros((0, 4, 3), np.uint8), (2, 2), ValueError, r"image must have shape \(h, w, C\) or \(h, w\), non-empty, "
                                                        r"got shape \(0, 4, 3\)"),
    (np.zeros((2, 4, 4, 3), np.uint8), (2, 2), ValueError, r"image must have shape .* got shape \(2, 4, 4, 3\)"),
    (np.zeros((4, 4, 3), np.int64), (2, 2), TypeError, "image must be uint8 or float, got dtype int64"),
    (np.full((4, 4), np.nan), (2, 2), ValueError, "image holds NaN or infinite values"),
])
def test_fit_image_names_what_is_wrong(image, size, error, match):
    with pytest.raises(error, match=f"fit_image: {match}"):
        fit_image(image, size)


def test_convert_channels():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)  # (1, 4, 3)
    grey = convert_channels(rgb, 1)
    assert grey.shape == (1, 4, 1)
    luma = [0.299 * 255, 0.587 * 255, 0.114 * 255, 0.299 * 10 + 0.587 * 20 + 0.114 * 30]
    np.testing.assert_allclose(grey[0, :, 0], luma)
    # Pillow's own conversion agrees, to its rounding.
    pillow = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)
    assert np.abs(grey[..., 0] - pillow).max() <= 0.5
    back = convert_channels(np.array([[7, 9]], np.uint8), 3)
    assert back.shape == (1, 2, 3) and back.dtype == np.uint8 and back[0].tolist() == [[7, 7, 7], [9, 9, 9]]
    assert convert_channels(rgb, 3) is rgb
    with pytest.raises(ValueError, match="convert_channels: channels must be 1 \\(grey\\) or 3 \\(RGB\\), got 2"):
        convert_channels(rgb, 2)
    with pytest.raises(ValueError, match=r"convert_channels: image must have shape .* got \(1, 4, 4\)"):
        convert_channels(np.zeros((1, 4, 4)), 3)


def test_preprocess_image_steps(tmp_path):
    """Channels, rounding to uint8, then fit_image; load_images is the same on a file."""
    rng = np.random.default_rng(3)
    picture = rng.uniform(0, 255, (30, 50, 3))
    out = preprocess_image(picture, (12, 12, 1))
    expected = fit_image(np.clip(np.rint(convert_channels(picture, 1)), 0, 255).astype(np.uint8), (12, 12))
    assert out.dtype == np.float32 and out.shape == (12, 12, 1)
    np.testing.assert_array_equal(out, expected)
    Image.fromarray(np.rint(picture).astype(np.uint8)).save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_images([tmp_path / "p.png"], (12, 12, 3))[0],
                                  preprocess_image(read_image(tmp_path / "p.png", rgb=True), (12, 12, 3)))
    assert load_images([], (12, 12, 3)).shape == (0, 12, 12, 3)
    with pytest.raises(ValueError, match=r"preprocess_image: expected a model input \(H, W, C\) with 1 \(grey\) or "
                                         r"3 \(RGB\) channels, got shape \(12, 12, 4\)"):
        preprocess_image(picture, (12, 12, 4))


# ---- convnp predict on models that do not take digits ---------------------------------------------------------------
def dense_checkpoint(path, input_shape, classes):
    """A Flatten + Dense checkpoint of ``input_shape`` naming ``classes``; its standardisation is per channel."""
    H, W, C = input_shape
    model = Sequential([Flatten(), Dense(H * W * C, len(classes), rng=np.random.default_rng(4))],
                       input_shape=input_shape)
    standardize = Standardize(1 / 255, [0.5, 0.4, 0.3][:C], [0.25, 0.2, 0.3][:C])
    return save_checkpoint(path, model, meta={"classes": classes, "preprocessing": standardize.to_dict()}), model


def by_hand(model, standardize, pixels: np.ndarray) -> np.ndarray:
    """Softmax of the Dense layer on standardised pixels `(H, W, C)` 0..255, in float64: `(K,)`."""
    mean, std = np.array(standardize["mean"]), np.array(standardize["std"])
    x = ((pixels / 255.0 - mean) / std).reshape(1, -1)
    dense = model.layers[1]
    logits = x @ dense.params["weight"].astype(np.float64) + dense.params["bias"].astype(np.float64)
    e = np.exp(logits - logits.max())
    return (e / e.sum())[0]


def predict_json(capsys, *argv) -> list[dict]:
    assert main(["predict", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


NAMES = ["apple", "bus", "cat", "dog", "eel", "fern", "gull"]


@pytest.mark.parametrize("file_mode, channels", [("L", 3), ("RGB", 1), ("RGB", 3), ("L", 1)])
def test_predict_converts_channels_and_fits_the_size(tmp_path, capsys, file_mode, channels):
    """Grey files for a colour model, colour files for a grey model: the answer is the model's for the file's
    pixels converted, rounded, scaled to cover 12x16 and centre-cropped, computed here step by step."""
    path, model = dense_checkpoint(tmp_path / "m.npz", (12, 16, channels), NAMES)
    rng = np.random.default_rng(5)
    shape = (40, 90, 3) if file_mode == "RGB" else (40, 90)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    if file_mode == "RGB" and channels == 1:
        by_step = np.rint(pixels @ [0.299, 0.587, 0.114])[..., None]  # BT.601 luma, rounded to whole grey levels
    elif file_mode == "L" and channels == 3:
        by_step = np.repeat(pixels[..., None], 3, axis=2)  # grey in each channel
    else:
        by_step = pixels if pixels.ndim == 3 else pixels[..., None]
    prepared = fit_image(by_step.astype(np.uint8), (12, 16))  # scaled to 12x27, its middle 16 columns kept
    assert prepared.shape == (12, 16, channels)
    expected = by_hand(model, Standardize(1 / 255, [0.5, 0.4, 0.3][:channels], [0.25, 0.2, 0.3][:channels]).to_dict(),
                       prepared.astype(np.float64))
    (result,) = predict_json(capsys, path, tmp_path / "wide.png", "--top", "5")
    np.testing.assert_allclose(result["probabilities"], expected, atol=1e-5)
    label = int(np.argmax(expected))
    assert result["label"] == label and result["class"] == NAMES[label]
    order = np.argsort(-expected, kind="stable")[:5]
    assert [k for k, _ in result["top"]] == order.tolist()
    assert result["top_classes"] == [NAMES[k] for k in order]


def test_predict_shows_the_same_answer_as_the_classifier_and_names_in_text(tmp_path, capsys):
    """The text output names the classes too; Classifier.classify_files is what it prints."""
    path, _ = dense_checkpoint(tmp_path / "m.npz", (8, 8, 3), NAMES[:4])
    Image.fromarray(bands(30, 60)).save(tmp_path / "bands.png")
    assert main(["predict", str(path), str(tmp_path / "bands.png"), "--top", "2"]) == 0
    line = capsys.readouterr().out.strip()
    (answer,) = Classifier.from_checkpoint(path).classify_files([tmp_path / "bands.png"], k=2)
    first, second = (NAMES[k] for k, _ in answer.top)
    assert line == (f"{tmp_path / 'bands.png'}: {first}  (p={answer.top[0][1]:.3f})  {first}: {answer.top[0][1]:.3f}  "
                    f"{second}: {answer.top[1][1]:.3f}")


def test_a_wide_photo_is_cropped_for_the_model_not_squashed(tmp_path):
    """What the model is given for a wide file of three bands is the green middle, not the three bands squashed."""
    path, _ = dense_checkpoint(tmp_path / "m.npz", (10, 10, 3), NAMES[:3])
    Image.fromarray(bands(40, 120)).save(tmp_path / "bands.png")
    pixels = Classifier.from_checkpoint(path).read_images([tmp_path / "bands.png"])  # (1, 10, 10, 3)
    assert pixels.shape == (1, 10, 10, 3) and pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels[0, :, 1:9], np.broadcast_to(np.float32(GREEN), (10, 8, 3)))


def test_an_alpha_drawing_and_a_jpeg_still_work(tmp_path, capsys):
    """Files with transparency and lossy files are read as predict reads any: every answer names a class."""
    path, _ = dense_checkpoint(tmp_path / "m.npz", (16, 16, 3), NAMES)
    img = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((16, 4, 40, 28), fill=(200, 30, 30, 255))
    img.save(tmp_path / "a.png")
    img.convert("RGB").save(tmp_path / "a.jpg", quality=90)
    results = predict_json(capsys, path, tmp_path / "a.png", tmp_path / "a.jpg")
    assert [r["class"] for r in results] == [NAMES[r["label"]] for r in results]
    assert all(abs(sum(r["probabilities"]) - 1) < 1e-6 for r in results)
