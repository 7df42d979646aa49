"""The notebook runs top to bottom on a small simulation (as CI runs it) and shows what it promises."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "fraud_detection.ipynb"


def test_notebook_executes_on_a_small_simulation(tmp_path, monkeypatch):
    # GIVEN a small simulation and a scratch artifacts directory (the kernel inherits the env)
    for name, value in {
        "CUSTOMERS": "300",
        "TERMINALS": "600",
        "DAYS": "75",
        "ARTIFACTS": str(tmp_path),
    }.items():
        monkeypatch.setenv(f"NOTEBOOK_{name}", value)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    # WHEN every cell runs
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    # THEN it simulated, showed the spec, proved point-in-time, trained the twin and showed the report
    outputs = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/markdown", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "frauds added per scenario: S1" in outputs
    assert "| `TERMINAL_ID_RISK_7DAY_WINDOW` | terminal |" in outputs
    assert "features before the cut that moved: none" in outputs
    assert "XGBoost on the held-out period: PR-AUC" in outputs
    assert "| Handbook (published) |" in outputs
    assert "| ours |" in outputs
    assert any(
        "image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert (tmp_path / "models" / "models.json").exists()
