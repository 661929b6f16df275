"""convnp.viz: every plot renders a real PNG from a tiny training run, honours ax=, refuses bad input; the HTML
report and ``convnp plot`` hold what they promise."""

import base64
import html.parser
import io
import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

from convnp.checkpoint import load_checkpoint  # noqa: E402
from convnp.cli.main import main  # noqa: E402
from convnp.viz import (  # noqa: E402
    ReportCallback,
    conv_activations,
    most_confident_mistakes,
    plot_confusion,
    plot_curves,
    plot_feature_maps,
    plot_filters,
    plot_mistakes,
    read_metrics,
    write_report,
)
from convnp.viz._common import figure_png, new_figure  # noqa: E402

pytestmark = pytest.mark.mnist  # the module's fixtures train a tiny run on real MNIST

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(data: bytes, min_side: int = 150) -> Image.Image:
    assert data[:8] == PNG_SIGNATURE
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    assert min_side <= min(image.size) and max(image.size) <= 4000, image.size
    return image


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mnist):
    from convnp.train.config import TrainConfig
    from convnp.train.run import train_run

    folder = tmp_path_factory.mktemp("viz") / "run"
    train_run(TrainConfig(limit=600, epochs=2, val_split=0.2), folder, stream=io.StringIO())
    return folder


@pytest.fixture(scope="module")
def checkpoint(run_dir):
    return load_checkpoint(run_dir)


@pytest.fixture(scope="module")
def report(run_dir):
    return write_report(run_dir)


def test_read_metrics_matches_the_history(run_dir, checkpoint):
    rows = read_metrics(run_dir / "metrics.csv")
    assert [row["epoch"] for row in rows] == [1, 2]
    for row, logs in zip(rows, checkpoint.meta["history"]):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert row[key] == pytest.approx(logs[key], rel=1e-5)
    assert read_metrics(run_dir) == rows  # a run folder works too


# ---- each plot renders a PNG ---------------------------------------------------------------------------------------

def test_curves_png(run_dir, checkpoint):
    check_png(figure_png(plot_curves(read_metrics(run_dir))))
    check_png(figure_png(plot_curves(checkpoint.meta["history"])))  # a History (list of epoch dicts) too


def test_filters_png(checkpoint):
    weight = checkpoint.model.layers[0].params["weight"]
    assert weight.shape == (3, 3, 1, 8)
    check_png(figure_png(plot_filters(weight)))


def test_feature_maps_png_and_activations(checkpoint, mnist):
    x = checkpoint.prepare(mnist[2][:2, :, :, None])  # (2, 28, 28, 1)
    activations = conv_activations(checkpoint.model, x)
    assert [name for name, _ in activations] == [f"layer 0: {checkpoint.model.layers[0]!r}"]
    maps = activations[0][1]
    assert maps.shape == (2, 26, 26, 8)
    # They are the first layer's output as the model computes it.
    np.testing.assert_array_equal(maps, checkpoint.model.layers[0].forward(x))
    check_png(figure_png(plot_feature_maps(checkpoint.model, x[0])))


def test_confusion_png():
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    check_png(figure_png(plot_confusion(matrix, labels=["a", "b", "c"])))


def test_mistakes_png_and_selection(mnist):
    images, y_true = mnist[2][:50], mnist[3][:50].astype(np.int64)
    y_pred = y_true.copy()
    y_pred[[3, 10, 20]] = (y_true[[3, 10, 20]] + 1) % 10
    confidence = np.full(50, 0.5)
    confidence[[3, 10, 20]] = [0.6, 0.9, 0.7]
    np.testing.assert_array_equal(most_confident_mistakes(y_true, y_pred, confidence, n=2), [10, 20])
    check_png(figure_png(plot_mistakes(images, y_true, y_pred, confidence, n=16)))
    # No mistakes: still a figure, saying so.
    fig = plot_mistakes(images, y_true, y_true, confidence)
    assert "no mistakes" in " ".join(t.get_text() for t in fig.axes[0].texts)
    check_png(figure_png(fig), min_side=50)


