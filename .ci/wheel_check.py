"""Driver of .ci/wheel_check.sh: what the installed wheel must do, in two phases.

``core VENV WORK``, run by VENV's own Python (the wheel installed without
extras): torch, Streamlit and fairlearn are not importable; fairderm is the
installed one; an audit of a predictions Parquet and an audit of a scripted
OpenAI-compatible VLM server on 127.0.0.1 run, each with gate, card and
verify (tests/helpers/install_flow.py), writing under WORK.

``dashboard VENV WORK``, run by a Python with Playwright (the development
venv), after ``pip install 'WHEEL[dashboard]'`` into VENV: the installed
``fairderm dashboard WORK/audits`` (the cohort beside the runs folder, as in
the README) answers 200 on ``/_stcore/health``, Chromium renders the Cases
page with a cohort image, and SIGTERM to the command frees the port.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def core(venv: Path, work: Path) -> None:
    # fairderm is imported from the venv's installed wheel first; only then does the clone go on sys.path,
    # for the test helpers (tests.helpers), so that the import already made is the one every later import gets
    importlib.import_module("fairderm")

    sys.path.insert(0, str(REPO))
    from tests.helpers.install_flow import OPTIONAL_MODULES, audit_gate_card_verify, write_cohort, write_specs
    from tests.helpers.vlm_server import ScriptedVLM

    present = [name for name in OPTIONAL_MODULES if importlib.util.find_spec(name) is not None]
    assert not present, f"a core install must not have {present}"
    installed = importlib.util.find_spec("fairderm")
    assert installed is not None and Path(installed.origin).is_relative_to(venv.resolve()), installed
    fairderm = [str(venv / "bin" / "fairderm")]
    work.mkdir(parents=True, exist_ok=True)
    cohort = write_cohort(fairderm, work)
    with ScriptedVLM(default_label="melanoma") as server:
        specs = write_specs(work, cohort, server.endpoint)
        for name, spec in specs.items():
            start = time.monotonic()
            steps = audit_gate_card_verify(fairderm, spec)
            verdict = next(line for line in steps[0].output.splitlines() if line.startswith("verdict:"))
            print(f"core: {name} audit, gate, card, verify in {time.monotonic() - start:.0f} s; {verdict}")
        assert server.hits, "the openai audit never asked the server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _health(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return answer.status
    except OSError:
        return None


def dashboard(venv: Path, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([str(venv / "bin" / "fairderm"), "dashboard", str(work / "audits"), "--port",
                                   str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while _health(url) != 200:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise AssertionError(f"the dashboard never became healthy:\n{log.read().decode()[-3000:]}")
                time.sleep(0.5)
            print(f"dashboard: {url}/_stcore/health answered 200")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/?page=Cases", timeout=60_000)
                page.get_by_role("heading", name="Cases").first.wait_for(timeout=60_000)
                image = page.locator('[data-testid="stImage"] img').first
                image.wait_for(timeout=60_000)
                page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                                       timeout=30_000)
                page.screenshot(path=str(work / "dashboard-cases.png"))
                browser.close()
            print(f"dashboard: Chromium rendered the Cases page with a cohort image ({work / 'dashboard-cases.png'})")
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            deadline = time.monotonic() + 15
            while _health(url) is not None and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _health(url) is None, "streamlit still serves after SIGTERM to fairderm dashboard"
            print("dashboard: SIGTERM stopped it and its Streamlit server")
        finally:
            with contextlib.suppress(ProcessLookupError):  # its own session: whatever is left of it
                os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    phase, venv_dir, work_dir = sys.argv[1:4]
    {"core": core, "dashboard": dashboard}[phase](Path(venv_dir), Path(work_dir))
