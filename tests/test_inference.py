"""convnp.inference: the README's "classify image files" snippet run as written on files this test draws, every
Classifier method against ``convnp predict --json``, the web app and a by-hand computation, one Classifier shared
by two threads, and one clear ValueError for images of the wrong shape, channel count or range."""

import base64
import json
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from convnp.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from convnp.cli.main import main  # noqa: E402
from convnp.data.image_files import read_image, read_image_bytes  # noqa: E402
from convnp.data.transforms import Standardize  # noqa: E402
from convnp.errors import DataError  # noqa: E402
from convnp.inference import MNIST_SHAPE, Classifier, FilePrediction, layer_outputs  # noqa: E402
from convnp.ops.activations import softmax  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Classify image files in a few lines"
N_FILES = 6  # digits drawn as files, the README's seven.png and two.png among them


# ---- fixtures --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint_path(digits_checkpoint):
    """The shared trained notebook model (tests/conftest.py)."""
    return digits_checkpoint


@pytest.fixture(scope="module")
def classifier(checkpoint_path):
    return Classifier.from_checkpoint(checkpoint_path)


def drawn(digit: np.ndarray) -> np.ndarray:
    """An MNIST digit ``(28, 28)`` as someone saves a drawing: 4x larger, off centre, dark ink on white paper."""
    big = np.asarray(Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC))
    canvas = np.zeros((150, 130), np.uint8)
    canvas[20:132, 10:122] = big
    return 255 - canvas


@pytest.fixture(scope="module")
def digit_files(mnist, tmp_path_factory):
    """A folder of PNG files: ``seven.png`` and ``two.png`` (the first test 7 and 2) and more test digits; returns
    the folder, the file names, and the original digits ``(N, 28, 28)`` uint8."""
    x_test, y_test = mnist[2], mnist[3]
    chosen = [int(np.flatnonzero(y_test == 7)[0]), int(np.flatnonzero(y_test == 2)[0])]
    chosen += [i for i in range(N_FILES * 2) if i not in chosen][: N_FILES - 2]
    folder = tmp_path_factory.mktemp("inference")
    names = ["seven.png", "two.png"] + [f"digit{i}.png" for i in chosen[2:]]
    for name, i in zip(names, chosen):
        Image.fromarray(drawn(x_test[i])).save(folder / name)
    return folder, names, x_test[chosen]


def cli_json(*argv) -> list[dict]:
    """``convnp predict ... --json``'s list, from a real CLI run in this process."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["predict", *map(str, argv), "--json"])
    assert code in (0, 1)
    return json.loads(out.getvalue())


def readme_snippet() -> str:
    """The first ``python`` block of the README's "classify image files" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match and match.start() < section.index("\n## ", 1), f"{SECTION} has no python block"
    return match.group(1)


# ---- the README ------------------------------------------------------------------------------------------------------
@pytest.mark.mnist
def test_the_readme_snippet_classifies_image_files_as_convnp_predict_does(checkpoint_path, digit_files, tmp_path,
                                                                           monkeypatch, capsys):
    folder, names, originals = digit_files
    for name in ("seven.png", "two.png"):
        shutil.copy(folder / name, tmp_path / name)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    shutil.copy(checkpoint_path, tmp_path / "runs" / "demo" / "best.npz")
    monkeypatch.chdir(tmp_path)

    namespace: dict = {}
    exec(compile(readme_snippet(), str(README), "exec"), namespace)  # the snippet exactly as the README shows it
    printed = capsys.readouterr().out.splitlines()

    cli = cli_json("runs/demo", "seven.png", "two.png", "--top", "3")
    assert printed == [f"{r['file']} {r['label']} {tuple(tuple(t) for t in r['top'])}" for r in cli]
    np.testing.assert_array_equal(namespace["probabilities"], [r["probabilities"] for r in cli])
    assert namespace["images"].shape == (2, 28, 28, 1)
    # The files are the first test 7 and 2; the model's answers are the ones it gives the original 28x28 digits.
    expected = load_checkpoint(checkpoint_path).model.predict(
        load_checkpoint(checkpoint_path).prepare(originals[:2, ..., None])).argmax(axis=1)
    assert [r["label"] for r in cli] == expected.tolist() == [7, 2]