# ---- each plot shows its data ------------------------------------------------------------------------------------
# A valid PNG could be a blank one: these read the numbers back out of the matplotlib artists.
def _find_tile(mosaic: np.ndarray, tile: np.ndarray) -> list[tuple[int, int]]:
    """Every top-left position where ``tile`` appears exactly in ``mosaic`` (2-D, or 3-D with colour last)."""
    h, w = tile.shape[:2]
    return [(y, x) for y in range(mosaic.shape[0] - h + 1) for x in range(mosaic.shape[1] - w + 1)
            if np.array_equal(mosaic[y : y + h, x : x + w], tile)]


def _shown(ax) -> np.ndarray:
    """The array an Axes' (single) image displays, masked entries as NaN."""
    (image,) = ax.images
    return np.ma.filled(np.ma.asarray(image.get_array(), dtype=np.float64), np.nan)


def test_curves_plot_the_history(checkpoint):
    history = checkpoint.meta["history"]
    fig = plot_curves(history)
    lines = {line.get_label(): line for a in fig.axes for line in a.get_lines()}
    expected = {"training loss": [h["loss"] for h in history], "validation loss": [h["val_loss"] for h in history],
                "training accuracy": [100 * h["accuracy"] for h in history],
                "validation accuracy": [100 * h["val_accuracy"] for h in history]}
    assert set(lines) == set(expected)
    for label, values in expected.items():
        np.testing.assert_array_equal(lines[label].get_xdata(), [1, 2], err_msg=label)
        np.testing.assert_allclose(lines[label].get_ydata(), values, rtol=1e-12, err_msg=label)


def test_filters_plot_shows_every_kernel_on_a_scale_symmetric_about_zero(checkpoint):
    weight = checkpoint.model.layers[0].params["weight"].astype(np.float64)  # (3, 3, 1, 8)
    fig = plot_filters(weight)
    mosaic = _shown(fig.axes[0])
    for k in range(8):
        assert len(_find_tile(mosaic, weight[:, :, 0, k])) == 1, f"kernel {k} is not shown once"
    assert np.isfinite(mosaic).sum() == weight.size  # nothing else is drawn: the gaps are blank
    norm = fig.axes[0].images[0].norm
    assert -norm.vmin == norm.vmax == np.abs(weight).max()


def test_feature_maps_plot_shows_the_first_layers_output(checkpoint, mnist):
    x = checkpoint.prepare(mnist[2][:1, :, :, None])
    maps = checkpoint.model.layers[0].forward(x)[0].astype(np.float64)  # (26, 26, 8)
    fig = plot_feature_maps(checkpoint.model, x[0])
    np.testing.assert_array_equal(_shown(fig.axes[0]), x[0, :, :, 0])  # the input, left
    mosaic = _shown(fig.axes[1])
    for k in range(8):
        assert len(_find_tile(mosaic, maps[:, :, k])) == 1, f"map {k} is not shown once"
    assert np.isfinite(mosaic).sum() == maps.size


def test_confusion_plot_prints_every_count_and_colours_the_row_share():
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    fig = plot_confusion(matrix, labels=["a", "b", "c"])
    ax = fig.axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells == {(i, j): str(matrix[i, j]) for i in range(3) for j in range(3)}
    np.testing.assert_allclose(_shown(ax), matrix / matrix.sum(axis=1, keepdims=True), rtol=1e-15)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert "accuracy 84.00%" in ax.get_title()  # 21 of 25 on the diagonal


def test_mistakes_plot_shows_the_chosen_images_with_their_captions(mnist):
    images, y_true = mnist[2][:50], mnist[3][:50].astype(np.int64)
    y_pred = y_true.copy()
    y_pred[[3, 10, 20]] = (y_true[[3, 10, 20]] + 1) % 10
    confidence = np.full(50, 0.5)
    confidence[[3, 10, 20]] = [0.6, 0.9, 0.7]
    fig = plot_mistakes(images, y_true, y_pred, confidence, n=2)
    ax = fig.axes[0]
    captions = [t.get_text() for t in ax.texts]
    assert captions == [f"{y_true[i]} -> {y_pred[i]} ({c})" for i, c in [(10, "90%"), (20, "70%")]]
    mosaic = _shown(ax)  # RGB in [0, 1]
    for i in (10, 20):
        grey = images[i].astype(np.float64) / 255
        assert len(_find_tile(mosaic, np.repeat(grey[..., None], 3, axis=-1))) == 1, f"image {i} is not shown"
    assert not _find_tile(mosaic, np.repeat(images[3, ..., None].astype(np.float64) / 255, 3, axis=-1))


