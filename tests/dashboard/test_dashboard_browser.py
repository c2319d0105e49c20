"""The dashboard in Debian's headless Chromium: every page, no console errors, screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairderm.dashboard.screenshots import CHROMIUM, PAGES, capture_pages, refused_in_browser, serve

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (make browser installs it)"),
]


@pytest.fixture(scope="module")
def dashboard_url(runs_dir: Path):
    with serve(runs_dir) as url:
        yield url


def test_every_page_renders_without_console_errors(dashboard_url: str, tmp_path: Path) -> None:
    errors = capture_pages(dashboard_url, tmp_path)
    assert errors == []
    shots = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(shots) == len(PAGES)
    assert all((tmp_path / name).stat().st_size > 10_000 for name in shots)  # not blank pages


def test_path_traversal_in_url_is_refused_in_browser(dashboard_url: str) -> None:
    message = refused_in_browser(dashboard_url, run="../../etc/passwd")
    assert "Refused" in message and "outside the runs folder" in message
    assert "root:" not in message
