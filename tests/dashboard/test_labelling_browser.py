"""The tone labelling page in headless Chromium: five answers by keyboard, a killed server, a resume at the sixth."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairderm.cohort import Cohort, synthesize_cohort
from fairderm.commands.tone_labels import labelling_app_path, labelling_argv
from fairderm.dashboard.screenshots import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, free_port, serve_app, wait_for_script
from fairderm.tone import estimate_tone, new_label_sample, read_tone_labels, write_labels, write_tone

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (make browser installs it)"),
]

N_IMAGES = 8


@pytest.fixture(scope="module")
def labelling_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cohort, Path]:
    root = tmp_path_factory.mktemp("labelling")
    cohort = synthesize_cohort(root / "cohort", n=N_IMAGES, seed=3, workers=1, image_size=128)
    tone = estimate_tone(cohort, workers=1)
    write_tone(root / "tone.parquet", tone, cohort)
    labels = new_label_sample(cohort, tone, tone_path=root / "tone.parquet", scale="fitzpatrick", n=N_IMAGES, seed=1)
    write_labels(root / "labels.csv", labels)
    return cohort, root / "labels.csv"


@contextlib.contextmanager
def _serving(cohort: Cohort, labels: Path, timeout: float = 90.0) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    argv = labelling_argv(labelling_app_path(), cohort.root, labels, labeller="tester", port=port)
    with serve_app(argv, port, timeout=timeout) as served:
        yield served


def _watch_file(path: Path, cohort: Cohort, stop: threading.Event, failures: list[str]) -> None:
    """Read the labels file over and over while the page writes it: every version of it must parse.

    The bytes are read every 5 ms (a torn write would show a last line cut short), and each new version is
    parsed and checked in full; a full check every poll kept a third of the core from the browser."""
    parsed = None
    while not stop.is_set():
        try:
            content = path.read_bytes()
            if content and not content.endswith(b"\n"):
                failures.append(f"a torn file: {content[-60:]!r}")
            if content != parsed:
                read_tone_labels(path, cohort)
                parsed = content
        except Exception as exc:  # noqa: BLE001 - any failure to read is the defect under test
            failures.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.005)


def _heading(page, text: str) -> None:
    """Wait until the page shows ``text`` as a heading and has finished running (shortcuts are live)."""
    wait_for_script(page, text, 60_000)
    page.get_by_role("button", name="Cannot tell").wait_for(timeout=60_000)


def test_five_keyboard_answers_survive_a_killed_server_and_resume_at_the_sixth(labelling_job) -> None:
    from playwright.sync_api import sync_playwright

    cohort, labels_path = labelling_job
    stop, failures = threading.Event(), []
    watcher = threading.Thread(target=_watch_file, args=(labels_path, cohort, stop, failures), daemon=True)
    watcher.start()
    keys = ["1", "2", "3", "4", "X"]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                with _serving(cohort, labels_path) as (url, process):
                    page = browser.new_page(viewport=VIEWPORT)
                    page.goto(url)
                    _heading(page, f"Image 1 of {N_IMAGES}")
                    for done, key in enumerate(keys, start=1):
                        page.keyboard.press(key)
                        _heading(page, f"Image {done + 1} of {N_IMAGES}")
                        labels = read_tone_labels(labels_path, cohort)
                        assert int(labels.answered().sum()) == done
                    process.kill()
                    process.wait(timeout=10)
                with _serving(cohort, labels_path) as (url, _):
                    page = browser.new_page(viewport=VIEWPORT)
                    page.goto(url)
                    _heading(page, f"Image 6 of {N_IMAGES}")
                    assert page.get_by_text(f"5 of {N_IMAGES} answered").count() == 1
            finally:
                browser.close()
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert failures == []
    labels = read_tone_labels(labels_path, cohort)
    assert labels.frame["label"].iloc[:5].tolist() == ["1", "2", "3", "4", "cannot tell"]
    assert labels.frame["label"].iloc[5:].isna().all()
    assert (labels.frame["labeller"].iloc[:5] == "tester").all()
    assert labels.frame["labelled_at"].iloc[:5].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
