"""What the browser tests share: Debian's Chromium driven by Playwright, and pages that collect their JavaScript
errors. A test module calls :func:`require_browser` at import, which skips it (and says why) where the web extra,
Pillow, Playwright or Chromium is missing; in CI a skip fails the run (tests/suite_rules.py)."""

from __future__ import annotations

import contextlib
import os
import urllib.request

import pytest
from helpers import serve

CHROMIUM = "/usr/bin/chromium"
FAILURE_DEADLINE_S = 120  # how long a broken server or page may take to be reported; never waited when all is well

_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
          "--disable-sync", "--no-first-run"]


def require_browser():
    """Skip the calling module unless everything a browser test needs is here; returns Playwright's sync API."""
    pytest.importorskip("fastapi", reason="the web extra is not installed (pip install 'convnp[web]')")
    pytest.importorskip("uvicorn", reason="the web extra is not installed (pip install 'convnp[web]')")
    pytest.importorskip("PIL.Image", reason="Pillow is not installed (pip install 'convnp[web]')")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium (scripts/test.sh does it when run as root)",
                    allow_module_level=True)
    return sync_api


@contextlib.contextmanager
def chromium(sync_api):
    """A headless Chromium for the length of the block (a module-scoped fixture's)."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, timeout=FAILURE_DEADLINE_S * 1000,
                                    args=_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(browser, url: str, *, width: int = 1000, height: int = 760):
    """A fresh page on ``url`` in its own context; its JavaScript errors are collected in ``page.errors`` and
    ``page.server`` is ``url``. Every wait on it is bounded by :data:`FAILURE_DEADLINE_S` (failures only)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(FAILURE_DEADLINE_S * 1000)
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.server = url
    page.goto(url + "/")
    try:
        yield page
    finally:
        context.close()


@contextlib.contextmanager
def serving(checkpoint):
    """``convnp serve`` of ``checkpoint`` in its own process (:func:`helpers.serve`), checked healthy once
    (``GET /api/health``, no retry: it prints that it accepts connections first); yields its base URL."""
    with serve(checkpoint, deadline_s=FAILURE_DEADLINE_S) as (url, _):
        with urllib.request.urlopen(f"{url}/api/health", timeout=FAILURE_DEADLINE_S) as r:
            assert r.status == 200
        yield url
