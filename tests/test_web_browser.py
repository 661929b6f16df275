"""The page in a real browser: ``convnp serve`` in its own process, Debian's Chromium driven by Playwright. A "1", a
"7" and a "0" drawn with the mouse are read as 1, 7 and 0, and the page shows exactly the model's answer for the
drawing on its canvas (label, ten percentages, eight feature maps); Clear empties it. A screenshot of the "1" is kept
in tests/artifacts/web.png.

Nothing here waits for a length of time: the server is used once it prints the line saying it accepts connections,
and the page is read once it says (``aria-busy="false"``) that it has shown its answer to the final drawing, which
is then compared with the answer computed here, without the server, for the pixels on its canvas. The deadlines only
bound how long a failure takes to show.
"""

import base64
import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import serve

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
FAILURE_DEADLINE_S = 120  # how long a broken server or page may take to be reported; never waited when all is well

pytest.importorskip("fastapi", reason="the web extra is not installed (pip install 'convnp[web]')")
pytest.importorskip("uvicorn", reason="the web extra is not installed (pip install 'convnp[web]')")
pytest.importorskip("PIL", reason="Pillow is not installed (pip install 'convnp[web]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"{CHROMIUM} not found: apt-get install chromium (scripts/test.sh does it when run as root)",
        allow_module_level=True,
    )

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
    with serve(checkpoint_path, deadline_s=FAILURE_DEADLINE_S) as (url, _):
        with urllib.request.urlopen(f"{url}/api/health", timeout=FAILURE_DEADLINE_S) as r:  # ready: no retry
            assert r.status == 200
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            timeout=FAILURE_DEADLINE_S * 1000,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the server, its JavaScript errors collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    pg = context.new_page()
    pg.set_default_timeout(FAILURE_DEADLINE_S * 1000)  # every wait below ends on an event; this bounds failures
    pg.errors = []
    pg.on("pageerror", lambda err: pg.errors.append(str(err)))
    pg.goto(server + "/")
    try:
        yield pg
    finally:
        context.close()


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