# ---- each method against the CLI, the web app and a computation by hand ----------------------------------------------
@pytest.mark.mnist
def test_classify_files_gives_the_clis_answers_bit_for_bit(classifier, checkpoint_path, digit_files, tmp_path):
    folder, names, _ = digit_files
    (tmp_path / "notes.txt").write_text("not an image")
    paths = [str(folder / names[0]), str(tmp_path / "notes.txt"), *(str(folder / n) for n in names[1:])]
    cli = cli_json(checkpoint_path, *paths, "--top", "4")
    results = classifier.classify_files(paths, k=4, errors="report")
    assert [r.file for r in results] == [r["file"] for r in cli] == paths
    for mine, theirs in zip(results, cli):
        assert isinstance(mine, FilePrediction)
        if "error" in theirs:
            assert mine.error == theirs["error"] and "notes.txt: not an image" in mine.error
            assert mine.label is None and mine.probabilities is None and mine.top == ()
            continue
        assert mine.error is None and mine.label == theirs["label"]
        assert mine.probabilities.tolist() == theirs["probabilities"]  # the same floats, not merely close
        assert [list(t) for t in mine.top] == theirs["top"]
    with pytest.raises(DataError, match="notes.txt: not an image"):
        classifier.classify_files(paths)  # errors="raise", the default


@pytest.mark.mnist
def test_each_method_against_the_model_run_by_hand(classifier, checkpoint_path, digit_files):
    folder, names, _ = digit_files
    ck = load_checkpoint(checkpoint_path)
    pixels = classifier.read_images([folder / n for n in names])  # (N, 28, 28, 1) float32 0..255
    assert pixels.shape == (N_FILES, *MNIST_SHAPE) and pixels.dtype == np.float32

    inputs = ck.prepare(pixels)  # a uint8-trained model: pixels are its stored scale
    np.testing.assert_array_equal(classifier.prepare(pixels), inputs)
    np.testing.assert_array_equal(classifier.prepare(pixels[..., 0]), inputs)  # (N, H, W) is grey
    np.testing.assert_array_equal(classifier.prepare(pixels, stored=True), inputs)
    logits = ck.model.predict(inputs)  # (N, 10)
    np.testing.assert_array_equal(classifier.forward(inputs), logits)
    probs = softmax(logits.astype(np.float64), axis=1)
    np.testing.assert_array_equal(classifier.predict_proba(pixels), probs)
    np.testing.assert_array_equal(classifier.predict(pixels), probs.argmax(axis=1))
    top, p = classifier.top_k(pixels, 3)
    assert top.shape == p.shape == (N_FILES, 3)
    for row, order, values in zip(probs, top, p):
        assert order.tolist() == sorted(range(10), key=lambda k: (-row[k], k))[:3]
        assert values.tolist() == row[order].tolist()

    outputs = classifier.activations(pixels)
    assert [o.shape[1:] for o in outputs] == ck.model.shapes()
    x = inputs
    for layer, out in zip(ck.model.layers, outputs):
        x = layer.forward(x)  # each layer on its own, in list order
        np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(outputs[-1], logits)
    first = classifier.activations(pixels, upto=0)
    assert len(first) == 1
    np.testing.assert_array_equal(first[0], outputs[0])
    assert len(classifier.activations(pixels, upto=-2)) == len(ck.model.layers) - 1
    np.testing.assert_array_equal(layer_outputs(ck.model, inputs, upto=2)[2], outputs[2])

    assert classifier.input_shape == MNIST_SHAPE and classifier.n_classes == 10
    assert classifier.classes == tuple(range(10)) and classifier.name == str(ck.path)
    assert classifier.predict_proba(pixels[:0]).shape == (0, 10)  # an empty batch is no error


@pytest.mark.mnist
def test_the_web_app_and_the_feature_maps_are_the_classifiers(classifier, checkpoint_path, digit_files):
    pytest.importorskip("fastapi")
    from convnp.viz import conv_activations
    from convnp.web.app import DigitClassifier

    folder, names, _ = digit_files
    web = DigitClassifier(checkpoint_path)
    for name in names[:3]:
        path = folder / name
        grey = read_image_bytes(path.read_bytes())
        np.testing.assert_array_equal(grey, read_image(path))  # bytes and file decode alike
        answer = web.classify(grey, feature_maps=True)
        (cli,) = cli_json(checkpoint_path, path)
        pixels = classifier.read_images([path])  # (1, 28, 28, 1), the same batch of one
        assert answer.probabilities == classifier.predict_proba(pixels)[0].tolist() == cli["probabilities"]
        assert answer.label == classifier.predict(pixels)[0] == cli["label"]
        maps = classifier.activations(pixels, upto=web.maps_index)[-1][0].astype(np.float64)  # (26, 26, 8)
        low, span = maps.min(axis=(0, 1)), np.ptp(maps, axis=(0, 1))
        expected = np.round(np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0) * 255).astype(np.uint8)
        np.testing.assert_array_equal(
            np.frombuffer(base64.b64decode(answer.feature_maps.data), np.uint8).reshape(maps.shape), expected)
        ((_, conv),) = conv_activations(classifier.model, classifier.prepare(pixels))
        np.testing.assert_array_equal(conv, classifier.activations(pixels, upto=0)[0])


