"""``notebooks/audit_walkthrough.ipynb`` runs from top to bottom (nbclient, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "audit_walkthrough.ipynb"


@pytest.mark.slow
def test_audit_walkthrough_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # a small cohort and few replicates: the notebook's steps, not its numbers, are under test
    monkeypatch.setenv("FAIRDERM_NOTEBOOK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("FAIRDERM_NOTEBOOK_N", "60")
    monkeypatch.setenv("FAIRDERM_NOTEBOOK_N_BOOT", "200")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # jupyter_client starts the `python3` kernel spec's "python" as sys.executable: the venv's interpreter
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    assert "verify" in outputs and "OK" in outputs
    runs = list((tmp_path / "work" / "audits" / "walkthrough" / "runs").iterdir())
    assert len(runs) == 2
    assert all((run / "card.html").is_file() for run in runs)
