"""The drawing page's "a number" mode in a real browser (``convnp serve mnist-best`` in its own process, Debian's
Chromium driven by Playwright, as tests/test_web_browser.py does): switched to it, the pad is three times as wide;
three digits drawn with the mouse, and a photo of a row of MNIST test digits chosen, are read, and the page shows the
number ``POST /api/read`` answers for the same bytes, each digit's box over the pad where the digit is, and each
digit's 28x28 picture and percentage as the API gives them. Switching back gives the one-digit pad. A screenshot is
kept in tests/artifacts/number.png.

Nothing waits for a length of time: a page is read once its result section says (``aria-busy="false"``) that it has
shown its answer; the deadlines only bound how long a failure takes to show.
"""

import base64
import io
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser import FAILURE_DEADLINE_S, chromium, open_page, require_browser, serving

ARTIFACTS = Path(__file__).parent / "artifacts"
sync_api = require_browser()

from PIL import Image  # noqa: E402
from test_web_read import row  # noqa: E402

# A 1, a 7 and a 0 side by side, in pad pixels (the number pad is 840x280, drawn 20 px wide), shaped as
# tests/test_web_browser.py draws them one at a time on the 280x280 pad, each in its own third.
DRAWINGS = [
    [[(140, 30), (143, 250)]],
    [[(70, 50), (210, 50), (120, 250)]],
    [[(140, 30), (80, 80), (70, 150), (90, 230), (140, 255), (190, 230), (210, 150), (200, 80), (140, 30)]],
]


@pytest.fixture(scope="module")
def server():
    """``convnp serve mnist-best`` (the shipped model, 99.6% on MNIST's test set); yields its base URL."""
    with serving("mnist-best") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium(sync_api) as b:
        yield b


@pytest.fixture
def page(browser, server):
    """A fresh page switched to "a number", its JavaScript errors collected in ``page.errors``."""
    with open_page(browser, server, height=900) as pg:
        pg.click("label:has(#mode-number)")
        yield pg


def read_api(url: str, data: bytes) -> dict:
    """``POST /api/read`` of ``data`` as the raw body: the API's answer for these bytes."""
    request = urllib.request.Request(f"{url}/api/read", data=data, headers={"content-type": "image/png"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=FAILURE_DEADLINE_S) as r:
        return json.load(r)


def wait_for_the_answer(page) -> None:
    page.wait_for_function("() => document.getElementById('result').getAttribute('aria-busy') === 'false' && "
                           "document.getElementById('status').textContent !== 'Reading the photo...'")


def digits_on_page(page) -> list[tuple[str, str, np.ndarray]]:
    """Each digit the page lists: its text, its percentage and its canvas (one channel, `(H, W)`)."""
    listed = page.evaluate("""() => [...document.querySelectorAll('#digits li')].map(li => {
        const cv = li.querySelector('canvas');
        const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
        return [li.querySelector('.digit').textContent, li.querySelector('.pct').textContent,
                cv.width, cv.height, Array.from(d.filter((_, i) => i % 4 === 0))]; })""")
    return [(text, pct, np.array(red, np.uint8).reshape(h, w)) for text, pct, w, h, red in listed]


def assert_shows(page, answer: dict, frame: tuple[float, float, float, float]) -> None:
    """The page shows ``answer``: the number, each digit's box over the pad where the picture sent lies
    (``frame``: x, y, width, height in pad pixels), each digit's 28x28 picture and percentage."""
    assert page.text_content("#prediction") == answer["number"]
    least = min(d["probability"] for d in answer["digits"])
    n = len(answer["digits"])
    assert page.text_content("#status") == f"{n} digits read; the least sure at {100 * least:.1f}%"
    pad = page.locator("#pad").bounding_box()
    assert (pad["width"], pad["height"]) == (840, 280)  # pad pixels are CSS pixels
    x, y, w, h = frame
    height, width = answer["size"]
    assert page.locator("#boxes .box").count() == n
    for j, d in enumerate(answer["digits"]):
        top, left, bottom, right = d["box"]
        shown = page.locator(f"#box-{j}").bounding_box()
        want = (pad["x"] + x + left * w / width, pad["y"] + y + top * h / height,
                (right - left + 1) * w / width, (bottom - top + 1) * h / height)
        np.testing.assert_allclose([shown["x"], shown["y"], shown["width"], shown["height"]], want, atol=1.0,
                                   err_msg=f"box {j}")
        assert page.text_content(f"#box-{j} span") == d["class"]
    listed = digits_on_page(page)
    assert [(text, pct) for text, pct, _ in listed] == [
        (d["class"], f"{100 * d['probability']:.1f}%") for d in answer["digits"]]
    for (_, _, pixels), d in zip(listed, answer["digits"]):
        want = np.frombuffer(base64.b64decode(d["prepared"]["data"]), np.uint8).reshape(28, 28)
        np.testing.assert_array_equal(pixels, want)


def test_three_drawn_digits_are_read_and_boxed(page):
    pad = page.locator("#pad").bounding_box()
    assert (pad["width"], pad["height"]) == (840, 280)
    for j, strokes in enumerate(DRAWINGS):
        for (x0, y0), *rest in strokes:
            page.mouse.move(pad["x"] + 280 * j + x0, pad["y"] + y0)
            page.mouse.down()
            for x, y in rest:
                page.mouse.move(pad["x"] + 280 * j + x, pad["y"] + y, steps=10)
            page.mouse.up()
    wait_for_the_answer(page)
    drawing = base64.b64decode(page.evaluate("document.getElementById('pad').toDataURL('image/png')").split(",")[1])
    answer = read_api(page.server, drawing)
    assert answer["number"] == "170" and answer["size"] == [280, 840]
    assert_shows(page, answer, (0, 0, 840, 280))
    for j, d in enumerate(answer["digits"]):  # each box in its own third of the pad
        assert 280 * j <= d["box"][1] < d["box"][3] < 280 * (j + 1), d["box"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "number.png"), full_page=True, animations="disabled")
    assert page.errors == []


