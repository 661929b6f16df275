"""The pages in a real browser: ``convnp serve`` in its own process, Debian's Chromium driven by Playwright.

The drawing pad (a digit model): a "1", a "7" and a "0" drawn with the mouse are read as 1, 7 and 0, and the page
shows exactly the model's answer for the drawing on its canvas (label, ten percentages, eight feature maps); Clear
empties it. A screenshot of the "1" is kept in tests/artifacts/web.png.

The upload page (a model of 32x32 colour pictures named by colour, tests/colour_model.py): a picture given through
the file picker, dropped on the page and pasted is previewed with the part the model sees framed, and the page shows
the top 5 class names and percentages the API answers for the same bytes; a file that is not an image shows the
server's reason. A screenshot is kept in tests/artifacts/upload.png.

Nothing here waits for a length of time: the server is used once it prints the line saying it accepts connections,
and a page is read once it says (``aria-busy="false"``, and on the upload page the count of answers shown) that it
has shown its answer to the final drawing or picture, which is then compared with the answer computed here, without
the page. The deadlines only bound how long a failure takes to show.
"""

import base64
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from colour_model import NAMES, framed, noisy, png_bytes, train_colour_model
from browser import FAILURE_DEADLINE_S, chromium, open_page, require_browser, serving
from helpers import serve

ARTIFACTS = Path(__file__).parent / "artifacts"
sync_api = require_browser()

from convnp.data.image_files import read_image_bytes  # noqa: E402
from convnp.web.app import DigitClassifier  # noqa: E402

# Strokes in canvas pixels (the pad is 280x280, drawn 20 px wide): each stroke is a polyline, drawn with the button
# held. Shaped like MNIST's digits: tall, filling most of the pad.
DRAWINGS = {
    1: [[(140, 30), (143, 250)]],
    7: [[(70, 50), (210, 50), (120, 250)]],
    0: [[(140, 30), (80, 80), (70, 150), (90, 230), (140, 255), (190, 230), (210, 150), (200, 80), (140, 30)]],
}


@pytest.fixture(scope="module")
def checkpoint_path(digits_checkpoint):
    """The shared trained notebook model (tests/conftest.py)."""
    return digits_checkpoint


@pytest.fixture(scope="module")
def server(checkpoint_path):
    """``convnp serve --port 0`` in its own process, used once it prints that it accepts connections
    (tests/helpers.py); yields its base URL."""
    with serving(checkpoint_path) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium(sync_api) as b:
        yield b


@pytest.fixture
def page(browser, server):
    """A fresh page on the server, its JavaScript errors collected in ``page.errors``."""
    with open_page(browser, server) as pg:
        yield pg


def draw(page, strokes) -> None:
    """Draw ``strokes`` on the pad with the mouse, as a person would."""
    pad = page.locator("#pad").bounding_box()
    assert pad["width"] == 280 and pad["height"] == 280  # so canvas pixels are CSS pixels
    for (x0, y0), *rest in strokes:
        page.mouse.move(pad["x"] + x0, pad["y"] + y0)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(pad["x"] + x, pad["y"] + y, steps=10)
        page.mouse.up()


def canvas_png(page) -> bytes:
    """What the pad holds now, as PNG bytes (lossless: the pixels the page sends)."""
    data_url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    return base64.b64decode(data_url.split(",", 1)[1])


def expected_answer(page, classifier: DigitClassifier):
    """The model's answer for what the canvas holds now, computed here, without the server or the page's script."""
    return classifier.classify(read_image_bytes(canvas_png(page)), feature_maps=False)


def wait_for_the_answer(page) -> None:
    """Wait until the page has shown its answer to the drawing as it stands: the result section is ``aria-busy``
    while a question to the server is scheduled or on its way (the page asks while the mouse moves, and once more
    when it is released), so it turns false after the last answer is shown (or its error)."""
    page.locator('#result[aria-busy="false"]').wait_for()


def shown(page) -> tuple[str, list[float], str]:
    """The page's prediction text, its ten percentages and its status line."""
    percents = [float(page.text_content(f"#prob-{k}").rstrip("%")) for k in range(10)]
    return page.text_content("#prediction"), percents, page.text_content("#status")


@pytest.fixture(scope="module")
def classifier(checkpoint_path):
    return DigitClassifier(checkpoint_path)


