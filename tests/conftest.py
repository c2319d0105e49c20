"""Shared fixtures: the CLI runner, the shared PAD-UFES-20 subset, small cohorts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FAIRDERM_SHARED", REPO_ROOT.parent / "shared")) / "data"
PAD_SUBSET = SHARED_DATA / "pad-ufes-20-subset"


def pytest_configure(config: pytest.Config) -> None:
    """Never read or write the user's feature cache: module- and session-scoped fixtures
    (which the per-test fixture below cannot reach) get one private cache for the session."""
    import tempfile

    os.environ["FAIRDERM_CACHE"] = tempfile.mkdtemp(prefix="fairderm-test-cache-")
    _share_the_cores_between_workers()


def _share_the_cores_between_workers() -> None:
    """Under xdist, each worker (and every process it starts) runs on its own share of the cores.

    fairderm sizes its process pools and torch's threads from the cores this process may run on
    (``fairderm._processes.default_workers``): without a share, each of ``-n 2``'s workers ran two
    OpenMP threads or two pool processes on a 2-core machine, and the threads' spin-waiting on each
    other cost about a quarter of the suite's CPU time.
    """
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and count.isdigit() and hasattr(os, "sched_setaffinity")):
        return
    cores = sorted(os.sched_getaffinity(0))
    if int(count) < 2 or len(cores) < 2:
        return
    index, count = int(worker[2:]), int(count)
    os.sched_setaffinity(0, cores[index % len(cores)::count])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, slow and browser tests first.

    ``make test`` runs ``pytest -n 2 --dist loadfile --no-loadscope-reorder``: a test file is one unit of work,
    so a module's fixture (the demo, a trained head) is built on one worker only, and units are handed out in
    collection order, where a minute-long file handed out last would leave the other worker idle.
    (``--dist loadgroup`` groups nothing under pytest 9: xdist 3.8 renames ``item._nodeid``, which
    pytest 9 no longer reads.)"""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: not any(item.get_closest_marker(name) for name in ("slow", "browser")))


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    shutil.rmtree(os.environ.get("FAIRDERM_CACHE", ""), ignore_errors=True)


@pytest.fixture(autouse=True)
def _private_feature_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own feature cache, so that no test sees another's features."""
    monkeypatch.setenv("FAIRDERM_CACHE", str(tmp_path / "fairderm-cache"))


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``fairderm ARGS...`` in-process; returns exit code, stdout and stderr."""
    from fairderm.cli import main

    def _run(*args: object) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


@pytest.fixture(scope="session")
def pad_subset() -> Path:
    """The shared PAD-UFES-20 subset, used in place; skip when ../shared is absent."""
    if not (PAD_SUBSET / "labels.csv").is_file():
        pytest.skip(f"shared PAD-UFES-20 subset not found at {PAD_SUBSET}")
    return PAD_SUBSET


@pytest.fixture(scope="module")
def ray_local():
    """One Ray instance per test module: starting Ray takes seconds; fairderm uses an initialised one.

    One CPU: under ``make test`` a worker runs on one core, and every model actor Ray starts imports torch
    and fairderm anew; a second actor only doubled that cost on the same core."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
