"""The page in a real browser: ``convnp serve`` in its own process, Debian's Chromium driven by Playwright, a "1"
drawn with the mouse, the prediction and probabilities read back, a screenshot kept in tests/artifacts/web.png."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"

pytest.importorskip("fastapi", reason="the web extra is not installed (pip install 'convnp[web]')")
pytest.importorskip("uvicorn", reason="the web extra is not installed (pip install 'convnp[web]')")
pytest.importorskip("PIL", reason="Pillow is not installed (pip install 'convnp[web]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"{CHROMIUM} not found: apt-get install chromium (scripts/test.sh does it when run as root)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def checkpoint_path(digits_checkpoint):
    """The shared trained notebook model (tests/conftest.py)."""
    return digits_checkpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(checkpoint_path):
    """``python -m convnp serve`` on a free loopback port; yields its base URL, then stops it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "convnp", "serve", str(checkpoint_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"convnp serve exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{url}/api/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("convnp serve did not answer /api/health within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_draw_a_one_and_see_the_prediction(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            errors = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(server + "/")
            pad = page.locator("#pad").bounding_box()
            assert pad["width"] == 280 and pad["height"] == 280
            x = pad["x"] + 140
            page.mouse.move(x, pad["y"] + 50)
            page.mouse.down()
            page.mouse.move(x + 4, pad["y"] + 230, steps=10)  # a "1", a hair slanted
            page.mouse.up()

            page.wait_for_function("/^[0-9]$/.test(document.getElementById('prediction').textContent)", timeout=10_000)
            page.wait_for_function("document.querySelectorAll('#maps canvas').length > 0", timeout=10_000)
            label = int(page.text_content("#prediction"))
            percents = [float(page.text_content(f"#prob-{k}").rstrip("%")) for k in range(10)]
            assert sum(percents) == pytest.approx(100, abs=0.6)  # each rounded to 0.1
            assert max(percents) == percents[label]
            assert page.locator("#maps canvas").count() == 8  # the notebook model's 8 filters
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "web.png"), full_page=True)

            page.click("#clear")
            assert page.text_content("#prediction") == ""
            assert page.text_content("#prob-0") == "0.0%"
            assert errors == []
        finally:
            browser.close()