@pytest.mark.parametrize("digit", list(DRAWINGS))
def test_a_drawn_digit_is_read_and_shown(page, classifier, digit):
    """A digit drawn with the mouse is read as that digit, and the page shows the model's exact answer for it."""
    draw(page, DRAWINGS[digit])
    answer = expected_answer(page, classifier)
    assert answer.label == digit, (digit, [round(p, 3) for p in answer.probabilities])
    wait_for_the_answer(page)

    label, percents, status = shown(page)
    assert label == str(digit), (label, status)
    # Each percentage as the page rounds it (to 0.1) from the model's probability for this drawing.
    np.testing.assert_allclose(percents, [100 * p for p in answer.probabilities], atol=0.051)
    assert max(percents) == percents[digit]
    assert status == f"{100 * answer.probabilities[digit]:.1f}% sure"
    # The feature maps drawn are the model's for this drawing: one canvas per filter of the first convolution, each
    # pixel the byte the model's answer holds for it.
    maps = classifier.classify(read_image_bytes(canvas_png(page)), feature_maps=True).feature_maps
    h, w, c = maps.shape
    want = np.frombuffer(base64.b64decode(maps.data), np.uint8).reshape(h, w, c)
    drawn_maps = page.evaluate("""() => [...document.querySelectorAll('#maps canvas')].map(cv => {
        const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
        return [cv.width, cv.height, Array.from(d.filter((_, i) => i % 4 === 0))]; })""")
    assert len(drawn_maps) == c
    for k, (width, height, red) in enumerate(drawn_maps):
        assert (width, height) == (w, h)
        np.testing.assert_array_equal(np.array(red).reshape(h, w), want[..., k], err_msg=f"map {k}")
    if digit == 1:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web.png"), full_page=True, animations="disabled")  # bars at full width
    assert page.errors == []


def test_clear_empties_the_page(page):
    """After an answer is shown, Clear empties the pad, the prediction, the percentages and the feature maps."""
    draw(page, DRAWINGS[1])
    wait_for_the_answer(page)
    assert shown(page)[0] == "1"
    page.click("#clear")
    assert page.text_content("#prediction") == ""
    assert [page.text_content(f"#prob-{k}") for k in range(10)] == ["0.0%"] * 10
    assert page.locator("#maps canvas").count() == 0
    assert page.text_content("#status") == "Draw a digit to start."
    ink = page.evaluate("""() => { const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let m = 0; for (let i = 0; i < d.length; i += 4) m = Math.max(m, d[i]); return m; }""")
    assert ink == 0  # the pad is black again
    assert page.errors == []


# ---- the upload page of a model that does not take digits ------------------------------------------------------------
@pytest.fixture(scope="module")
def colour_server(tmp_path_factory):
    """``convnp serve`` of sprint trained on named colours (tests/colour_model.py); yields its base URL."""
    run = train_colour_model(tmp_path_factory.mktemp("browser-colours"))
    with serve(run, deadline_s=FAILURE_DEADLINE_S) as (url, _):
        yield url


@pytest.fixture
def upload_page(browser, colour_server):
    """A fresh upload page, once it has read the model's description; JavaScript errors in ``page.errors``."""
    with open_page(browser, colour_server, height=700) as pg:
        pg.locator('body[data-model="ready"]').wait_for()
        yield pg


def api_answer(url: str, data: bytes) -> dict:
    """``POST /api/predict`` of ``data`` as the raw body: the API's answer for these bytes."""
    request = urllib.request.Request(f"{url}/api/predict?feature_maps=false", data=data,
                                     headers={"content-type": "image/png"}, method="POST")
    with urllib.request.urlopen(request, timeout=FAILURE_DEADLINE_S) as r:
        return json.load(r)


def wait_for_answer(page, n: int) -> None:
    """Wait until the page has shown its ``n``-th answer (or error) and has no question on its way."""
    page.locator(f'#result[data-answers="{n}"][aria-busy="false"]').wait_for()


def top_rows(page) -> list[tuple[str, str]]:
    """The page's top rows: (class name, percentage text) each."""
    return [(li.locator(".name").text_content(), li.locator(".pct").text_content())
            for li in page.locator("#top li").all()]


