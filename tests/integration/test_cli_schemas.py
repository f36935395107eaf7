"""`modq schemas export`: the checked-in JSON Schema and AsyncAPI files match the models."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_documents_are_current() -> None:
    result = CliRunner().invoke(
        app, ["schemas", "export", "--check", "--directory", str(ROOT / "docs")]
    )
    assert result.exit_code == 0, result.output


def test_export_writes_every_document_and_check_catches_drift(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["schemas", "export", "--directory", str(tmp_path)])
    assert first.exit_code == 0, first.output
    asyncapi = json.loads((tmp_path / "asyncapi.json").read_text())
    assert asyncapi["asyncapi"].startswith("3.")
    assert (tmp_path / "schemas" / "submission.json").exists()
    (tmp_path / "schemas" / "decision.json").write_text("{}\n")
    drift = runner.invoke(app, ["schemas", "export", "--check", "--directory", str(tmp_path)])
    assert drift.exit_code == 1
    assert "decision.json" in drift.output
