"""The built wheel installs one import package, ``diffwatch``, and nothing generic.

A distribution that put ``app``, ``db`` or ``tests`` into site-packages would break, or be
broken by, any other one with a module of that name.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERIC = ("app", "db", "tests", "scoring", "collectors", "alerts", "analytics", "bench")


def test_the_wheel_holds_only_the_diffwatch_package_and_imports_nothing_else(tmp_path) -> None:
    dist = tmp_path / "dist"
    # The running interpreter's setuptools (from the lock) builds it: no download.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (wheel,) = dist.glob("diffwatch-*.whl")
    tops = {
        name.split("/")[0]
        for name in zipfile.ZipFile(wheel).namelist()
        if not name.split("/")[0].endswith((".dist-info", ".data"))
    }
    assert tops == {"diffwatch"}
    names = zipfile.ZipFile(wheel).namelist()
    assert "diffwatch/db/migrations/versions/0001_initial.py" in names
    assert "diffwatch/demo/golden.toml" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    subprocess.run(
        [py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # Run outside the checkout, so that the repository's folders are not on sys.path.
    probe = (
        "import importlib.util, json, diffwatch;"
        f"print(json.dumps({{n: importlib.util.find_spec(n) is not None for n in {GENERIC!r}}}))"
    )
    out = subprocess.run(
        [py, "-I", "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    assert out.strip() == "{" + ", ".join(f'"{n}": false' for n in GENERIC) + "}"