@pytest.mark.mnist
def test_a_photo_of_a_number_is_shown_boxed_and_read(page, mnist):
    """A photo chosen in number mode is drawn on the pad, fitted inside it, and each digit boxed over it."""
    picks = [3, 2, 1, 18, 4]
    grey = row(mnist[2][picks])  # (170, 630)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    page.set_input_files("#photo", files=[{"name": "row.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    wait_for_the_answer(page)
    answer = read_api(page.server, buf.getvalue())
    assert answer["number"] == "".join(str(int(mnist[3][i])) for i in picks)
    height, width = grey.shape
    scale = min(840 / width, 280 / height)
    frame = ((840 - width * scale) / 2, (280 - height * scale) / 2, width * scale, height * scale)
    assert_shows(page, answer, frame)
    # The photo is on the pad, where the frame says: the paper is light inside it, the pad black outside.
    corners = page.evaluate("""([x, y]) => { const g = document.getElementById('pad').getContext('2d');
        return [g.getImageData(x + 2, y + 2, 1, 1).data[0], g.getImageData(1, 1, 1, 1).data[0]]; }""",
                            [frame[0], frame[1]])
    assert corners[0] > 200 and (corners[1] == 0 or frame[1] < 1)
    assert page.errors == []


def test_blank_says_no_ink_and_one_digit_mode_comes_back(page):
    """A blank photo in number mode shows the server's "no ink found"; switching back to one digit gives the
    280x280 pad and the one-digit answer."""
    buf = io.BytesIO()
    Image.new("L", (600, 200), 235).save(buf, format="PNG")
    page.set_input_files("#photo", files=[{"name": "blank.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    wait_for_the_answer(page)
    assert "no ink found" in page.text_content("#status")
    assert page.text_content("#prediction") == "" and page.locator("#boxes .box").count() == 0
    page.click("label:has(#mode-digit)")
    pad = page.locator("#pad").bounding_box()
    assert (pad["width"], pad["height"]) == (280, 280)
    assert page.text_content("#status") == "Draw a digit to start." and page.locator("#probs").is_visible()
    assert page.locator("#digits").is_hidden()
    page.mouse.move(pad["x"] + 140, pad["y"] + 30)
    page.mouse.down()
    page.mouse.move(pad["x"] + 143, pad["y"] + 250, steps=10)
    page.mouse.up()
    wait_for_the_answer(page)
    assert page.text_content("#prediction") == "1" and page.text_content("#status").endswith("% sure")
    assert page.errors == []
