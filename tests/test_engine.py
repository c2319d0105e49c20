"""The engine choice: Ray stays optional, and a bad engine, address or missing Ray is one line naming its flag."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from fairderm._engine import Engine, block_bounds, require_ray
from fairderm.errors import FairdermError

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_importing_fairderm_and_its_cli_never_imports_ray():
    code = ("import sys, fairderm, fairderm.cli, fairderm.tone, fairderm.inference, fairderm.audit; "
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "False"


def test_ray_engine_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(FairdermError, match=r"^engine 'ray' needs Ray, which is not installed: "
                                            r"pip install 'fairderm\[ray\]'$"):
        require_ray()


def test_cli_engine_ray_without_ray_is_one_line_naming_the_extra(monkeypatch, run_cli, tmp_path):
    from fairderm.cohort import synthesize_cohort

    cohort = synthesize_cohort(tmp_path / "cohort", n=4, seed=1, workers=1, image_size=64)
    monkeypatch.setitem(sys.modules, "ray", None)
    result = run_cli("tone", "estimate", cohort.root, "--out", tmp_path / "tone.parquet", "--engine", "ray")
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'fairderm[ray]'" in lines[0]


@pytest.mark.parametrize(("flags", "flag"), [
    (["--engine", "spark"], "--engine"),
    (["--ray-address", "auto"], "--ray-address"),
    (["--engine", "ray", "--ray-address", "10.0.0.1:6379"], "--ray-address"),
])
def test_bad_engine_flags_are_rejected_naming_the_flag(run_cli, tmp_path, flags, flag):
    result = run_cli("tone", "estimate", tmp_path, "--out", tmp_path / "tone.parquet", *flags)
    assert result.exit_code != 0 and flag in result.stderr


@pytest.mark.parametrize("settings", [
    {"name": "dask"}, {"address": "auto"}, {"name": "ray", "address": "10.0.0.1:6379"}, {"actor_gpus": -1},
    {"block_size": 0},
])
def test_engine_settings_out_of_range_are_rejected(settings):
    with pytest.raises(ValidationError):
        Engine(**settings)


def test_blocks_are_fixed_by_position_so_a_rerun_finds_the_same_ones():
    assert block_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert block_bounds(0, 4) == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The driver runs in a fresh process: in one that has already started and shut down a local Ray instance (another
# test module's), Ray 2.60 cannot serve the objects it puts into a cluster joined afterwards (OwnerDiedError).
# It waits for both nodes itself: one Ray client process instead of a probe process and then the driver.
CLUSTER_DRIVER = """
import sys, time
import ray
from fairderm._engine import Engine
from fairderm.cohort import load_cohort
from fairderm.tone import estimate_tone
ray.init(address="auto", log_to_driver=False)
deadline = time.monotonic() + 180
while sum(node["Alive"] for node in ray.nodes()) < 2:
    if time.monotonic() > deadline:
        sys.exit("the two-node Ray cluster did not come up in 180 s")
    time.sleep(0.2)
estimate_tone(load_cohort(sys.argv[1]), engine=Engine(name="ray", address="auto", block_size=2)).to_pickle(sys.argv[2])
"""


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def two_node_cluster(monkeypatch):
    """A Ray head and a second node on this machine, one CPU each; both killed (their process groups) after.

    The second node starts once the head's port listens; the driver waits until both nodes are alive."""
    pytest.importorskip("ray")
    port = _free_port()
    ray_cli = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus=1", "--disable-usage-stats", "--block"]
    # a throw-away cluster on this machine: no token to share between its nodes and its drivers
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RAY_ADDRESS": address}
    nodes = [subprocess.Popen([ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                              env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 180
        while not _listening(port):
            if nodes[0].poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Ray head did not start listening in 180 s")
            time.sleep(0.1)
        nodes.append(subprocess.Popen([ray_cli, "start", f"--address={address}", '--resources={"second": 1}',
                                       *common], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield env
    finally:
        # a throw-away cluster: killed outright (a node's graceful stop takes seconds and saves nothing here)
        for node in reversed(nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        # `ray start --head` left its address for later ray.init() calls on this machine: the cluster is gone
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        with contextlib.suppress(OSError):
            if current.read_text().strip().endswith(f":{port}"):
                current.unlink()


@pytest.mark.slow
def test_tone_on_a_two_node_cluster_is_the_local_table(two_node_cluster, tmp_path):
    from fairderm.cohort import synthesize_cohort
    from fairderm.tone import estimate_tone

    cohort = synthesize_cohort(tmp_path / "cohort", n=24, seed=2, workers=1, image_size=96)
    local = estimate_tone(cohort, workers=1)
    # `--ray-address auto` joins the cluster RAY_ADDRESS names
    subprocess.run([sys.executable, "-c", CLUSTER_DRIVER, str(cohort.root), str(tmp_path / "tone.pkl")],
                   env=two_node_cluster, check=True, capture_output=True)
    on_cluster = pd.read_pickle(tmp_path / "tone.pkl")
    pd.testing.assert_frame_equal(on_cluster, local, check_exact=True)
    assert on_cluster.attrs == local.attrs
