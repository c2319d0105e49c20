"""A core install (no extras) audits a predictions file and a served VLM; a missing extra is one line naming it.

torch, Streamlit and fairlearn are made unimportable in a subprocess (a
``sys.meta_path`` finder that refuses them), as on a machine with
``pip install fairderm`` only; ``.ci/wheel_check.sh`` does the same with the
built wheel in a fresh venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairderm.cohort import synthesize_cohort
from tests.helpers.install_flow import (
    BLOCKING_LAUNCHER,
    OPTIONAL_MODULES,
    audit_gate_card_verify,
    write_cohort,
    write_specs,
)
from tests.helpers.vlm_server import ScriptedVLM  # the scripted model server of the inference tests

REPO = Path(__file__).resolve().parent.parent
BLOCKED = ",".join(OPTIONAL_MODULES)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _blocked_fairderm(blocked: str = BLOCKED) -> list[str]:
    return [sys.executable, "-c", BLOCKING_LAUNCHER, blocked]


@pytest.mark.slow
def test_audits_of_a_predictions_parquet_and_a_served_vlm_run_without_torch_streamlit_or_fairlearn(tmp_path):
    fairderm = _blocked_fairderm()
    cohort = write_cohort(fairderm, tmp_path, env=_env())
    with ScriptedVLM(default_label="melanoma") as server:
        specs = write_specs(tmp_path, cohort, server.endpoint)
        for spec in specs.values():
            steps = audit_gate_card_verify(fairderm, spec, env=_env())
            assert "verified:" in steps[-1].output
        assert server.hits, "the openai audit never asked the server"
    assert (tmp_path / "card-openai" / "card.html").is_file()


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        ("torch", ["infer", "COHORT", "--backend", "torch", "--model", "m", "--out", "p.parquet"], "torch"),
        ("torch", ["infer", "COHORT", "--backend", "backbone", "--model", "m", "--out", "p.parquet"], "torch"),
        ("torch", ["router", "train", "COHORT", "--out", "router"], "torch"),
        ("streamlit", ["dashboard", "RUNS"], "dashboard"),
    ],
    ids=["torch-backend", "backbone-backend", "router", "dashboard"],
)
def test_command_needing_a_missing_extra_says_which_in_one_line(tmp_path, blocked, args, extra):
    # the input cohort is made in this process: only the command under test runs without the extra
    cohort = synthesize_cohort(tmp_path / "cohort", n=6, seed=0, workers=1).root if "COHORT" in args else None
    (tmp_path / "runs").mkdir()
    args = [str(cohort) if a == "COHORT" else str(tmp_path / "runs") if a == "RUNS" else a for a in args]
    done = subprocess.run([*_blocked_fairderm(blocked), *args], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"pip install 'fairderm[{extra}]'" in lines[0]


def test_fairlearn_baselines_without_the_mitigation_extra_name_it():
    code = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'fairlearn':\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "import numpy as np\n"
        "from fairderm.errors import FairdermError\n"
        "from fairderm.moe._baselines import threshold_optimizer\n"
        "probs, y, groups = np.full((8, 2), 0.5), np.array([0, 1] * 4), np.array(['a', 'b'] * 4)\n"
        "try:\n"
        "    threshold_optimizer(probs, y, groups, probs, groups, n_classes=2, seed=0)\n"
        "except FairdermError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert "pip install 'fairderm[mitigation]'" in done.stdout, done.stdout + done.stderr


def test_provenance_does_not_import_torch_to_look_for_a_gpu():
    # torch installed but unused: environment_info records no GPU and leaves torch unimported
    code = "import sys; from fairderm._io import environment_info; info = environment_info(); " \
           "print(info['gpu'], 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.split() == ["None", "False"]