def test_a_model_trained_on_images_in_0_1_takes_pixels_and_stored_images(tmp_path):
    """Pixels 0..255 are brought to the training data's [0, 1] scale; stored=True takes that scale as it is."""
    from convnp.layers import Dense, Flatten
    from convnp.sequential import Sequential

    model = Sequential([Flatten(), Dense(16 * 12 * 3, 4, rng=np.random.default_rng(0))], input_shape=(16, 12, 3))
    standardize = Standardize(1.0, [0.5, 0.4, 0.3], [0.25, 0.2, 0.2])
    path = save_checkpoint(tmp_path / "colour.npz", model, meta={"preprocessing": standardize.to_dict()})
    pixels = np.random.default_rng(1).integers(0, 256, (5, 16, 12, 3), dtype=np.uint8)
    clf = Classifier(model, standardize, classes="abcd", threads=1)
    np.testing.assert_array_equal(clf.prepare(pixels), standardize(pixels / 255.0))
    np.testing.assert_array_equal(clf.prepare(pixels / 255.0, stored=True), clf.prepare(pixels))
    from_file = Classifier.from_checkpoint(path)
    np.testing.assert_array_equal(from_file.predict_proba(pixels), clf.predict_proba(pixels))
    assert clf.classes == ("a", "b", "c", "d") and from_file.classes == (0, 1, 2, 3)
    Image.fromarray(np.full((40, 30, 3), (0, 128, 255), np.uint8)).save(tmp_path / "blue.png")
    (cli,) = cli_json(path, tmp_path / "blue.png", "--top", "4")
    (mine,) = from_file.classify_files([tmp_path / "blue.png"], k=4)
    assert mine.probabilities.tolist() == cli["probabilities"] and [list(t) for t in mine.top] == cli["top"]
    with pytest.raises(ValueError, match=r"classes must give one label to each of the model's 4 classes, got 2"):
        Classifier(model, standardize, classes=["a", "b"])
    with pytest.raises(ValueError, match=r"standardize has 1 channel\(s\), but the model takes images of shape"):
        Classifier(model)  # MNIST's one-channel default does not fit a colour model


