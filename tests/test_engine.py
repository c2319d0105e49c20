"""The engine choice: Ray stays optional, and a bad engine, address or missing Ray is one line naming its flag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
