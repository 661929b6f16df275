"""The drawing page takes photos too, in a real browser (``convnp serve`` in its own process, Debian's Chromium
driven by Playwright, as tests/test_web_browser.py does): the camera input asks for the phone's camera
(``capture``), a photo chosen is read as the model reads the same bytes, and the page shows the 28x28 picture the
network was given, for a photo and for a drawing; a blank photo shows the server's "no ink found".

Nothing waits for a length of time: a page is read once its result section says (``aria-busy="false"``) that it has
shown its answer; the deadlines only bound how long a failure takes to show.
"""

import base64
import io

import numpy as np
import pytest
from browser import chromium, open_page, require_browser, serving

sync_api = require_browser()

from PIL import Image  # noqa: E402
from test_digit_photo import photo, seven  # noqa: E402

from convnp.data.image_files import read_image_bytes  # noqa: E402
from convnp.data.images import WORK_SIDE  # noqa: E402
from convnp.web.app import DigitClassifier  # noqa: E402


@pytest.fixture(scope="module")
def server(digits_checkpoint):
    with serving(digits_checkpoint) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with chromium(sync_api) as browser, open_page(browser, server, height=900) as pg:
        yield pg


def choose(page, data: bytes, name: str) -> None:
    """Give the page a picture through its 'Choose a picture' input and wait for its answer."""
    page.set_input_files("#photo", files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])
    page.wait_for_function("() => document.getElementById('result').getAttribute('aria-busy') === 'false' && "
                           "document.getElementById('status').textContent !== 'Reading the photo...'")


def prepared_on_page(page) -> np.ndarray:
    """The 'What the network saw' canvas, one channel `(H, W)`."""
    width, height, red = page.evaluate("""() => { const cv = document.getElementById('prepared');
        const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
        return [cv.width, cv.height, Array.from(d.filter((_, i) => i % 4 === 0))]; }""")
    return np.array(red, dtype=np.uint8).reshape(height, width)


def expected_prepared(answer) -> np.ndarray:
    h, w, c = answer.prepared.shape
    return np.frombuffer(base64.b64decode(answer.prepared.data), np.uint8).reshape(h, w, c)[..., 0]


def test_the_camera_input_asks_for_the_camera(page):
    assert page.get_attribute("#camera", "capture") == "environment"
    assert page.get_attribute("#camera", "accept") == page.get_attribute("#photo", "accept") == "image/*"


def test_a_photo_is_read_and_what_the_network_saw_is_shown(page, digits_checkpoint):
    buf = io.BytesIO()
    Image.fromarray(photo().astype(np.uint8)).convert("RGB").resize((900, 720)).save(buf, format="JPEG", quality=80)
    data = buf.getvalue()
    choose(page, data, "seven.jpg")
    # The model's answer for the same bytes, decoded as the server decodes an upload for a digit model.
    answer = DigitClassifier(digits_checkpoint).classify(read_image_bytes(data, max_side=WORK_SIDE), False)
    assert page.text_content("#prediction") == answer.class_name
    assert page.text_content("#status") == f"{100 * answer.probabilities[answer.label]:.1f}% sure"
    shown = prepared_on_page(page)
    assert shown.shape == (28, 28) and shown.max() == 255
    np.testing.assert_array_equal(shown, expected_prepared(answer))
    # The digit found is the seven, centred as MNIST's: what was drawn, not the shadow or the light's fall.
    clean = DigitClassifier(digits_checkpoint).classify(255 - 255 * seven(), False)
    a, b = shown.astype(float), expected_prepared(clean).astype(float)
    assert (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()) > 0.9
    assert page.errors == []


def test_a_blank_photo_says_no_ink_and_a_drawing_shows_its_digit(page, digits_checkpoint):
    buf = io.BytesIO()
    Image.fromarray(photo(coverage=np.zeros((240, 300))).astype(np.uint8)).save(buf, format="JPEG", quality=80)
    choose(page, buf.getvalue(), "blank.jpg")
    assert "no ink found" in page.text_content("#status") and page.text_content("#prediction") == ""
    pad = page.locator("#pad").bounding_box()
    page.mouse.move(pad["x"] + 140, pad["y"] + 30)
    page.mouse.down()
    page.mouse.move(pad["x"] + 143, pad["y"] + 250, steps=10)
    page.mouse.up()
    page.locator('#result[aria-busy="false"]').wait_for()
    drawing = base64.b64decode(page.evaluate("document.getElementById('pad').toDataURL('image/png')").split(",")[1])
    answer = DigitClassifier(digits_checkpoint).classify(read_image_bytes(drawing), False)
    np.testing.assert_array_equal(prepared_on_page(page), expected_prepared(answer))
    assert page.errors == []


def test_a_phone_sized_photo_is_scaled_by_the_page_and_read(page, digits_checkpoint):
    """A photo over the server's 1 MiB (a phone's, several megapixels) is scaled by the page before it is sent,
    and read as the same digit as the drawing it shows."""
    from convnp.web.app import MAX_BODY_BYTES

    noisy = photo(noise=10.0)
    big = Image.fromarray(noisy.astype(np.uint8)).convert("RGB").resize((3000, 2400), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=97)
    assert len(buf.getvalue()) > MAX_BODY_BYTES
    choose(page, buf.getvalue(), "phone.jpg")
    clean = DigitClassifier(digits_checkpoint).classify(255 - 255 * seven(), False)
    assert page.text_content("#prediction") == clean.class_name, page.text_content("#status")
    assert page.text_content("#status").endswith("% sure")
    assert page.errors == []
