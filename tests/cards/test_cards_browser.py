"""The HTML card in headless Chromium: it renders, makes no network request, and injects nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fairderm.cards import build_card

CHROMIUM = os.environ.get("FAIRDERM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def chromium() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (`make browser` installs Debian's chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    return CHROMIUM


def test_html_card_renders_offline_without_requests_or_injection(
    chromium: str, hostile_run: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    paths = build_card(hostile_run).write(tmp_path / "card")
    requests: list[str] = []
    dialogs: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda message: problems.append(message.text)
                    if message.type in ("error", "warning") else None)
            page.goto(paths["html"].resolve().as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3",
                                   timeout=30_000)
            heading = page.inner_text("h1")
            plots = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
            injected = page.evaluate("document.querySelectorAll('img, iframe, object, embed').length")
            # an injected label would have become a script element of its own
            inline_scripts = page.evaluate(
                "[...document.scripts].filter(s => s.textContent.trim() === 'alert(1)').length")
            screenshot = tmp_path / "card.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    leaving = [url for url in requests if not url.startswith(("file://", "data:"))]
    assert leaving == [], f"the card made network requests: {leaving[:5]}"
    assert dialogs == [] and injected == 0 and inline_scripts == 0
    assert heading == "Model card: <script>alert(1)</script>"  # shown as text
    assert plots >= 3
    assert problems == [], problems[:5]
    assert screenshot.stat().st_size > 50_000
    keep = os.environ.get("FAIRDERM_SCREENSHOT_DIR")
    if keep:  # for a human to look at the card: FAIRDERM_SCREENSHOT_DIR=/tmp pytest -m browser
        shutil.copy(screenshot, Path(keep) / "fairderm-card.png")
