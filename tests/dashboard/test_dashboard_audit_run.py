"""The dashboard on a run folder written by ``fairderm audit`` (not the sample writer)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "fairderm" / "dashboard" / "app.py"
PAGES = ["Overview", "Disparities", "Intersections", "Calibration", "Skin tone", "Cases",
         "Mitigation", "Compare runs", "Model card"]
SPEC = """\
name: erm
cohort:
  path: ../cohort
model:
  backend: file
  model: ../predictions/erm.csv
tone:
  source: column
  column: fitzpatrick_group
strata:
  attributes: [fitzpatrick_group, sex]
  intersections:
    - [fitzpatrick_group, sex]
  min_n: 30
bootstrap:
  n_boot: 100
  ci: percentile
policy: policy.yaml
"""


@pytest.fixture(scope="module")
def audited(runs_dir: Path, run_ids: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fairderm.cli import main

    root = tmp_path_factory.mktemp("audited")
    shutil.copytree(runs_dir / "cohort", root / "cohort")
    (root / "predictions").mkdir()
    (root / "audits").mkdir()
    predictions = pd.read_parquet(runs_dir / run_ids[0] / "predictions.parquet")
    predictions = predictions[predictions["status"] == "ok"]
    keep = ["image_id", "pred", *[c for c in predictions if c.startswith("prob_")]]
    predictions[keep].to_csv(root / "predictions" / "erm.csv", index=False)
    (root / "audits" / "erm.yaml").write_text(SPEC)
    shutil.copyfile(REPO / "audits" / "policy.example.yaml", root / "audits" / "policy.yaml")
    # The example policy gates estimated tone groups, which this run lacks: any verdict will do.
    assert main(["audit", str(root / "audits" / "erm.yaml")]) in (0, 1, 2, 3)
    return root


@pytest.mark.slow
def test_every_page_opens_on_an_audit_run(audited: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRDERM_RUNS_DIR", str(audited))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    (run_id,) = at.sidebar.selectbox(key="run").options
    assert run_id.startswith("audits/erm/runs/")
    assert any("Gate verdict" in m.value for m in at.markdown)
    assert at.dataframe[0].value.columns[0] == "verdict"  # the gate's rules, nested details left out
    for page in PAGES:
        at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
    at.sidebar.radio(key="page").set_value("Disparities").run()
    assert len(at.get("plotly_chart")) == 2
    at.sidebar.radio(key="page").set_value("Cases").run()
    assert len(at.image) > 0  # the cohort next to audits/ was found inside the runs folder


@pytest.mark.slow
def test_dashboard_on_the_audits_folder_shows_the_cohort_images_and_labels(audited: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # As the README runs it (`fairderm dashboard demo-output/audits`): the cohort is beside the runs folder.
    monkeypatch.setenv("FAIRDERM_RUNS_DIR", str(audited / "audits"))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.sidebar.radio(key="page").set_value("Cases").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.image) > 0, [c.value for c in at.caption]
    assert "label" in at.dataframe[-1].value.columns


def test_run_images_are_confined_to_the_cohort_images_root(audited: Path) -> None:
    from fairderm.dashboard.run_data import RunsRoot, load_run

    runs = RunsRoot.open(audited / "audits")
    run = load_run(runs, runs.run_ids()[0])
    assert run.images_root == (audited / "cohort").resolve()
    first = str(run.manifest["image"].iloc[0])
    assert run.image_path(first) == (audited / "cohort" / first).resolve()
    (audited / "outside.png").write_bytes(b"not a cohort image")
    assert run.image_path("../outside.png") is None
    assert run.image_path(str(audited / "outside.png")) is None