# ---- ax= is honoured ------------------------------------------------------------------------------------------------
def test_plots_draw_into_a_given_axes(run_dir, checkpoint, mnist):
    fig = new_figure((12, 8))
    axes = fig.subplots(2, 3).ravel()
    weight = checkpoint.model.layers[0].params["weight"]
    x = checkpoint.prepare(mnist[2][:1, :, :, None])
    y = np.array([1, 2, 3])
    assert plot_filters(weight, ax=axes[0]) is fig
    assert plot_confusion(np.eye(3, dtype=int), ax=axes[1]) is fig
    assert plot_mistakes(mnist[2][:3], y, y[::-1], np.ones(3), ax=axes[2]) is fig
    assert plot_feature_maps(checkpoint.model, x, ax=axes[3]) is fig
    assert plot_curves(read_metrics(run_dir), ax=axes[4]) is fig  # one Axes: accuracy on a twin axis
    assert plot_curves(read_metrics(run_dir), ax=(axes[5], axes[5])) is fig
    for a in axes:
        assert a.has_data() or a.images or a.lines
    check_png(figure_png(fig))


# ---- bad input ------------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(checkpoint):
    with pytest.raises(ValueError, match=r"plot_curves: the history is empty"):
        plot_curves([])
    with pytest.raises(ValueError, match=r"epoch 0 lacks \['accuracy'\]"):
        plot_curves([{"loss": 1.0}])
    with pytest.raises(ValueError, match=r"pair \(ax_loss, ax_accuracy\)"):
        plot_curves([{"loss": 1.0, "accuracy": 0.5}], ax=[None, None, None])
    with pytest.raises(ValueError, match=r"plot_filters: expected conv weights of shape \(kH, kW, C_in, C_out\)"):
        plot_filters(np.zeros((3, 3, 8)))
    with pytest.raises(ValueError, match=r"NaN or inf"):
        plot_filters(np.full((3, 3, 1, 2), np.nan))
    with pytest.raises(ValueError, match=r"plot_confusion: expected a square confusion matrix"):
        plot_confusion(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"plot_confusion: expected 2 labels"):
        plot_confusion(np.eye(2), labels=["a"])
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples .*\[4, 4, 3, 4\]"):
        plot_mistakes(np.zeros((4, 5, 5)), np.zeros(4, int), np.zeros(3, int), np.ones(4))
    with pytest.raises(ValueError, match=r"confidence must hold probabilities in \[0, 1\]"):
        plot_mistakes(np.zeros((2, 5, 5)), np.zeros(2, int), np.ones(2, int), np.array([0.5, 3.0]))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, H, W\)"):
        plot_mistakes(np.zeros((2, 5)), np.zeros(2, int), np.ones(2, int), np.ones(2))
    with pytest.raises(ValueError, match=r"expected prepared float input, got dtype uint8"):
        conv_activations(checkpoint.model, np.zeros((1, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match=r"expected one image of shape \(H, W, C\)"):
        plot_feature_maps(checkpoint.model, np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match=r"got 2 axes for 1 Conv2D layer"):
        fig = new_figure((4, 2))
        plot_feature_maps(checkpoint.model, np.zeros((28, 28, 1), np.float32), ax=list(fig.subplots(1, 2)))


def test_read_metrics_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no such metrics file"):
        read_metrics(tmp_path / "metrics.csv")
    (tmp_path / "metrics.csv").write_text("epoch,loss,accuracy\n1,abc,0.5\n")
    with pytest.raises(ValueError, match=r"line 2: loss must be a number, got 'abc'"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.csv").write_text("epoch,time\n1,2\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['loss', 'accuracy'\]"):
        read_metrics(tmp_path)


# ---- the HTML report ------------------------------------------------------------------------------------------------
class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.sections, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))

    def handle_data(self, data):
        self.text.append(data)


def test_report_is_self_contained_html(run_dir, report):
    assert report == run_dir / "report.html"
    document = report.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(document)
    parser.close()
    assert parser.sections == ["settings", "curves", "results", "filters", "feature_maps", "confusion", "mistakes"]
    assert len(parser.images) == 5
    for attrs in parser.images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix) and attrs.get("alt")
        check_png(base64.b64decode(attrs["src"][len(prefix):], validate=True))
    assert "src=\"http" not in document and "<link" not in document and "<script" not in document
    text = " ".join(parser.text)
    settings = json.loads((run_dir / "config.json").read_text())["settings"]
    for key in ("limit", "epochs", "val_split", "optimizer", "batch_size"):
        assert key in text
    assert str(settings["limit"]) in text and str(settings["optimizer"]) in text
    accuracy = json.loads((run_dir / "results.json").read_text())["test"]["accuracy"]
    assert "test accuracy" in text and f"{accuracy:.6g}" in text