def assert_shows(page, answer: dict, width: int, height: int) -> None:
    """The page shows the picture (``width`` x ``height``) with the centre the model sees framed, and ``answer``:
    its class name, and the top 5 names with their percentages as the page rounds them."""
    assert page.locator("#preview").is_visible()
    assert page.evaluate("[document.getElementById('preview').naturalWidth, "
                         "document.getElementById('preview').naturalHeight]") == [width, height]
    assert page.text_content("#prediction") == answer["class"]
    assert top_rows(page) == [(t["class"], f"{100 * t['probability']:.1f}%") for t in answer["top"]]
    assert len(answer["top"]) == 5 and page.locator("#top li.top").count() == 1
    # The frame: the model takes 32x32, so it is the square of the picture's shorter side, in the middle.
    shown, crop = page.locator("#preview").bounding_box(), page.locator("#crop").bounding_box()
    side = min(shown["width"], shown["height"])
    assert abs(crop["width"] - side) <= 1 and abs(crop["height"] - side) <= 1, (shown, crop)
    assert abs(crop["x"] + crop["width"] / 2 - (shown["x"] + shown["width"] / 2)) <= 1
    assert abs(crop["y"] + crop["height"] / 2 - (shown["y"] + shown["height"] / 2)) <= 1


# Dispatch a drop or a paste of one file, as the browser does when a person drops a file or presses Ctrl+V.
DROP_OR_PASTE = """([kind, b64, name, type]) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], name, { type }));
    const event = kind === "drop"
        ? new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true })
        : new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true });
    const target = kind === "drop" ? document.getElementById("drop") : document.body;
    return target.dispatchEvent(event) === false;  // true: the page took the event (preventDefault)
}"""


def give(page, how: str, data: bytes, name: str = "picture.png", mime: str = "image/png") -> None:
    """Give the page a file the way a person would: through the file picker, by dropping it, or by pasting it."""
    if how == "picker":
        page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])
    else:
        assert page.evaluate(DROP_OR_PASTE, [how, base64.b64encode(data).decode("ascii"), name, mime])


@pytest.mark.parametrize("how, centre, margin", [("picker", "red", "blue"), ("drop", "orange", "purple"),
                                                 ("paste", "cyan", "black")])
def test_a_picture_is_previewed_and_its_top_5_named(upload_page, how, centre, margin):
    """Each way in gives the page the file; it shows the picture, frames its centre, and shows the API's answer for
    the same bytes: the centre's colour by name, and the five most probable names with their percentages."""
    data = png_bytes(framed(centre, margin))  # 150x60: the model sees the middle 60x60
    give(upload_page, how, data)
    wait_for_answer(upload_page, 1)
    answer = api_answer(upload_page.server, data)
    assert answer["class"] == centre  # the colour of the part the model sees, not the margins'
    upload_page.locator("#crop:not([hidden])").wait_for()  # framed once the preview has loaded
    assert_shows(upload_page, answer, 150, 60)
    assert upload_page.text_content("#status") == f"{100 * answer['probabilities'][answer['label']]:.1f}% sure"
    # The page describes the model from /api/health, and the caption says what the frame is.
    about = upload_page.text_content("#about")
    assert 'The network "sprint"' in about and "its 12 classes" in about and "32x32 colour pictures" in about
    assert upload_page.text_content("#preview-caption").endswith("150x60 · in the frame: what the model sees, at 32x32")
    if how == "picker":
        ARTIFACTS.mkdir(exist_ok=True)
        upload_page.screenshot(path=str(ARTIFACTS / "upload.png"), full_page=True, animations="disabled")
    assert upload_page.errors == []


def test_a_second_picture_replaces_the_first(upload_page):
    """A tall noisy photo after a wide one: the page shows the second's answer, framed for its own shape."""
    give(upload_page, "picker", png_bytes(framed("red", "blue")))
    wait_for_answer(upload_page, 1)
    rng = np.random.default_rng(3)
    tall = np.concatenate([noisy(["white"], rng, 32)[0], noisy(["green"], rng, 32)[0], noisy(["white"], rng, 32)[0]])
    data = png_bytes(tall)  # 32x96: the model sees the green middle third
    give(upload_page, "drop", data, "tall.png")
    wait_for_answer(upload_page, 2)
    upload_page.locator("#crop:not([hidden])").wait_for()
    answer = api_answer(upload_page.server, data)
    assert answer["class"] == "green" and NAMES[answer["label"]] == "green"
    assert_shows(upload_page, answer, 32, 96)
    assert upload_page.errors == []


def test_a_file_that_is_not_an_image_shows_why(upload_page):
    give(upload_page, "drop", b"just some text", "notes.txt", "text/plain")
    wait_for_answer(upload_page, 1)
    assert "not an image" in upload_page.text_content("#status")
    assert upload_page.text_content("#prediction") == "" and top_rows(upload_page) == []
    assert upload_page.locator("#preview-box").is_hidden()  # the browser could not show it either
    assert upload_page.errors == []
