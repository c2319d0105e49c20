"""Start the dashboard, drive every page in headless Chromium, save screenshots.

    python -m fairderm.dashboard.screenshots [RUNS_DIR] [--out docs/screenshots]

Without RUNS_DIR a synthetic sample run (``fairderm/dashboard/sample_run.py``) is
written to a temporary folder. The browser test uses the same functions.
Chromium is Debian's (``/usr/bin/chromium``); Playwright downloads nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from fairderm.dashboard import streamlit_argv

APP = Path(__file__).resolve().parent / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
PAGES = ["Overview", "Disparities", "Intersections", "Calibration", "Skin tone", "Cases",
         "Mitigation", "Compare runs", "Model card"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(argv: list[str], port: int, *, timeout: float = 60.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run a Streamlit command line serving ``port``; yields its URL and process once healthy, stops it afterwards."""
    # A file, not a pipe: a pipe nobody reads can fill up and stall the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            with httpx.Client(timeout=1.0) as client:  # one client for every poll (each new one reads the CA bundle)
                while True:
                    if process.poll() is not None:
                        log.seek(0)
                        raise RuntimeError(f"streamlit exited: {log.read().decode(errors='replace')}")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{url}/_stcore/health").status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError("streamlit did not become healthy in time")
                    time.sleep(0.3)
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def serve(runs_dir: str | Path, *, timeout: float = 60.0) -> Iterator[str]:
    """Serve the dashboard on a free local port; yields its URL and stops it afterwards."""
    port = free_port()
    with serve_app(streamlit_argv(APP, Path(runs_dir), port=port, host="127.0.0.1"), port,
                   timeout=timeout) as (url, _):
        yield url


def wait_for_script(page, heading: str, timeout_ms: float) -> None:
    """Wait until a Streamlit page shows ``heading`` and its script has finished running (its widgets are live)."""
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout_ms)
    # The app root carries the script state; wait until the rerun has finished.
    page.wait_for_function(
        "() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
        " return app && app.getAttribute('data-test-script-state') !== 'running'"
        " && !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]'); }",
        timeout=timeout_ms)


def _wait_for_page(page, heading: str, timeout_ms: float) -> None:
    wait_for_script(page, heading, timeout_ms)
    # Elements load after the script has finished (a skeleton stands in meanwhile) and plotly draws after its
    # element mounts: wait until no skeleton is left and every chart has drawn its SVG.
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stSkeleton\"]')"
        " && [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(chart => chart.querySelector('.main-svg'))",
        timeout=timeout_ms)


def capture_pages(url: str, out_dir: Path | None, *, timeout_ms: float = 60_000) -> list[str]:
    """Open the app, click through every page, screenshot each; returns console errors."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.goto(url)
            _wait_for_page(page, PAGES[0], timeout_ms)
            for number, name in enumerate(PAGES, start=1):
                page.get_by_test_id("stSidebar").get_by_text(name, exact=True).click()
                _wait_for_page(page, name, timeout_ms)
                if name == "Compare runs":
                    page.get_by_role("button", name="Compute paired intervals").click()
                    page.get_by_text("with paired 95% CI").first.wait_for(timeout=timeout_ms)
                    _wait_for_page(page, name, timeout_ms)
                if page.get_by_test_id("stException").count():
                    errors.append(f"{name}: the app raised an exception")
                if out_dir is not None:
                    slug = name.lower().replace(" ", "-")
                    page.screenshot(path=str(out_dir / f"{number:02d}-{slug}.png"))
        finally:
            browser.close()
    return errors


def refused_in_browser(url: str, *, run: str, timeout_ms: float = 60_000) -> str:
    """Open the app with ``?run=RUN`` and return the text of the error it shows."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{url}/?run={run}")
            alert = page.get_by_test_id("stAlert").first
            alert.wait_for(timeout=timeout_ms)
            return alert.inner_text()
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", nargs="?", help="runs folder (default: a synthetic sample run)")
    parser.add_argument("--out", default="docs/screenshots", help="folder for the PNG files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = args.runs_dir
        if runs_dir is None:
            from fairderm.dashboard.sample_run import write_sample_runs

            write_sample_runs(tmp)
            runs_dir = tmp
        with serve(runs_dir) as url:
            errors = capture_pages(url, out)
    for line in errors:
        print(line, file=sys.stderr)
    print(f"screenshots in {out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