def test_report_callback_writes_a_report(run_dir, tmp_path):
    out = tmp_path / "r.html"
    callback = ReportCallback(run_dir, out)
    callback.on_train_end({})
    assert callback.path == out and out.read_text().startswith("<!DOCTYPE html>")


def test_report_callback_without_matplotlib_logs_one_line(run_dir, tmp_path, monkeypatch, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    callback = ReportCallback(run_dir, tmp_path / "r.html")
    with caplog.at_level("WARNING"):
        callback.on_train_end({})
    assert callback.path is None and not (tmp_path / "r.html").exists()
    assert len(caplog.records) == 1 and "pip install 'convnp[plot]'" in caplog.records[0].getMessage()


# ---- the command line ------------------------------------------------------------------------------------------------
def test_cli_plot_writes_every_file(run_dir, tmp_path, capsys):
    out = tmp_path / "plots"
    assert main(["plot", str(run_dir), "--out", str(out), "--image", "-1"]) == 0
    printed = capsys.readouterr().out.split()
    names = ["curves.png", "filters.png", "feature_maps.png", "confusion.png", "mistakes.png", "report.html"]
    assert printed == [str(out / name) for name in names]
    for name in names[:-1]:
        check_png((out / name).read_bytes())
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_cli_plot_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a run folder (no config.json)" in err


def test_cli_plot_bad_image_index(run_dir, tmp_path, capsys):
    assert main(["plot", str(run_dir), "--out", str(tmp_path), "--image", "10000"]) == 1
    assert "image index 10000 is out of range" in capsys.readouterr().err


def test_cli_plot_without_matplotlib(run_dir, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["plot", str(run_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'convnp[plot]'" in err


# ---- colour models --------------------------------------------------------------------------------------------------
# Twelve classes named by strings, 16x16 colour images told apart by their colour: what a user's own photos give.
FRUITS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "guava", "kiwi", "lemon", "lime", "mango"]
TINY_COLOUR_NET = [{"type": "Conv2D", "out_channels": 8, "kernel_size": 3, "padding": "same"}, {"type": "ReLU"},
                   {"type": "MaxPool2D", "kernel_size": 2}, {"type": "Flatten"}, {"type": "Dense", "out_features": 12}]


def fruit_images(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N, 16, 16, 3)`` uint8: class ``k``'s own colour plus noise, for labels ``y`` of shape `(N,)`."""
    colours = np.array([[(k * 37) % 256, (k * 91) % 256, (k * 151) % 256] for k in range(12)], np.float64)  # (12, 3)
    return np.clip(colours[y][:, None, None, :] + rng.normal(0, 20, (len(y), 16, 16, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """A run folder: an architecture file trained one epoch through `convnp train` on a 12-class colour .npz with
    string labels (report.html written by the run itself)."""
    folder = tmp_path_factory.mktemp("colour")
    rng = np.random.default_rng(19)
    names = np.array(FRUITS)
    y, y_test = rng.integers(0, 12, 240), np.arange(48) % 12
    np.savez(folder / "fruit.npz", x=fruit_images(y, rng), y=names[y], x_test=fruit_images(y_test, rng),
             y_test=names[y_test])
    (folder / "net.json").write_text(json.dumps(TINY_COLOUR_NET))
    run = folder / "run"
    argv = ["train", "--data", str(folder / "fruit.npz"), "--model", str(folder / "net.json"), "--epochs", "1",
            "--threads", "1", "--out", str(run)]
    assert main(argv) == 0
    return run


def test_a_colour_filter_grid_is_rgb_with_each_kernels_channels_as_its_colours():
    from convnp.viz import filter_grid

    weight = np.zeros((3, 3, 3, 4))  # (kH, kW, C_in, C_out)
    weight[:, :, 0, 0] = 1.0  # kernel 0 weighs red only: a red tile
    weight[:, :, 2, 1] = -1.0  # kernel 1 weighs blue negatively: red and green are its highest weights, so yellow
    weight[:, :, :, 2] = np.arange(27).reshape(3, 3, 3)  # kernel 2: every weight different
    mosaic, columns = filter_grid(weight)
    assert columns == 2 and mosaic.shape == (7, 7, 3)
    np.testing.assert_array_equal(mosaic[0:3, 0:3], np.broadcast_to([1.0, 0.0, 0.0], (3, 3, 3)))
    np.testing.assert_array_equal(mosaic[0:3, 4:7], np.broadcast_to([1.0, 1.0, 0.0], (3, 3, 3)))
    tile2 = mosaic[4:7, 0:3]  # min-max over all 27 weights of kernel 2: w / 26
    np.testing.assert_allclose(tile2, np.arange(27).reshape(3, 3, 3) / 26, rtol=1e-15)
    assert not np.array_equal(tile2[..., 0], tile2[..., 1]) and not np.array_equal(tile2[..., 1], tile2[..., 2])
    np.testing.assert_array_equal(mosaic[4:7, 4:7], 0.5)  # kernel 3, all zero: mid-grey
    assert (mosaic[3] == 1.0).all() and (mosaic[:, 3] == 1.0).all()  # white gaps
    # rgb=False keeps the channels' mean, the drawing of models with other channel counts
    grey, _ = filter_grid(weight, rgb=False)
    assert grey.shape == (7, 7) and grey[0, 0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"rgb=True needs kernels over 3 input channels \(C_in = 3\), got C_in = 1"):
        filter_grid(np.zeros((3, 3, 1, 4)), rgb=True)


def test_grey_filters_keep_their_drawing(checkpoint):
    from convnp.viz import filter_grid

    weight = checkpoint.model.layers[0].params["weight"].astype(np.float64)  # (3, 3, 1, 8)
    mosaic, columns = filter_grid(weight)
    assert mosaic.ndim == 2 and columns == 3
    for k in range(8):
        r, c = divmod(k, columns)
        np.testing.assert_array_equal(mosaic[4 * r : 4 * r + 3, 4 * c : 4 * c + 3], weight[:, :, 0, k])
    fig = plot_filters(weight)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "weight"  # the plot and its colour bar
    assert fig.axes[0].images[0].get_cmap().name == "RdBu_r"


def test_colour_filters_plot_shows_the_rgb_mosaic_without_a_colour_bar():
    from convnp.viz import filter_grid

    weight = np.random.default_rng(3).standard_normal((5, 5, 3, 6))
    fig = plot_filters(weight)
    assert len(fig.axes) == 1 and "as RGB" in fig.axes[0].get_title()
    shown = np.asarray(fig.axes[0].images[0].get_array())
    assert shown.shape[-1] == 3
    np.testing.assert_array_equal(shown, filter_grid(weight)[0])
    check_png(figure_png(fig), min_side=100)


def test_feature_maps_show_the_colour_input_as_its_pixels():
    from convnp.data.transforms import Standardize
    from convnp.layers import Conv2D
    from convnp.sequential import Sequential

    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (1, 6, 7, 3)).astype(np.uint8)  # (1, H, W, 3)
    standardize = Standardize(1 / 255, [0.2, 0.5, 0.7], [0.1, 0.3, 0.2])
    model = Sequential([Conv2D(3, 2, 3, rng=rng)], input_shape=(6, 7, 3))
    fig = plot_feature_maps(model, standardize(pixels, np.float64)[0], standardize=standardize)
    np.testing.assert_allclose(np.asarray(fig.axes[0].images[0].get_array()), pixels[0] / 255, atol=1e-12)
    # One channel: grey, on the 0..1 pixel scale (not stretched to the image's own range)
    grey = Standardize(1 / 255, [0.4], [0.25])
    model = Sequential([Conv2D(1, 2, 3, rng=rng)], input_shape=(6, 7, 1))
    fig = plot_feature_maps(model, grey(pixels[..., :1], np.float64)[0], standardize=grey)
    image = fig.axes[0].images[0]
    np.testing.assert_allclose(np.asarray(image.get_array()), pixels[0, :, :, 0] / 255, atol=1e-12)
    assert (image.norm.vmin, image.norm.vmax) == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"standardize has 1 channel\(s\) but the image has shape \(6, 7, 3\)"):
        plot_feature_maps(model, np.zeros((6, 7, 3)), standardize=grey)


def _png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int64)  # (h, w, 3)


def test_report_of_a_colour_run_names_the_classes_and_draws_colour(colour_run):
    from convnp.viz import filter_grid
    from convnp.viz.feature_maps import input_pixels
    from convnp.viz.report import load_run, run_figures

    document = (colour_run / "report.html").read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(document)
    text = " ".join(parser.text)
    assert f"12 classes: {', '.join(FRUITS)}." in text  # sorted names; FRUITS is sorted
    assert "red, green and blue input channels" in text
    # The embedded filters PNG holds each kernel's RGB colours (a signed colour map would not).
    filters_png = base64.b64decode(parser.images[1]["src"].split(",", 1)[1])
    assert parser.images[1]["alt"] == "First-layer filters"
    shown = _png_pixels(filters_png).reshape(-1, 1, 3)  # (P, 1, 3)
    weight = load_checkpoint(colour_run).model.layers[0].params["weight"]  # (3, 3, 3, 8)
    mosaic, _ = filter_grid(weight)
    expected = np.round(255 * mosaic[np.isfinite(mosaic).all(-1) & (mosaic < 1).any(-1)]).astype(np.int64)
    found = (np.abs(shown - expected[None]).max(axis=-1) <= 2).any(axis=0)  # (tile pixels,)
    assert found.all(), f"{(~found).sum()} of {found.size} kernel colours are not in the PNG"

    view = load_run(colour_run)
    figures = run_figures(view)
    assert [t.get_text() for t in figures["confusion"].axes[0].get_xticklabels()] == FRUITS
    assert [t.get_text() for t in figures["confusion"].axes[0].get_yticklabels()] == FRUITS
    # The input of the feature maps and the mistakes are the test images in colour, as stored (0..255 -> 0..1)
    feature_input = np.asarray(figures["feature_maps"].axes[0].images[0].get_array())
    np.testing.assert_allclose(feature_input, view.images[0] / 255, atol=1e-6)
    np.testing.assert_allclose(input_pixels(view.checkpoint.prepare(view.images[:1])[0],
                                            view.checkpoint.standardize), view.images[0] / 255, atol=1e-6)
    mistakes = _shown(figures["mistakes"].axes[0])
    wrong = np.flatnonzero(view.y_pred != view.y_true)
    assert len(wrong) and mistakes.shape[-1] == 3
    assert len(_find_tile(mistakes, view.images[wrong[0]] / 255)) >= 1
    captions = [t.get_text() for t in figures["mistakes"].axes[0].texts]
    assert all(c.split(" -> ")[0] in FRUITS for c in captions)


def test_report_of_a_folder_run_reads_the_images_as_training_did(tmp_path):
    from convnp.viz.report import load_run

    rng = np.random.default_rng(7)
    for k, name in enumerate(["blue", "red"]):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(12):
            size = 20 if i % 3 else 24  # mixed sizes: the run's --image-size decides
            colour = np.array([[30, 30, 220], [220, 30, 30]][k])
            pixels = np.clip(colour + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{i}.png")
    net = TINY_COLOUR_NET[:-1] + [{"type": "Dense", "out_features": 2}]
    (tmp_path / "net.json").write_text(json.dumps(net))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "photos"), "--model", str(tmp_path / "net.json"), "--image-size",
                 "12", "12", "--test-split", "0.25", "--epochs", "1", "--threads", "1", "--no-report",
                 "--out", str(run)]) == 0
    view = load_run(run)
    assert view.split == "test" and view.images.shape[1:] == (12, 12, 3) and view.probs.shape == (len(view.images), 2)
    assert main(["plot", str(run), "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "confusion.png").is_file()