@pytest.mark.mnist
def test_evaluate_predicts_through_the_classifier(classifier, checkpoint_path, mnist, tmp_path, capsys):
    x, y = mnist[2][:300], mnist[3][:300].astype(np.int64)
    np.savez(tmp_path / "part.npz", x=x, y=y)
    assert main(["evaluate", str(checkpoint_path), "--data", str(tmp_path / "part.npz"), "--split", "train",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    predicted = classifier.predict(x[..., None], stored=True)
    assert report["accuracy"] == float(np.mean(predicted == y))
    np.testing.assert_array_equal(np.asarray(report["confusion"]).sum(axis=0), np.bincount(predicted, minlength=10))


# ---- threads ---------------------------------------------------------------------------------------------------------
@pytest.mark.mnist
def test_two_threads_classifying_at_once_get_their_own_answers(checkpoint_path, mnist):
    """One Classifier, two threads released together by a barrier, each classifying its own batch again and again:
    every answer is bit for bit what the batch gets alone, and each thread ran its own replica of the model."""
    clf = Classifier.from_checkpoint(checkpoint_path, threads=1)
    batches = [mnist[2][:48], mnist[2][48:96][:, ::-1]]  # different images, the second mirrored
    expected = [Classifier.from_checkpoint(checkpoint_path, threads=1).predict_proba(b) for b in batches]
    assert not np.array_equal(expected[0].argmax(axis=1), expected[1].argmax(axis=1))
    rounds, barrier = 15, threading.Barrier(2, timeout=120)
    got: list[list] = [[], []]
    models, errors = [None, None], []

    def work(i):
        try:
            for _ in range(rounds):
                barrier.wait()  # both threads start each round together
                got[i].append((clf.predict_proba(batches[i]), clf.activations(batches[i])[-1]))
            models[i] = clf._thread_model()
        except BaseException as err:  # noqa: BLE001 - reported below, with the other thread released
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    for i in range(2):
        assert len(got[i]) == rounds
        for probs, logits in got[i]:
            np.testing.assert_array_equal(probs, expected[i])
            np.testing.assert_array_equal(softmax(logits.astype(np.float64), axis=1), expected[i])
    assert models[0] is not models[1] and clf.model not in models
    assert models[0].layers[0].params["weight"] is clf.model.layers[0].params["weight"]  # parameters shared


# ---- errors ----------------------------------------------------------------------------------------------------------
BAD_IMAGES = {
    "three channels": (np.zeros((2, 28, 28, 3), np.uint8),
                       r"images have 3 channel\(s\) but the model takes 1: the model takes images of shape "
                       r"\(28, 28, 1\) \(H, W, C\), got \(28, 28, 3\)"),
    "another size": (np.zeros((2, 32, 32), np.uint8),
                     r"images have the wrong size: the model takes images of shape \(28, 28, 1\) \(H, W, C\), "
                     r"got \(32, 32, 1\)"),
    "no batch axis": (np.zeros((28, 28, 1), np.uint8),
                      r"images must be a batch of shape \(N, H, W, C\) or \(N, H, W\), got shape \(28, 28, 1\); "
                      r"for one image, add the batch axis with images\[None\]"),
    "rank 5": (np.zeros((1, 1, 28, 28, 1)), r"images must be a batch .* got shape \(1, 1, 28, 28, 1\)"),
    "above 255": (np.full((1, 28, 28), 256.0), r"images must hold pixels in 0..255, got values in \[256, 256\]; "
                                               r"pass stored=True"),
    "negative": (np.full((1, 28, 28), -1.0), r"images must hold pixels in 0..255, got values in \[-1, -1\]"),
    "NaN": (np.full((1, 28, 28), np.nan), r"images must hold pixels in 0..255, got values in \[nan, nan\]"),
    "strings": (np.full((1, 28, 28), "x"), r"images must hold numbers \(uint8 or float pixels\), got dtype <U1"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_images_raise_one_valueerror_naming_the_argument(case, tmp_path):
    from convnp.models import notebook

    path = save_checkpoint(tmp_path / "model.npz", notebook(rng=np.random.default_rng(0)))
    clf = Classifier.from_checkpoint(path)
    images, message = BAD_IMAGES[case]
    calls = [clf.prepare, clf.predict_proba, clf.predict, clf.top_k, clf.activations]
    for call in calls:
        with pytest.raises(ValueError, match=message) as err:
            call(images)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value), str(err.value)


def test_bad_arguments(tmp_path):
    from convnp.models import notebook

    clf = Classifier(notebook(rng=np.random.default_rng(0)))
    x = np.zeros((1, 28, 28), np.uint8)
    for k in (0, 11, 2.5, True):
        with pytest.raises(ValueError, match=rf"Classifier: k must be between 1 and the model's 10 classes, got {k}"):
            clf.top_k(x, k)
    with pytest.raises(ValueError, match=r"upto must be a layer index from -5 to 4 \(or None for every layer\), got 5"):
        clf.activations(x, upto=5)
    with pytest.raises(TypeError, match="expected a list of paths, got a single path"):
        clf.classify_files(str(tmp_path / "one.png"))
    with pytest.raises(ValueError, match=r"errors must be one of \['raise', 'report'\], got 'ignore'"):
        clf.classify_files([tmp_path / "one.png"], errors="ignore")
    with pytest.raises(ValueError, match="threads must be a positive integer or None, got 0"):
        Classifier(clf.model, threads=0)
    with pytest.raises(TypeError, match="model must be a convnp Sequential, got list"):
        Classifier(clf.model.layers)
    with pytest.raises(ValueError, match=r"input_shape \(32, 32, 1\) differs from the model's own \(28, 28, 1\)"):
        Classifier(clf.model, input_shape=(32, 32, 1))
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    (result,) = clf.classify_files([tmp_path / "blank.png"], errors="report")
    assert result.label is None and "blank.png: no ink found" in result.error
