"""The notebook runs top to bottom in local mode on small synthetic data (as CI runs it)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "fraud_detection.ipynb"


def test_notebook_executes_locally_on_small_synthetic_data(tmp_path, monkeypatch):
    # GIVEN small synthetic data and a scratch artifacts directory (the kernel inherits the env)
    monkeypatch.setenv("NOTEBOOK_SOURCE", "synthetic")
    monkeypatch.setenv("NOTEBOOK_ROWS", "20000")
    monkeypatch.setenv("NOTEBOOK_ARTIFACTS", str(tmp_path))
    monkeypatch.delenv("NOTEBOOK_USE_SAGEMAKER", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    # WHEN every cell runs
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    # THEN it trained, showed the report and skipped the SageMaker path
    outputs = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/markdown", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "20,000 valid rows" in outputs
    assert "FRAUD_THRESHOLD=" in outputs
    assert "| XGBoost classifier (fraud) |" in outputs
    assert "SageMaker training skipped" in outputs
    assert any(
        "image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert (tmp_path / "models.json").exists()
