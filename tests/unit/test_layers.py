"""The layer contract of ARCHITECTURE.md holds, and it would catch an upward import.

The contracts live in pyproject.toml (``[tool.importlinter]``): model < db < stages < app <
cli, Streamlit only in the dashboard, torch only in scoring and the demo, and nothing outside
the demo (but its own command) imports the demo and its random-weight models.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_code_keeps_every_import_contract() -> None:
    res = _lint(REPO)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "4 kept, 0 broken" in res.stdout


def test_an_upward_import_breaks_the_layer_contract(tmp_path: Path) -> None:
    """A copy of the package with one deliberate upward import (db -> app) fails the check."""
    shutil.copytree(REPO / "diffwatch", tmp_path / "diffwatch",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    users = tmp_path / "diffwatch" / "db" / "queries" / "users.py"
    users.write_text(users.read_text() + "\nfrom diffwatch.app import text  # upward\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "diffwatch.db is not allowed to import diffwatch.app" in res.stdout
    assert "diffwatch.db.queries.users -> diffwatch.app.text" in res.stdout


def test_streamlit_outside_the_dashboard_breaks_its_contract(tmp_path: Path) -> None:
    shutil.copytree(REPO / "diffwatch", tmp_path / "diffwatch",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    worker = tmp_path / "diffwatch" / "scoring" / "worker.py"
    worker.write_text(worker.read_text() + "\nimport streamlit  # not here\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "Streamlit only in the dashboard BROKEN" in res.stdout


def test_the_demo_models_outside_the_demo_break_its_contract(tmp_path: Path) -> None:
    """A production command that loads the demo's tiny CLIP (as ``drift prompts`` once did)
    fails the check; the demo's own command may import the demo."""
    shutil.copytree(REPO / "diffwatch", tmp_path / "diffwatch",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    drift = tmp_path / "diffwatch" / "cli" / "drift.py"
    drift.write_text(drift.read_text() + "\nfrom diffwatch.demo.tiny_clip import save_tiny_clip\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "nothing outside diffwatch.demo imports it BROKEN" in res.stdout
    assert "diffwatch.cli.drift -> diffwatch.demo.tiny_clip" in res.stdout
    assert "diffwatch.cli.demo ->" not in res.stdout
