"""Open an HTML page in headless Chromium (Debian's package, driven by Playwright without its own
browser download): console errors, failed requests, the images and a full-page screenshot."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import importable, require

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("AUTOML_TEST_ARTIFACTS", Path(__file__).resolve().parent / "artifacts"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WHY_CHROMIUM = ("the browser check of report.html drives Debian's chromium package through Playwright "
                "(.ci/run installs both)")
needs_chromium = pytest.mark.requires("chromium", Path(CHROMIUM).exists() and importable("playwright"), WHY_CHROMIUM)


def render(page_file: Path, screenshot: Path) -> dict[str, Any]:
    """Load `page_file`; returns {"errors": [...], "images": [(alt, loaded), ...], "text": body text}."""
    require("playwright", importable("playwright"), WHY_CHROMIUM)
    from playwright.sync_api import sync_playwright

    screenshot.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        # Playwright gives each launch a fresh temporary profile (its own --user-data-dir)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
            # anything but the page itself would be a fetch: a self-contained report makes none
            page.on("request", lambda req: errors.append(f"request: {req.url}")
                    if not req.url.startswith(("file:", "data:")) else None)
            page.goto(page_file.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
            text = page.evaluate("document.body.innerText")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"errors": errors, "images": [tuple(i) for i in images], "text": text}
